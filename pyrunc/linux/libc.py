"""The syscall layer: thin, typed, errno-checked wrappers over libc (through
pyrunc.linux.cdata, the part of ctypes we use).

CPython 3.11 has no posix.unshare/posix.setns and no mount API, so the few calls a
runtime needs live here and nowhere else. Every failure raises OSError with
the syscall name and the path it concerned, so messages stay readable.
"""

from __future__ import annotations

import errno
import posix  # not os: see pyrunc.posixfs
import sys

from pyrunc import posixfs
from pyrunc.linux import cdata

# namespace clone flags (linux/sched.h)
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags (linux/mount.h)
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

# x86_64 / aarch64 syscall numbers for calls glibc 2.36 has no wrapper for.
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "open_tree": 428, "move_mount": 429,
               "mount_setattr": 442, "openat2": 437, "capget": 125, "capset": 126,
               "keyctl": 250, "pidfd_open": 434, "pidfd_send_signal": 424,
               "ioprio_set": 251, "sched_setattr": 314, "set_mempolicy": 238,
               "fsopen": 430, "fsconfig": 431, "fsmount": 432, "statx": 332,
               "bpf": 321, "clone3": 435},
    "aarch64": {"pivot_root": 41, "open_tree": 428, "move_mount": 429,
                "mount_setattr": 442, "openat2": 437, "capget": 90, "capset": 91,
                "keyctl": 219, "pidfd_open": 434, "pidfd_send_signal": 424,
                "ioprio_set": 30, "sched_setattr": 274, "set_mempolicy": 237,
                "fsopen": 430, "fsconfig": 431, "fsmount": 432, "statx": 291,
                "bpf": 280, "clone3": 435},
}


_LIBC: list[cdata.CDLL] = []


def _libc() -> cdata.CDLL:
    if not _LIBC:  # (functools.cache would import collections & co: ~3 ms)
        _LIBC.append(cdata.CDLL())
    return _LIBC[0]


# Read once: a LINUX32 personality later makes uname() report i686.
_ARCH = posix.uname().machine


def syscall_nr(name: str) -> int:
    return _SYSCALLS[_ARCH][name]


def _check(ret: int, what: str, path: str | None = None) -> int:
    if ret < 0:
        err = cdata.get_errno()
        raise OSError(err, f"{what}: {posix.strerror(err)}", path)
    return ret


def _b(s: str | bytes | None) -> bytes | None:
    return None if s is None else posixfs.fsencode(s)  # bytes pass through


def syscall(name: str, *args: object) -> int:
    """Raw syscall by name; returns the result or raises OSError(name)."""
    return _check(_libc().syscall(syscall_nr(name), *args), name)


def unshare(flags: int) -> None:
    _check(_libc().unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0, path: str | None = None) -> None:
    _check(_libc().setns(fd, nstype), "setns", path)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    ret = _libc().mount(_b(source), _b(target), _b(fstype), cdata.c_ulong(flags), _b(data))
    _check(ret, f"mount {source or 'none'} on {target}" + (f" ({fstype})" if fstype else ""),
           None)


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc().umount2(_b(target), flags), "umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    libc = _libc()
    _check(libc.syscall(syscall_nr("pivot_root"), _b(new_root), _b(put_old)), "pivot_root",
           new_root)


def setdomainname(name: str) -> None:
    b = name.encode()
    _check(_libc().setdomainname(b, len(b)), "setdomainname")


def sethostname(name: str) -> None:
    b = name.encode()
    _check(_libc().sethostname(b, len(b)), "sethostname")


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """setrlimit(2) of our process (the resource module is a shared library:
    ~0.3 ms to load, in init's imports). soft/hard: 0 to 2**64-1 (infinity)."""
    order = sys.byteorder
    try:
        lim = soft.to_bytes(8, order) + hard.to_bytes(8, order)
    except OverflowError:
        raise OSError(errno.EINVAL, "setrlimit: value out of range") from None
    _check(_libc().prlimit(0, resource, cdata.create_string_buffer(lim, 16), None), "setrlimit")


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    libc = _libc()
    return _check(libc.prctl(option, cdata.c_ulong(a2), cdata.c_ulong(a3),
                             cdata.c_ulong(a4), cdata.c_ulong(a5)), "prctl")


PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

KEYCTL_JOIN_SESSION_KEYRING = 1


def join_session_keyring(name: str) -> None:
    """A fresh session keyring, so the container cannot read the host's keys."""
    libc = _libc()
    ret = libc.syscall(syscall_nr("keyctl"), KEYCTL_JOIN_SESSION_KEYRING, _b(name))
    if ret < 0 and cdata.get_errno() not in (38, 1, 13):  # ENOSYS, EPERM, EACCES: as runc
        _check(ret, "keyctl(JOIN_SESSION_KEYRING)")


def pidfd_open(pid: int) -> int:
    return _check(_libc().syscall(syscall_nr("pidfd_open"), pid, 0), "pidfd_open")


IOPRIO_WHO_PROCESS = 1


def ioprio_set(ioclass: int, level: int) -> None:
    syscall("ioprio_set", IOPRIO_WHO_PROCESS, 0, (ioclass << 13) | level)


def personality(persona: int) -> int:
    return _check(_libc().personality(cdata.c_ulong(persona)), "personality")


class SchedAttr(cdata.Structure):
    _fields_ = [("size", cdata.c_uint32), ("sched_policy", cdata.c_uint32),
                ("sched_flags", cdata.c_uint64), ("sched_nice", cdata.c_int32),
                ("sched_priority", cdata.c_uint32), ("sched_runtime", cdata.c_uint64),
                ("sched_deadline", cdata.c_uint64), ("sched_period", cdata.c_uint64)]


def sched_setattr(policy: int, flags: int = 0, nice: int = 0, priority: int = 0,
                  runtime: int = 0, deadline: int = 0, period: int = 0) -> None:
    attr = SchedAttr(cdata.sizeof(SchedAttr), policy, flags, nice, priority, runtime,
                     deadline, period)
    syscall("sched_setattr", 0, cdata.byref(attr), 0)


def set_mempolicy(mode: int, nodes: set[int]) -> None:
    maxnode = max(nodes) + 2 if nodes else 0
    words = (maxnode + 63) // 64 or 1
    mask = (cdata.c_ulong * words)()
    for n in nodes:
        mask[n // 64] |= 1 << (n % 64)
    syscall("set_mempolicy", mode, cdata.byref(mask) if nodes else None, maxnode)
