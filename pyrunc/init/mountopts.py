"""OCI mount options -> mount(2) flags, propagation, recursive attributes and data
(pure logic; the same option vocabulary runc accepts)."""

from __future__ import annotations

from pyrunc.linux import libc as L
from pyrunc.linux.mountapi import (  # for the recursive "r*" options
    MOUNT_ATTR__ATIME,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_NOSYMFOLLOW,
    MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_RELATIME,
    MOUNT_ATTR_STRICTATIME,
)

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any

# option -> (clear?, flag)
FLAGS: dict[str, tuple[bool, int]] = {
    "acl": (False, 1 << 16), "noacl": (True, 1 << 16),
    "async": (True, L.MS_SYNCHRONOUS), "sync": (False, L.MS_SYNCHRONOUS),
    "atime": (True, L.MS_NOATIME), "noatime": (False, L.MS_NOATIME),
    "bind": (False, L.MS_BIND), "rbind": (False, L.MS_BIND | L.MS_REC),
    "defaults": (False, 0),
    "dev": (True, L.MS_NODEV), "nodev": (False, L.MS_NODEV),
    "diratime": (True, L.MS_NODIRATIME), "nodiratime": (False, L.MS_NODIRATIME),
    "dirsync": (False, L.MS_DIRSYNC),
    "exec": (True, L.MS_NOEXEC), "noexec": (False, L.MS_NOEXEC),
    "iversion": (False, 1 << 23), "noiversion": (True, 1 << 23),
    "lazytime": (False, L.MS_LAZYTIME), "nolazytime": (True, L.MS_LAZYTIME),
    "loud": (True, L.MS_SILENT), "silent": (False, L.MS_SILENT),
    "mand": (False, L.MS_MANDLOCK), "nomand": (True, L.MS_MANDLOCK),
    "relatime": (False, L.MS_RELATIME), "norelatime": (True, L.MS_RELATIME),
    "strictatime": (False, L.MS_STRICTATIME), "nostrictatime": (True, L.MS_STRICTATIME),
    "remount": (False, L.MS_REMOUNT),
    "ro": (False, L.MS_RDONLY), "rw": (True, L.MS_RDONLY),
    "suid": (True, L.MS_NOSUID), "nosuid": (False, L.MS_NOSUID),
    "symfollow": (True, L.MS_NOSYMFOLLOW), "nosymfollow": (False, L.MS_NOSYMFOLLOW),
}

PROPAGATION: dict[str, int] = {
    "private": L.MS_PRIVATE, "rprivate": L.MS_PRIVATE | L.MS_REC,
    "shared": L.MS_SHARED, "rshared": L.MS_SHARED | L.MS_REC,
    "slave": L.MS_SLAVE, "rslave": L.MS_SLAVE | L.MS_REC,
    "unbindable": L.MS_UNBINDABLE, "runbindable": L.MS_UNBINDABLE | L.MS_REC,
}


# option -> (clear?, attr)
RECURSIVE: dict[str, tuple[bool, int]] = {
    "rro": (False, MOUNT_ATTR_RDONLY), "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID), "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV), "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC), "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME), "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}
# atime modes replace each other: (set, clear-mask)
RECURSIVE_ATIME: dict[str, int] = {
    "ratime": MOUNT_ATTR_RELATIME,  # runc: ratime clears the atime bits
    "rrelatime": MOUNT_ATTR_RELATIME,
    "rnoatime": MOUNT_ATTR_NOATIME,
    "rstrictatime": MOUNT_ATTR_STRICTATIME,
    "rnorelatime": MOUNT_ATTR_STRICTATIME,
}

def is_bind(m: dict[str, Any]) -> bool:
    """A bind mount: of type "bind", or with a bind or rbind option."""
    opts = m.get("options") or []
    return m.get("type") == "bind" or "bind" in opts or "rbind" in opts


EXTENSIONS = {"tmpcopyup", "idmap", "ridmap"}


class Parsed:
    def __init__(self) -> None:
        self.flags = 0
        self.propagation: list[int] = []
        self.attr_set = 0
        self.attr_clr = 0
        self.data: list[str] = []
        self.extensions: set[str] = set()

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & L.MS_BIND)


def parse(options: list[str]) -> Parsed:
    p = Parsed()
    for opt in options:
        if opt in FLAGS:
            clear, flag = FLAGS[opt]
            if clear:
                p.flags &= ~flag
            else:
                p.flags |= flag
        elif opt in PROPAGATION:
            p.propagation.append(PROPAGATION[opt])
        elif opt in RECURSIVE:
            clear, attr = RECURSIVE[opt]
            if clear:
                p.attr_clr |= attr
                p.attr_set &= ~attr
            else:
                p.attr_set |= attr
                p.attr_clr &= ~attr
        elif opt in RECURSIVE_ATIME:
            p.attr_clr |= MOUNT_ATTR__ATIME
            p.attr_set = (p.attr_set & ~MOUNT_ATTR__ATIME) | RECURSIVE_ATIME[opt]
        elif opt in EXTENSIONS:
            p.extensions.add(opt)
        else:
            p.data.append(opt)
    return p
