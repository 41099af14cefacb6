"""Parsing /proc/self/mountinfo (pure; shared by the init and cgroup code)."""

from __future__ import annotations


class Mount:
    __slots__ = ("mount_id", "parent_id", "root", "mountpoint", "options", "optional",
                 "fstype", "source", "super_options")

    def __init__(self, mount_id: int, parent_id: int, root: str, mountpoint: str, options: str,
                 optional: tuple[str, ...], fstype: str, source: str,
                 super_options: str) -> None:
        self.mount_id = mount_id
        self.parent_id = parent_id
        self.root = root
        self.mountpoint = mountpoint
        self.options = options
        self.optional = optional
        self.fstype = fstype
        self.source = source
        self.super_options = super_options


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal
    if "\\" not in s:
        return s
    return s.encode().decode("unicode_escape")


def parse(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        if not line:
            continue
        left, _, right = line.partition(" - ")
        f = left.split(" ")
        r = right.split(" ")
        mounts.append(Mount(int(f[0]), int(f[1]), _unescape(f[3]), _unescape(f[4]), f[5],
                            tuple(f[6:]), r[0], _unescape(r[1]) if len(r) > 1 else "",
                            r[2] if len(r) > 2 else ""))
    return mounts


def read(pid: str = "self") -> list[Mount]:
    with open(f"/proc/{pid}/mountinfo") as fh:
        return parse(fh.read())


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount that contains path (the longest mountpoint prefix, last wins)."""
    best: Mount | None = None
    for m in mounts:
        mp = m.mountpoint
        if path == mp or path.startswith(mp.rstrip("/") + "/") or mp == "/":
            if best is None or len(mp) >= len(best.mountpoint):
                best = m
    return best
