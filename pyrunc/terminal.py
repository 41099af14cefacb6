"""Pseudo-terminals: init opens one inside the container and hands the master
over the console socket (SCM_RIGHTS, as runc does); `run` without a console
socket proxies it to its own stdio."""

from __future__ import annotations

import _socket
import fcntl
import os
import struct
import termios

from pyrunc.sync import pack_fds, unpack_fds

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
TIOCSCTTY = 0x540E


def open_pty_in_container() -> tuple[int, int, str]:
    """(master, slave, slave path) from the container's own /dev/pts."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
    path = f"/dev/pts/{n}"
    slave = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    return master, slave, path


def make_controlling(slave: int) -> None:
    """Slave becomes stdio and the controlling terminal of this session."""
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)


def send_fd(sock: _socket.socket, fd: int) -> None:
    """The pty master over the console socket, as runc sends it (SCM_RIGHTS)."""
    sock.sendmsg([b"/dev/ptmx"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, pack_fds([fd]))])


def recv_master(sock: _socket.socket) -> int:
    _msg, ancdata, _flags, _addr = sock.recvmsg(4096, _socket.CMSG_SPACE(4))
    fds = [fd for level, kind, data in ancdata
           if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS
           for fd in unpack_fds(data)]
    if not fds:
        raise OSError("console socket: no file descriptor received")
    return fds[0]


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def copy_winsize(src: int, dst: int) -> None:
    try:
        ws = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, ws)
    except OSError:
        pass


def prepare_proxy(master: int, copy_size: bool = True) -> list[Any] | None:
    """Main thread: our terminal goes raw and follows window size changes.
    Returns the terminal settings to restore."""
    if not os.isatty(0):
        return None
    import signal
    import tty

    old = termios.tcgetattr(0)
    tty.setraw(0)
    if copy_size:
        copy_winsize(0, master)
    signal.signal(signal.SIGWINCH, lambda *_: copy_winsize(0, master))
    return old


def restore(old: list[Any] | None) -> None:
    if old is not None:
        termios.tcsetattr(0, termios.TCSADRAIN, old)


def proxy(master: int, stop: list[bool]) -> None:
    """Copy stdin -> master and master -> stdout until the master closes."""
    import select

    fds = [master, 0]
    try:
        while not stop[0]:
            try:
                ready, _, _ = select.select(fds, [], [], 0.2)
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    fds.remove(0)
                    os.write(master, b"\x04")
                else:
                    os.write(master, data)
    except OSError:
        pass

