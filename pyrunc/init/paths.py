"""Container paths resolved inside the rootfs by the kernel, as fds.

Every path from config.json or the image is looked up relative to an O_PATH
fd of the rootfs with openat2(RESOLVE_IN_ROOT): symlinks are followed as if
the rootfs were "/", ".." never climbs above it, and the answer is an fd, so
nothing can swap a component for a symlink between the lookup and its use
(callers mount onto the fd, never onto a string). A missing component is
created from the fd of its parent, then the lookup starts again from the
root: whatever raced us, each step stays inside."""

from __future__ import annotations

import _stat as stat  # stat.py only re-exports it
import errno
import posix  # not os: see pyrunc.posixfs

from pyrunc import posixfs
from pyrunc.linux.openat2 import open_child, open_in_root, path_parts

_MAX_STEPS = 256  # components created plus dangling symlinks followed


def open_root(path: str) -> int:
    return posix.open(path, posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)


def fd_path(fd: int) -> str:
    """The magic link of fd: mount(2) on it acts on exactly that file."""
    return f"/proc/self/fd/{fd}"


def location(fd: int) -> str:
    """Where fd is, as this process's root sees it."""
    return posix.readlink(fd_path(fd))


def resolve(root_fd: int, path: str, nofollow: bool = False) -> int:
    """O_PATH fd of path inside root_fd; OSError if it does not exist."""
    return open_in_root(root_fd, path, posix.O_PATH | (posix.O_NOFOLLOW if nofollow else 0))


def mkdir_all(root_fd: int, path: str, mode: int = 0o755) -> int:
    """O_PATH fd of directory path inside root_fd, made (with parents) if missing."""
    return _make(root_fd, path, mode, False)


def make_file(root_fd: int, path: str) -> int:
    """O_PATH fd of path inside root_fd, an empty file (with parent
    directories) if nothing is there: the target of a file bind mount."""
    return _make(root_fd, path, 0o755, True)


def split(path: str) -> tuple[str, str]:
    """(parent directory, last component) of a path whose last component
    we create ourselves (devices, symlinks)."""
    path = posixfs.normpath("/" + path)
    name = posixfs.basename(path)
    if not name:
        raise OSError(errno.EINVAL, "not a file path", path)
    return posixfs.dirname(path), name


def _make(root_fd: int, path: str, mode: int, file: bool) -> int:
    parts = path_parts(path)
    for _ in range(_MAX_STEPS):
        try:
            return open_in_root(root_fd, "/".join(parts))
        except FileNotFoundError:
            pass
        parts = _create_first_missing(root_fd, parts, mode, file)
    raise OSError(errno.ELOOP, "too many steps creating the path", path)


def _create_first_missing(root_fd: int, parts: list[str], mode: int, file: bool) -> list[str]:
    """Walk parts from the root; make the first one that does not exist, or
    replace a (dangling) symlink by its target. Returns the parts to look up
    next: the same, or with the symlink expanded."""
    for i in range(len(parts)):
        try:
            fd = open_in_root(root_fd, "/".join(parts[: i + 1]), posix.O_PATH | posix.O_NOFOLLOW)
        except FileNotFoundError:
            try:
                parent = open_in_root(root_fd, "/".join(parts[:i]),
                                      posix.O_PATH | posix.O_DIRECTORY)
            except FileNotFoundError:
                return parts  # changed under us: look again
            try:
                if file and i == len(parts) - 1:
                    posix.close(posix.open(parts[i], posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW
                                     | posix.O_WRONLY | posix.O_CLOEXEC, 0o644, dir_fd=parent))
                else:
                    posix.mkdir(parts[i], mode, dir_fd=parent)
            except FileExistsError:
                pass  # someone else made it meanwhile: look again
            finally:
                posix.close(parent)
            return parts
        try:
            if stat.S_ISLNK(posix.fstat(fd).st_mode):
                target = posix.readlink("", dir_fd=fd)
                base = [] if target.startswith("/") else parts[:i]
                return base + path_parts(target) + parts[i + 1:]
        finally:
            posix.close(fd)
    return parts  # everything exists now (made meanwhile): look again


def create_in(dir_fd: int, name: str, make: str, mode: int = 0o644,
              device: int = 0, target: str = "") -> int:
    """Make `name` directly in dir_fd (make: "node", "file" or "symlink"),
    replacing whatever non-directory was there, and return an O_PATH fd of
    what was made (checked to be it: not a symlink or mount swapped in)."""
    try:
        old = posix.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISDIR(old.st_mode):
            raise IsADirectoryError(errno.EISDIR, posix.strerror(errno.EISDIR), name)
        posix.unlink(name, dir_fd=dir_fd)
    if make == "node":
        posix.mknod(name, mode, device, dir_fd=dir_fd)
    elif make == "file":
        posix.close(posix.open(name, posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW
                               | posix.O_WRONLY | posix.O_CLOEXEC, mode & 0o777, dir_fd=dir_fd))
    else:
        posix.symlink(target, name, dir_fd=dir_fd)
    return open_child(dir_fd, name)
