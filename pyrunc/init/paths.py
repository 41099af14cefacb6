"""Resolving container paths inside the rootfs without escaping it.

Symlinks are followed as if the rootfs were "/": an absolute link target
restarts from the rootfs and ".." never climbs above it (the semantics of
openat2's RESOLVE_IN_ROOT, done in user space)."""

from __future__ import annotations

import errno
import os
import stat

_MAX_LINKS = 255


def secure_join(root: str, unsafe: str) -> str:
    """Host path of `unsafe` interpreted inside `root`; never outside root."""
    root = os.path.abspath(root)
    pending = [p for p in unsafe.split("/") if p not in ("", ".")]
    pending.reverse()
    done: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = os.path.join(root, *done, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            done.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            done.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", unsafe)
        target = os.readlink(candidate)
        if target.startswith("/"):
            done = []
        for p in reversed([p for p in target.split("/") if p not in ("", ".")]):
            pending.append(p)
    return os.path.join(root, *done)


def mkdir_all(root: str, path: str, mode: int = 0o755) -> str:
    """Create path (a container path) inside root; returns the host path."""
    host = secure_join(root, path)
    rel = os.path.relpath(host, root)
    cur = root
    if rel == ".":
        return host
    for part in rel.split("/"):
        cur = os.path.join(cur, part)
        try:
            os.mkdir(cur, mode)
        except FileExistsError:
            if not os.path.isdir(cur):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", cur) from None
    return host


def touch(root: str, path: str) -> str:
    """Create an empty file (and its parents) inside root for a file bind mount."""
    host = secure_join(root, path)
    parent = os.path.dirname(os.path.relpath(host, root))
    if parent:
        mkdir_all(root, parent)
    if not os.path.lexists(host):
        os.close(os.open(host, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644))
    return host
