"""Timed invocation of one runtime process, with its peak RSS from wait4."""

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
    maxrss_kib: int  # kernel high-water mark of the largest process in the reaped tree
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


class Running:
    """A started runtime process; finish() reaps it with wait4 and times it."""

    def __init__(self, argv: list[str], capture: bool = False) -> None:
        # Output goes to files, not pipes: a started container inherits the
        # runtime's stdio and would keep a pipe open for its whole life.
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
        return Outcome(rc, seconds, usage.ru_maxrss, _drain(self._err), _drain(self._out))


def _drain(f: IO[bytes] | None) -> str:
    if f is None:
        return ""
    with f:
        f.seek(0)
        return f.read().decode(errors="replace")


def invoke(argv: list[str], capture: bool = False) -> Outcome:
    return Running(argv, capture).finish()
