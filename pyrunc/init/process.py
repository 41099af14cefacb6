"""The container process's own settings, applied by init just before execve:
environment, rlimits, user and groups, capabilities, no_new_privs, fds."""

from __future__ import annotations

import _stat as stat  # stat.py only re-exports it
import posix  # not os: see pyrunc.posixfs

from pyrunc import posixfs
from pyrunc.linux import caps as C
from pyrunc.linux import libc as L

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any


class ProcessError(Exception):
    pass


def build_env(env: list[str]) -> dict[str, str]:
    """Duplicates keep their first position and take the last value (like runc)."""
    out: dict[str, str] = {}
    for i, kv in enumerate(env):
        k, sep, v = kv.partition("=")
        if not sep or not k:
            raise ProcessError(f"config.json: process.env[{i}]: invalid environment variable "
                               f"{kv!r}: missing '='")
        out[k] = v
    return out


def home_for(uid: int) -> str:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def look_path(name: str, path_env: str | None) -> str:
    """Resolve args[0] like Go's exec.LookPath, with runc's error text."""
    def executable(p: str) -> bool:
        try:
            st = posix.stat(p)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)

    if "/" in name:
        if executable(name):
            return name
        raise ProcessError(f'exec: "{name}": stat {name}: no such file or directory'
                           if not posixfs.exists(name) else f'exec: "{name}": permission denied')
    for d in (path_env or "").split(":"):
        cand = posixfs.join(d or ".", name)
        if executable(cand):
            return cand
    raise ProcessError(f'exec: "{name}": executable file not found in $PATH')


def set_oom_score_adj(value: int, src: str = "config.json: process.") -> None:
    """Before caps are dropped: lowering the score needs CAP_SYS_RESOURCE."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as e:
        raise ProcessError(f"{src}oomScoreAdj: cannot set {value}: {e.strerror}") from None


# asm-generic/resource.h: the numbers on x86_64 and aarch64 alike
RLIMITS = {name: n for n, name in enumerate((
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
    "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"))}


def set_rlimits(rlimits: list[dict[str, Any]]) -> None:
    for i, rl in enumerate(rlimits):
        res = RLIMITS.get(rl["type"])
        if res is None:
            raise ProcessError(f"config.json: process.rlimits[{i}].type: unknown rlimit "
                               f"{rl['type']!r}")
        try:
            L.setrlimit(res, rl["soft"], rl["hard"])
        except OSError as e:
            raise ProcessError(f"config.json: process.rlimits[{i}]: cannot set {rl['type']} to "
                               f"soft={rl['soft']} hard={rl['hard']}: {e.strerror}") from None


def cap_sets(capabilities: dict[str, list[str]] | None) -> dict[str, set[int]]:
    caps = capabilities or {}
    out = {}
    for key in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        try:
            out[key] = C.to_numbers(caps.get(key, []), f"config.json: process.capabilities.{key}")
        except ValueError as e:
            raise ProcessError(str(e)) from None
    return out


def apply_user_and_caps(proc: dict[str, Any], sets: dict[str, set[int]]) -> None:
    """Bounding set first (needs CAP_SETPCAP), then ids with caps kept, then capset."""
    user = proc.get("user", {})
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    C.drop_bounding(sets["bounding"])
    C.set_keepcaps(True)
    try:
        posix.setgroups(list(user.get("additionalGids", [])))
    except PermissionError:
        if user.get("additionalGids"):
            raise
    posix.setresgid(gid, gid, gid)
    posix.setresuid(uid, uid, uid)
    C.set_keepcaps(False)
    C.capset(sets["effective"], sets["permitted"], sets["inheritable"])
    if sets["ambient"]:
        C.set_ambient(sets["ambient"])
    if proc.get("noNewPrivileges"):
        L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)


def close_fds(keep_upto: int, also_keep: int = -1) -> None:
    """Close every fd above keep_upto but also_keep: no host fd may reach
    the container. also_keep must not survive execve (init's: the exec
    fifo, closed or close-on-exec by then)."""
    try:
        fds = [int(n) for n in posix.listdir("/proc/self/fd")]
    except OSError:  # no /proc in this container
        if also_keep > keep_upto:
            posix.closerange(keep_upto + 1, also_keep)
            posix.closerange(also_keep + 1, 65536)
        else:
            posix.closerange(keep_upto + 1, 65536)
        return
    for fd in fds:
        if fd > keep_upto and fd != also_keep:
            try:
                posix.close(fd)
            except OSError:
                pass
    for fd in range(3, keep_upto + 1):
        posix.set_inheritable(fd, True)
