"""Timed invocation of one runtime process; or, untimed, its peak RSS.

Peak RSS cannot come from our own wait4: ru_maxrss keeps the high-water mark
of the process before its execve, which is a copy of this (large) harness,
so every runtime would read ~24 MiB. GNU time forks the runtime from its own
small process and reports the real figure; it costs ~1 ms, so RSS runs are
separate from timed runs."""

import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import IO


@dataclass
class Outcome:
    rc: int
    seconds: float
    maxrss_kib: int  # largest process in the runtime's reaped tree (rss runs only; else 0)
    stderr: str
    stdout: str = ""

    def reason(self) -> str:
        return failure_reason(self.stderr, self.rc)


_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def failure_reason(stderr: str, rc: int) -> str:
    """One short line out of a runtime's stderr (runc's logfmt, crun's plain text)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if not lines:
        return f"exit status {rc}"
    last = lines[-1]
    m = _MSG.search(last)
    text = m.group(1).replace('\\"', '"') if m else last
    return text if len(text) <= 160 else text[:157] + "..."


GNU_TIME = "/usr/bin/time"


class RssUnavailable(Exception):
    """This machine cannot measure peak RSS (no GNU time)."""


class Running:
    """A started runtime process; finish() reaps it with wait4 and times it."""

    def __init__(self, argv: list[str], capture: bool = False, rss: bool = False) -> None:
        # Output goes to files, not pipes: a started container inherits the
        # runtime's stdio and would keep a pipe open for its whole life.
        self._rss: IO[bytes] | None = None
        if rss:
            if not os.access(GNU_TIME, os.X_OK):
                raise RssUnavailable(f"peak RSS needs GNU time ({GNU_TIME}; apt install time)")
            self._rss = tempfile.NamedTemporaryFile()
            argv = [GNU_TIME, "-f", "%M", "-o", self._rss.name, *argv]
        self._err: IO[bytes] = tempfile.TemporaryFile()
        self._out: IO[bytes] | None = tempfile.TemporaryFile() if capture else None
        self.start = time.perf_counter()
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._out or subprocess.DEVNULL,
            stderr=self._err,
        )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def finish(self) -> Outcome:
        _, status, usage = os.wait4(self._proc.pid, 0)
        seconds = time.perf_counter() - self.start
        rc = os.waitstatus_to_exitcode(status)
        self._proc.returncode = rc  # already reaped: keep Popen from waiting again
        maxrss = 0
        if self._rss is not None:
            with self._rss as f:
                text = f.read().decode(errors="replace").split()
            maxrss = int(text[-1]) if text and text[-1].isdigit() else 0
        return Outcome(rc, seconds, maxrss, _drain(self._err), _drain(self._out))


def _drain(f: IO[bytes] | None) -> str:
    if f is None:
        return ""
    with f:
        f.seek(0)
        return f.read().decode(errors="replace")


def invoke(argv: list[str], capture: bool = False, rss: bool = False) -> Outcome:
    return Running(argv, capture, rss).finish()
