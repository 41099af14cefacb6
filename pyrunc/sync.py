"""The parent <-> init message channel: dicts over a SOCK_SEQPACKET socketpair
(made by pyrunc.early), one per packet.

Encoded with marshal, not JSON: both ends are this same pyrunc, forked from
one process, and the children would otherwise import the _json shared
library for it (~0.3 ms of stage 1, on create's critical path). Nothing
outside pyrunc speaks on this channel (hooks and seccomp agents get JSON,
through their own pipes and sockets).

Built on _socket: the socket module imports enum and costs ~5 ms on every
create; the console (terminal) path imports socket itself when it needs it."""

from __future__ import annotations

import _socket
import marshal
import posix  # not os: the early fork comes before it (pyrunc.early)
import sys

from pyrunc.errors import PyruncError

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from _socket import socket as Socket
    from collections.abc import Callable
    from typing import Any, NoReturn

_MAX = 1 << 16


def pack_fds(fds: list[int]) -> bytes:
    """SCM_RIGHTS payload (C ints). Not `array`: it imports collections (~2 ms)."""
    return b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)


def unpack_fds(payload: bytes) -> list[int]:
    return [int.from_bytes(payload[i:i + 4], sys.byteorder, signed=True)
            for i in range(0, len(payload) - 3, 4)]


def memfd_with(name: str, data: bytes) -> int:
    """A memfd holding data, sent alongside a message: a payload is not
    bound by a packet's size."""
    memfd = posix.memfd_create(name, posix.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[posix.write(memfd, view):]
    return memfd


def memfd_read(memfd: int) -> bytes:
    """All of a received memfd_with(), which it closes."""
    chunks = []
    offset = 0
    while chunk := posix.pread(memfd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    posix.close(memfd)
    return b"".join(chunks)


def send(sock: Socket, msg: dict[str, Any], fds: list[int] | None = None) -> None:
    _await_turn()  # a child of fork_then_report speaks after its pid
    data = marshal.dumps(msg)
    if fds:
        sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, pack_fds(fds))])
    else:
        sock.send(data)


def recv(sock: Socket) -> tuple[dict[str, Any], list[int]]:
    """One message and any fds it carries; EOF reads as {"eof": True}."""
    try:
        data, ancdata, _flags, _addr = sock.recvmsg(_MAX, _socket.CMSG_SPACE(4 * 4))
    except ConnectionResetError:
        # The peer exited leaving a message of ours unread: the kernel reports
        # that first (and forgets it), then still delivers what it had sent,
        # e.g. the error that made it exit.
        data, ancdata, _flags, _addr = sock.recvmsg(_MAX, _socket.CMSG_SPACE(4 * 4))
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += unpack_fds(payload)
    if not data:
        for fd in fds:
            _socket.close(fd)
        return {"eof": True}, []
    return marshal.loads(data), fds


# In a child of fork_then_report: the pipe that closes once its pid is sent.
_turn = -1


def _await_turn() -> None:
    global _turn
    if _turn >= 0:
        fd, _turn = _turn, -1
        posix.read(fd, 1)  # returns once the parent closes its end
        posix.close(fd)


def fork_then_report(sock: Socket, child: Callable[[], NoReturn],
                     fork: Callable[[], int] = posix.fork,
                     note: dict[str, Any] | None = None, lazy: bool = False) -> None:
    """Fork (through `fork`); tell the parent the child's pid (and `note`, as
    `fork` left it). Both hold sock, so the child must not speak before the
    pid is sent: it waits for that first, or (lazy) starts at once and waits
    in its first send(). Lazy only for a child that sends before it closes
    fds it did not open (create's init: its "ready")."""
    global _turn
    turn_r, turn_w = posix.pipe()
    pid = fork()
    if pid == 0:
        posix.close(turn_w)
        _turn = turn_r
        if not lazy:
            _await_turn()
        child()
    posix.close(turn_r)
    send(sock, {"type": "pid", "pid": pid, **(note or {})})
    posix.close(turn_w)


def expect(sock: Socket, kind: str) -> dict[str, Any]:
    """Receive a message of the given kind, turning a peer's error into ours."""
    msg, fds = recv(sock)
    if fds:
        msg["fds"] = fds
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
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        s.sendmsg([name.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, pack_fds([fd]))])
    finally:
        s.close()
