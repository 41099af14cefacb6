"""Bringing loopback up in a new network namespace with two ioctls, so the
common path needs no netlink library (pyroute2 costs ~180 ms to import)."""

from __future__ import annotations

import _socket
import fcntl
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def link_up(name: str = "lo") -> None:
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)  # _socket: no enum import
    try:
        req = struct.pack("16sH22x", name.encode(), 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", name.encode(),
                                                              flags | IFF_UP))
    finally:
        s.close()
