"""Start and stop the client daemons of one test session, and clean up what
they leave: processes (by PID), mounts under their tmp dir, and the cgroups
named after the session's unique token."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup")


def short_tmpdir(kind: str) -> Path:
    # Unix socket paths are limited to 108 bytes: keep the base short.
    return Path(tempfile.mkdtemp(prefix=f"pyrc-{kind}-", dir="/tmp"))


def start(cmd: list[str], log: Path, ready: Callable[[], bool], what: str,
          env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.Popen[bytes]:
    """Start a daemon with its output in LOG; wait until READY() holds."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if ready():
            return proc
        time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"{what} not ready after {timeout}s: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen[bytes], grace: float = 10) -> None:
    """SIGTERM the daemon by PID, SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)


def mounts_under(base: Path) -> list[str]:
    """Mount points at or below BASE, deepest first."""
    prefix = str(base)
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def remove_tree(base: Path) -> None:
    """Lazily unmount whatever the daemons left under BASE, then delete it."""
    for point in mounts_under(base):
        subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(base, ignore_errors=True)


def remove_cgroups(name: str) -> None:
    """rmdir the (now empty) cgroup NAME, which only this session created, in
    every hierarchy; children first."""
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / name
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def leftover_cgroups(name: str) -> list[str]:
    return [str(h / name) for h in CGROUP_ROOT.iterdir() if (h / name).is_dir()]


class HostLeftovers:
    """Host paths the clients create whatever their configuration says (e.g.
    /run/docker/plugins, podman's blob-info cache). Sessions running at the
    same time (pytest-xdist workers) share one record, under a file lock, of
    which paths did not exist before the first of them started; the last one
    to finish removes those (files, then directories that are empty)."""

    REGISTRY = Path("/tmp/pyrc-clients-host.json")
    LOCK = Path("/tmp/pyrc-clients-host.lock")

    def __init__(self, *paths: str) -> None:
        self.paths = paths

    def _update(self, change: Callable[[dict[str, list[Any]]], None]) -> dict[str, list[Any]]:
        with open(self.LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = json.loads(self.REGISTRY.read_text())
            except (OSError, ValueError):
                state = {"pids": [], "absent": []}
            # Sessions that died without cleaning up no longer count.
            state["pids"] = [p for p in state["pids"] if _alive(p)]
            if not state["pids"]:
                state["absent"] = [p for p in self.paths if not os.path.lexists(p)]
            change(state)
            if state["pids"]:
                self.REGISTRY.write_text(json.dumps(state))
            else:
                self.REGISTRY.unlink(missing_ok=True)
                self.LOCK.unlink(missing_ok=True)
        return state

    def enter(self) -> None:
        self._update(lambda st: st["pids"].append(os.getpid()))

    def leave(self) -> None:
        state = self._update(lambda st: st["pids"].remove(os.getpid())
                             if os.getpid() in st["pids"] else None)
        if state["pids"]:
            return
        for p in sorted((Path(x) for x in state["absent"]), key=lambda q: -len(q.parts)):
            try:
                if p.is_dir() and not p.is_symlink():
                    p.rmdir()  # only if empty
                elif p.exists():
                    p.unlink()
            except OSError:
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
