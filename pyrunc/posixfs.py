"""The few os.path functions pyrunc needs, on posix alone.

Every command starts a fresh interpreter, and `import os` costs ~1 ms of it
(os imports _collections_abc): a tenth of `state`, `start`, `kill` or
`delete`, and on create's critical path, in the parent and in stage 1 (the
child that imports init's modules meanwhile; ~2 ms there, where every page
it touches is a copy-on-write fault). So the modules they load use posix,
the C module os wraps, and these helpers instead of os.path."""

import posix
import sys

_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IFREG = 0o100000
_S_IFLNK = 0o120000


def _mode(path: str, follow: bool = True) -> int:
    try:
        return (posix.stat if follow else posix.lstat)(path).st_mode & _S_IFMT
    except (OSError, ValueError):  # what os.path.exists also treats as "no"
        return 0


def exists(path: str) -> bool:
    return _mode(path) != 0


def isdir(path: str) -> bool:
    return _mode(path) == _S_IFDIR


def isfile(path: str) -> bool:
    return _mode(path) == _S_IFREG


def islink(path: str) -> bool:
    return _mode(path, follow=False) == _S_IFLNK


def read(path: str, size: int = 4096) -> bytes:
    """Up to `size` bytes of a small file (/proc, cgroup files) in one
    read(2): open()'s buffered reader costs ~45 us more on a /proc file."""
    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        return posix.read(fd, size)
    finally:
        posix.close(fd)


def makedirs(path: str, mode: int = 0o777) -> None:
    """os.makedirs(path, mode, exist_ok=True): missing parents get 0o777 (and
    the umask), as there."""
    try:
        posix.mkdir(path, mode)
    except FileExistsError:
        if not isdir(path):
            raise
    except FileNotFoundError:
        head = path.rstrip("/").rpartition("/")[0]
        if not head:
            raise
        makedirs(head)
        makedirs(path, mode)


def join(a: str, *parts: str) -> str:
    """os.path.join: an absolute part starts over."""
    path = a
    for p in parts:
        if p.startswith("/") or not path:
            path = p
        else:
            path = path + p if path.endswith("/") else f"{path}/{p}"
    return path


def normpath(path: str) -> str:
    """os.path.normpath (a leading "//" becomes "/" too)."""
    absolute = path.startswith("/")
    parts: list[str] = []
    for p in path.split("/"):
        if p in ("", "."):
            continue
        if p != ".." or (not absolute and (not parts or parts[-1] == "..")):
            parts.append(p)
        elif parts:
            parts.pop()
    out = "/".join(parts)
    return "/" + out if absolute else out or "."


def basename(path: str) -> str:
    return path.rpartition("/")[2]


def dirname(path: str) -> str:
    """os.path.dirname: the head, without trailing slashes (but "/")."""
    head = path[:path.rfind("/") + 1]
    return head.rstrip("/") or head


def relpath(path: str, start: str) -> str:
    """os.path.relpath(path, start)."""
    p = [x for x in abspath(path).split("/") if x]
    s = [x for x in abspath(start).split("/") if x]
    i = 0
    while i < min(len(p), len(s)) and p[i] == s[i]:
        i += 1
    return "/".join([".."] * (len(s) - i) + p[i:]) or "."


def fsencode(path: str | bytes) -> bytes:
    """os.fsencode."""
    if isinstance(path, bytes):
        return path
    return path.encode(sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())


def abspath(path: str) -> str:
    """os.path.abspath: absolute and normalised."""
    return normpath(path if path.startswith("/") else f"{posix.getcwd()}/{path}")


def realpath(path: str) -> str:
    """os.path.realpath of a path that exists, as the kernel resolved it;
    else abspath (the caller reports it missing)."""
    try:
        fd = posix.open(path, posix.O_PATH | posix.O_CLOEXEC)
    except (OSError, ValueError):
        return abspath(path)
    try:
        return posix.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc
        return abspath(path)
    finally:
        posix.close(fd)
