"""The parent <-> init message channel: JSON objects over a SOCK_SEQPACKET
socketpair, one object per packet, optionally carrying file descriptors."""

from __future__ import annotations

import array
import socket

from pyrunc.errors import PyruncError
from pyrunc.fastjson import dumps, loads

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any

_MAX = 1 << 16


def pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(sock: socket.socket, msg: dict[str, Any], fds: list[int] | None = None) -> None:
    data = dumps(msg, compact=True).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def recv(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One message; EOF reads as {"eof": True} so callers handle a dead peer."""
    data, fds, _flags, _addr = socket.recv_fds(sock, _MAX, 4)
    if not data:
        for fd in fds:
            socket.close(fd)
        return {"eof": True}, []
    return loads(data.decode()), list(fds)


def expect(sock: socket.socket, kind: str) -> dict[str, Any]:
    """Receive a message of the given kind, turning a peer's error into ours."""
    msg, _ = recv(sock)
    if "error" in msg:
        if msg.get("hook"):
            from pyrunc.hooks import HookError

            raise HookError(msg["error"])
        raise PyruncError(msg["error"])
    if msg.get("eof"):
        raise PyruncError(f"container init exited unexpectedly (waiting for {kind!r})")
    if msg.get("type") != kind:
        raise PyruncError(f"internal: expected {kind!r} from init, got {msg!r}")
    return msg


def send_fd_over_unix(path: str, fd: int, name: str) -> None:
    """Send one fd over a unix socket at path, like runc's --console-socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        s.sendmsg([name.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                     array.array("i", [fd]).tobytes())])
    finally:
        s.close()
