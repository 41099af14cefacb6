"""Capabilities: names, the bounding set (python-prctl) and capset/ambient.

python-prctl predates some capabilities (CAP_CHECKPOINT_RESTORE), so names
map to numbers here and the five sets are applied by number."""

from __future__ import annotations

# python-prctl, the project's pick for prctl and capabilities: its C core
# (_prctl) directly, as its Python wrapper costs ~1.5 ms to import.
import _prctl

from pyrunc.linux import cdata, libc

CAP_NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
CAP_NUMBERS = {name: i for i, name in enumerate(CAP_NAMES)}


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAP_NAMES) - 1


def to_numbers(names: list[str], field: str) -> set[int]:
    """Names to numbers; unknown names are the caller's error to report."""
    out = set()
    for name in names:
        n = CAP_NUMBERS.get(name.upper())
        if n is None:
            raise ValueError(f"{field}: unknown capability {name!r}")
        out.add(n)
    return out


def drop_bounding(keep: set[int]) -> None:
    for cap in range(last_cap() + 1):
        if cap not in keep and _prctl.prctl(_prctl.PR_CAPBSET_READ, cap):
            _prctl.prctl(_prctl.PR_CAPBSET_DROP, cap)


def set_keepcaps(on: bool) -> None:
    _prctl.prctl(_prctl.PR_SET_KEEPCAPS, int(on))


class _Header(cdata.Structure):
    _fields_ = [("version", cdata.c_uint32), ("pid", cdata.c_int)]


class _Data(cdata.Structure):
    _fields_ = [("effective", cdata.c_uint32), ("permitted", cdata.c_uint32),
                ("inheritable", cdata.c_uint32)]


_VERSION_3 = 0x20080522


def capset(effective: set[int], permitted: set[int], inheritable: set[int]) -> None:
    hdr = _Header(_VERSION_3, 0)
    data = (_Data * 2)()
    for i in range(2):
        def word(s: set[int], i: int = i) -> int:
            return sum(1 << (c - 32 * i) for c in s if 32 * i <= c < 32 * (i + 1))
        data[i].effective = word(effective)
        data[i].permitted = word(permitted)
        data[i].inheritable = word(inheritable)
    libc.syscall("capset", cdata.byref(hdr), cdata.byref(data))


def set_ambient(caps: set[int]) -> None:
    """Raise what the kernel allows: an ambient cap must also be permitted and
    inheritable; like runc, one that is not is skipped rather than fatal."""
    libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in sorted(caps):
        try:
            libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_RAISE, cap)
        except PermissionError:
            pass
