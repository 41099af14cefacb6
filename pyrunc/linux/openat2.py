"""openat2(2): path resolution the kernel confines to a root directory.

RESOLVE_IN_ROOT treats the dirfd as "/" for the whole lookup: absolute symlink
targets restart there and ".." never climbs above it, atomically, so nothing
can swap a component for a symlink between a check and a use. Kernels older
than 5.6 (ENOSYS) get an O_PATH|O_NOFOLLOW walk, one component at a time,
with the same semantics (done by us, not atomically, but every step is an fd
beneath the one before)."""

from __future__ import annotations

import _stat as stat  # stat.py only re-exports it
import errno
import posix  # not os: see pyrunc.posixfs

from pyrunc import posixfs
from pyrunc.linux import cdata, libc

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
_MAX_LINKS = 40  # the kernel's own limit
_RETRIES = 32  # EAGAIN: a rename or mount raced a ".." step; the kernel asks to retry


class OpenHow(cdata.Structure):
    _fields_ = [("flags", cdata.c_uint64), ("mode", cdata.c_uint64),
                ("resolve", cdata.c_uint64)]


_STATE = {"have": True}  # False once the kernel said ENOSYS


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """Raw openat2; raises OSError (ENOSYS on kernels without it)."""
    how = OpenHow(flags | posix.O_CLOEXEC, mode, resolve)
    lib = libc._libc()
    nr = libc.syscall_nr("openat2")
    bpath = posixfs.fsencode(path)
    for _ in range(_RETRIES):
        fd = lib.syscall(nr, dirfd, bpath, cdata.byref(how), cdata.sizeof(how))
        if fd >= 0:
            return int(fd)
        err = cdata.get_errno()
        if err != errno.EAGAIN:
            break
    raise OSError(err, posix.strerror(err), path)


def open_in_root(root_fd: int, path: str, flags: int = posix.O_PATH) -> int:
    """fd of `path` looked up as if root_fd were "/", never leaving it.
    flags: O_PATH, optionally O_NOFOLLOW (last component) and O_DIRECTORY."""
    if _STATE["have"]:
        try:
            return openat2(root_fd, path or ".", flags, IN_ROOT)
        except OSError as e:
            if e.errno != errno.ENOSYS:
                raise
            _STATE["have"] = False
    return walk_in_root(root_fd, path, flags)


def open_child(dir_fd: int, name: str, flags: int = posix.O_PATH) -> int:
    """fd of the entry `name` of dir_fd itself: not a symlink, not a mount
    someone placed there, nothing beneath another directory."""
    if _STATE["have"]:
        try:
            return openat2(dir_fd, name, flags | posix.O_NOFOLLOW,
                           RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV
                           | RESOLVE_NO_MAGICLINKS)
        except OSError as e:
            if e.errno != errno.ENOSYS:
                raise
            _STATE["have"] = False
    if "/" in name or name in ("", ".", ".."):
        raise OSError(errno.EINVAL, "not a single path component", name)
    return posix.open(name, flags | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=dir_fd)


def path_parts(path: str) -> list[str]:
    """A path's components, without empty ones and "." (".." stays)."""
    return [p for p in path.split("/") if p not in ("", ".")]


def walk_in_root(root_fd: int, path: str, flags: int = posix.O_PATH) -> int:
    """RESOLVE_IN_ROOT done in user space from fds (the ENOSYS fallback).
    ".." pops our own stack of directory fds, so it cannot climb out even
    if a directory is moved while we hold it."""
    nofollow = bool(flags & posix.O_NOFOLLOW)
    stack: list[int] = []  # fds we opened; the current directory is the last (or root_fd)
    pending = path_parts(path)
    pending.reverse()
    links = 0
    try:
        while pending:
            part = pending.pop()
            if part == "..":
                if stack:
                    posix.close(stack.pop())
                continue
            cur = stack[-1] if stack else root_fd
            fd = posix.open(part, posix.O_PATH | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=cur)
            mode = posix.fstat(fd).st_mode
            if stat.S_ISLNK(mode) and (pending or not nofollow):
                links += 1
                try:
                    target = posix.readlink("", dir_fd=fd)
                finally:
                    posix.close(fd)
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, posix.strerror(errno.ELOOP), path)
                if target.startswith("/"):
                    while stack:
                        posix.close(stack.pop())
                pending.extend(reversed(path_parts(target)))
                continue
            stack.append(fd)
            if pending and not stat.S_ISDIR(mode):
                raise OSError(errno.ENOTDIR, posix.strerror(errno.ENOTDIR), path)
        result = stack.pop() if stack else posix.open(".", posix.O_PATH | posix.O_CLOEXEC,
                                                   dir_fd=root_fd)
        if flags & posix.O_DIRECTORY and not stat.S_ISDIR(posix.fstat(result).st_mode):
            posix.close(result)
            raise OSError(errno.ENOTDIR, posix.strerror(errno.ENOTDIR), path)
        return result
    finally:
        for fd in stack:
            posix.close(fd)
