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

OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
AT_EMPTY_PATH = 0x1000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_IDMAP = 0x100000


def open_tree(path: str, recursive: bool) -> int:
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    try:
        return libc.syscall("open_tree", AT_FDCWD, path.encode(), flags)
    except OSError as e:
        raise OSError(e.errno, f"open_tree: {e.strerror}", path) from None


def idmap(tree_fd: int, userns_fd: int, recursive: bool) -> None:
    attr = MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    libc.syscall("mount_setattr", tree_fd, b"", flags, ctypes.byref(attr), ctypes.sizeof(attr))


def move_mount(tree_fd: int, dest: str) -> None:
    try:
        libc.syscall("move_mount", tree_fd, b"", AT_FDCWD, dest.encode(),
                     MOVE_MOUNT_F_EMPTY_PATH)
    except OSError as e:
        raise OSError(e.errno, f"move_mount: {e.strerror}", dest) from None
