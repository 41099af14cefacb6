"""The new mount API (mount_setattr, open_tree, move_mount) for recursive
attributes and idmapped mounts."""

from __future__ import annotations

import ctypes

from pyrunc.linux import libc

AT_FDCWD = -100
AT_RECURSIVE = 0x8000
AT_SYMLINK_NOFOLLOW = 0x100


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def setattr_recursive(path: str, attr_set: int, attr_clr: int, propagation: int = 0) -> None:
    attr = MountAttr(attr_set, attr_clr, propagation, 0)
    try:
        libc.syscall("mount_setattr", AT_FDCWD, path.encode(), AT_RECURSIVE | AT_SYMLINK_NOFOLLOW,
                     ctypes.byref(attr), ctypes.sizeof(attr))
    except OSError as e:
        raise OSError(e.errno, f"mount_setattr: {e.strerror}", path) from None
