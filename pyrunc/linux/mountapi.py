"""The new mount API (mount_setattr, open_tree, move_mount, fsopen) for
recursive attributes, idmapped mounts and mounts made from and onto fds, plus
statx's mount id to check where a mount landed."""

from __future__ import annotations

import posix  # not os: see pyrunc.posixfs
import sys

from pyrunc.linux import cdata, libc

AT_FDCWD = -100
AT_RECURSIVE = 0x8000
AT_SYMLINK_NOFOLLOW = 0x100


class MountAttr(cdata.Structure):
    _fields_ = [("attr_set", cdata.c_uint64), ("attr_clr", cdata.c_uint64),
                ("propagation", cdata.c_uint64), ("userns_fd", cdata.c_uint64)]


OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
AT_EMPTY_PATH = 0x1000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
# mount_setattr(2) attributes (linux/mount.h)
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000


def open_tree(path: str, recursive: bool, dirfd: int = AT_FDCWD) -> int:
    """A detached copy of the mount at path (or of dirfd itself if path is "")."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    if not path:
        flags |= AT_EMPTY_PATH
    try:
        return libc.syscall("open_tree", dirfd, path.encode(), flags)
    except OSError as e:
        raise OSError(e.errno, f"open_tree: {e.strerror}", path) from None


def idmap(tree_fd: int, userns_fd: int, recursive: bool) -> None:
    attr = MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    libc.syscall("mount_setattr", tree_fd, b"", flags, cdata.byref(attr), cdata.sizeof(attr))


def move_mount(tree_fd: int, dest_fd: int) -> None:
    """Attach the detached tree onto exactly what dest_fd is (no path lookup)."""
    try:
        libc.syscall("move_mount", tree_fd, b"", dest_fd, b"",
                     MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)
    except OSError as e:
        raise OSError(e.errno, f"move_mount: {e.strerror}") from None


def attach(tree_fd: int, dest_fd: int) -> None:
    """move_mount, then close the tree's fd whatever happened."""
    try:
        move_mount(tree_fd, dest_fd)
    finally:
        posix.close(tree_fd)


def setattr_fd(fd: int, attr_set: int, attr_clr: int = 0, recursive: bool = False) -> None:
    """mount_setattr on the mount whose root fd is (a detached tree or attached)."""
    attr = MountAttr(attr_set, attr_clr, 0, 0)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    try:
        libc.syscall("mount_setattr", fd, b"", flags, cdata.byref(attr), cdata.sizeof(attr))
    except OSError as e:
        raise OSError(e.errno, f"mount_setattr: {e.strerror}") from None


FSOPEN_CLOEXEC = 1
FSCONFIG_SET_FLAG = 0
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 1


def empty_tmpfs_ro() -> int:
    """A detached, read-only, empty tmpfs (to mask a directory) built without
    any path: fsopen, fsconfig, fsmount."""
    fs = libc.syscall("fsopen", b"tmpfs", FSOPEN_CLOEXEC)
    try:
        libc.syscall("fsconfig", fs, FSCONFIG_SET_FLAG, b"ro", None, 0)
        libc.syscall("fsconfig", fs, FSCONFIG_CMD_CREATE, None, None, 0)
        return libc.syscall("fsmount", fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY)
    finally:
        posix.close(fs)


STATX_MNT_ID = 0x1000
STATX_ATTR_MOUNT_ROOT = 0x2000
_STATX_ATTRIBUTES = slice(8, 16)
_STATX_MNT_ID = slice(144, 152)


def mount_id(fd: int) -> tuple[int, bool]:
    """(id of the mount fd is on, whether fd is that mount's root), by statx."""
    buf = cdata.create_string_buffer(256)
    libc.syscall("statx", fd, b"", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, buf)
    raw = buf.raw
    attrs = int.from_bytes(raw[_STATX_ATTRIBUTES], sys.byteorder)
    return int.from_bytes(raw[_STATX_MNT_ID], sys.byteorder), bool(attrs & STATX_ATTR_MOUNT_ROOT)
