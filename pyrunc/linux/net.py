"""Bringing loopback up in a new network namespace with two ioctls, so the
common path needs no netlink library (pyroute2 costs ~180 ms to import)."""

from __future__ import annotations

import _socket
import fcntl
import sys

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def link_up(name: str = "lo") -> None:
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)  # _socket: no enum import
    try:
        flags = _ifreq_flags(fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, _ifreq(name, 0)))
        if not flags & IFF_UP:
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, _ifreq(name, flags | IFF_UP))
    finally:
        s.close()


# struct ifreq for the flags ioctls: ifr_name[16], short ifr_flags, padding to
# 40 bytes. Built by hand: `struct` is one more import on init's path.
def _ifreq(name: str, flags: int) -> bytes:
    return name.encode().ljust(16, b"\0") + flags.to_bytes(2, sys.byteorder) + bytes(22)


def _ifreq_flags(req: bytes) -> int:
    return int.from_bytes(req[16:18], sys.byteorder)
