"""runc-compatible logging: logfmt text lines or JSON lines
({"level","msg","time"}) that containerd's shim and podman parse."""

from __future__ import annotations

import posix  # not os: see pyrunc.posixfs
import sys
import time


class _State:
    path = ""
    format = "text"
    debug = False


_state = _State()


def configure(path: str | None, fmt: str, debug: bool) -> None:
    _state.path, _state.format, _state.debug = path or "", fmt, debug


def now_rfc3339() -> str:
    """The time with nanoseconds, as runc writes it in logs and `created`."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _line(level: str, msg: str) -> str:
    if _state.format == "json":
        from pyrunc.fastjson import dumps

        return dumps({"level": level, "msg": msg, "time": now_rfc3339()})
    esc = msg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'time="{now_rfc3339()}" level={level} msg="{esc}"'


def _write(level: str, msg: str) -> None:
    line = _line(level, msg) + "\n"
    path = _state.path
    if path and path != "/dev/stderr":
        try:
            fd = posix.open(path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT
                            | posix.O_CLOEXEC, 0o644)
            try:
                posix.write(fd, line.encode())
            finally:
                posix.close(fd)
            return
        except OSError:
            pass
    sys.stderr.write(line)
    sys.stderr.flush()


def error(msg: str) -> None:
    _write("error", msg)
    if _state.path and _state.path != "/dev/stderr":
        # Like runc: the error also reaches stderr, plain, for whoever ran us.
        sys.stderr.write(msg + "\n")


def warning(msg: str) -> None:
    _write("warning", msg)


def debug(msg: str) -> None:
    if _state.debug:
        _write("debug", msg)
