"""config-linux.md and runtime-linux.md, seen from inside the container."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from conformance.checks.util import NsHolder, fields, mount_at, need_x86_64
from conformance.harness import Ctx, host_ns
from conformance.registry import Skip, add, check, expect

NS_FILE = {
    "pid": "pid",
    "network": "net",
    "ipc": "ipc",
    "uts": "uts",
    "mount": "mnt",
    "cgroup": "cgroup",
    "user": "user",
    "time": "time",
}
MAPPINGS = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def ns_script() -> str:
    return "; ".join(f'echo "@@{k}=$(readlink /proc/self/ns/{v})"' for k, v in NS_FILE.items())


def container_ns(ctx: Ctx, namespaces: list[dict[str, str]], **extra: object) -> dict[str, str]:
    cfg = ctx.config(ns_script())
    cfg["linux"]["namespaces"] = namespaces
    cfg["linux"].update(extra)
    if any(n["type"] == "user" for n in namespaces):
        _userns_friendly(cfg)
    return fields(ctx.run_ok(cfg))


def _userns_friendly(cfg: dict[str, object]) -> None:
    """A user namespace cannot mount sysfs without its own netns, nor keep host-owned mqueue."""
    linux = cfg["linux"]
    assert isinstance(linux, dict)
    linux.setdefault("uidMappings", MAPPINGS)
    linux.setdefault("gidMappings", MAPPINGS)
    mounts = cfg["mounts"]
    assert isinstance(mounts, list)
    cfg["mounts"] = [m for m in mounts if m["type"] not in ("sysfs", "mqueue")]


def _new_ns(kind: str) -> Callable[[Ctx], None]:
    def fn(ctx: Ctx) -> None:
        if not os.path.exists(f"/proc/self/ns/{NS_FILE[kind]}"):
            raise Skip(f"the kernel has no {kind} namespaces")
        base = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")]
        nss = base if kind in {n["type"] for n in base} else [*base, {"type": kind}]
        seen = container_ns(ctx, nss)
        expect(
            seen.get(kind) and seen[kind] != host_ns(NS_FILE[kind]),
            f"{kind}: container has {seen.get(kind)}, the runtime's is "
            f"{host_ns(NS_FILE[kind])}: no new namespace",
        )

    return fn


def _inherit_ns(kind: str) -> Callable[[Ctx], None]:
    def fn(ctx: Ctx) -> None:
        nss = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network") if t != kind]
        cfg = ctx.config(ns_script())
        cfg["linux"]["namespaces"] = nss
        if kind == "uts":
            del cfg["hostname"]  # a hostname needs a UTS namespace of the container's own
        seen = fields(ctx.run_ok(cfg))
        expect(
            seen.get(kind) == host_ns(NS_FILE[kind]),
            f"{kind} not listed, yet the container has {seen.get(kind)}, "
            f"not the runtime's {host_ns(NS_FILE[kind])}",
        )

    return fn


for _kind in NS_FILE:
    add(
        f"namespace-{_kind}-new",
        "config-linux.md#namespaces",
        f"a listed {_kind} namespace without path is a new namespace",
        _new_ns(_kind),
    )
# The mount namespace is not tried: sharing the host's would put the container's
# mounts on this machine.
for _kind in ("pid", "network", "ipc", "uts", "cgroup", "user", "time"):
    add(
        f"namespace-{_kind}-inherit",
        "config-linux.md#namespaces",
        f"an unlisted {_kind} namespace is the runtime's",
        _inherit_ns(_kind),
    )


@check("namespace-path-join", "config-linux.md#namespaces")
def ns_join(ctx: Ctx) -> None:
    """A namespace with a path is joined (network, ipc, uts of a holder process)."""
    holder = NsHolder("--net", "--ipc", "--uts")
    try:
        nss = [
            {"type": "pid"},
            {"type": "mount"},
            {"type": "network", "path": holder.ns("net")},
            {"type": "ipc", "path": holder.ns("ipc")},
            {"type": "uts", "path": holder.ns("uts")},
        ]
        cfg = ctx.config(ns_script())
        cfg["linux"]["namespaces"] = nss
        del cfg["hostname"]  # setting it would change the holder's uts namespace
        seen = fields(ctx.run_ok(cfg))
        for kind, f in (("network", "net"), ("ipc", "ipc"), ("uts", "uts")):
            expect(
                seen.get(kind) == holder.ns_id(f),
                f"{kind}: container has {seen.get(kind)}, expected {holder.ns_id(f)}",
            )
    finally:
        holder.close()


@check("namespace-path-wrong-type", "config-linux.md#namespaces")
def ns_wrong_type(ctx: Ctx) -> None:
    """A path that is not a namespace of that type generates an error."""
    holder = NsHolder("--net")
    try:
        cfg = ctx.config("true")
        cfg["linux"]["namespaces"] = [{"type": "pid"}, {"type": "mount"}]
        del cfg["hostname"]
        ctx.control(cfg, "the wrong namespace path")
        cfg["linux"]["namespaces"] = [
            {"type": "pid"},
            {"type": "mount"},
            {"type": "ipc", "path": holder.ns("net")},
        ]
        expect(ctx.run(cfg).rc != 0, "run succeeded joining a network namespace as ipc")
    finally:
        holder.close()


@check("namespace-duplicate", "config-linux.md#namespaces")
def ns_duplicate(ctx: Ctx) -> None:
    """A namespace type listed twice generates an error."""
    cfg = ctx.config("true")
    ctx.control(cfg, "the duplicate")
    cfg["linux"]["namespaces"].append({"type": "network"})
    expect(ctx.run(cfg).rc != 0, "run succeeded with the network namespace listed twice")


@check("namespace-pid-init", "config-linux.md#namespaces")
def pid_one(ctx: Ctx) -> None:
    """In a new pid namespace the container process is pid 1."""
    out = ctx.run_ok(ctx.config("echo $$")).strip()
    expect(out == "1", f"container process has pid {out}, expected 1")


@check("user-namespace-mappings", "config-linux.md#user-namespace-mappings")
def userns_maps(ctx: Ctx) -> None:
    """uidMappings/gidMappings are written to the new user namespace's maps."""
    cfg = ctx.config("cat /proc/self/uid_map; echo @@; cat /proc/self/gid_map; echo @@; id -u")
    cfg["linux"]["namespaces"].append({"type": "user"})
    _userns_friendly(cfg)
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1000}]
    uid_map, gid_map, uid = (s.split() for s in ctx.run_ok(cfg).split("@@"))
    expect(uid_map == ["0", "100000", "65536"], f"uid_map {uid_map}, expected 0 100000 65536")
    expect(gid_map == ["0", "200000", "1000"], f"gid_map {gid_map}, expected 0 200000 1000")
    expect(uid == ["0"], f"id -u is {uid}, expected 0 inside the user namespace")


@check("time-namespace-offsets", "config-linux.md#offset-for-time-namespace")
def time_offsets(ctx: Ctx) -> None:
    """timeOffsets.boottime shifts /proc/uptime in a new time namespace."""
    if not os.path.exists("/proc/self/ns/time"):
        raise Skip("the kernel has no time namespaces")
    cfg = ctx.config("cut -d. -f1 /proc/uptime")
    cfg["linux"]["namespaces"].append({"type": "time"})
    cfg["linux"]["timeOffsets"] = {"boottime": {"secs": 1000000, "nanosecs": 0}}
    up = ctx.run_ok(cfg).strip()
    host = float(Path("/proc/uptime").read_text().split()[0])
    expect(
        up.isdigit() and int(up) >= 1000000 + host - 5,
        f"uptime in the container is {up}, expected >= {1000000 + host:.0f}",
    )


DEFAULT_DEVICES = {
    "/dev/null": (1, 3),
    "/dev/zero": (1, 5),
    "/dev/full": (1, 7),
    "/dev/random": (1, 8),
    "/dev/urandom": (1, 9),
    "/dev/tty": (5, 0),
}


@check("devices-default", "config-linux.md#default-devices")
def default_devices(ctx: Ctx) -> None:
    """null, zero, full, random, urandom, tty exist as the right char devices; ptmx too."""
    paths = " ".join(DEFAULT_DEVICES)
    cfg = ctx.config(
        f"for p in {paths}; do stat -c '@@%n %F %t %T' $p; done; "
        "readlink /dev/ptmx | sed 's/^/@@ptmx=/'; stat -c '@@ptmxtype=%F' /dev/ptmx"
    )
    out = ctx.run_ok(cfg)
    seen = {
        ln.split()[0].removeprefix("@@"): ln.split()[1:]
        for ln in out.splitlines()
        if ln.startswith("@@/")
    }
    for path, (major, minor) in DEFAULT_DEVICES.items():
        got = seen.get(path)
        want = ["character", "special", "file", f"{major:x}", f"{minor:x}"]
        expect(got == want, f"{path}: {got}, expected char device {major}:{minor}")
    f = fields(out)
    expect(
        f.get("ptmx", "").endswith("pts/ptmx") or "character" in f.get("ptmxtype", ""),
        "/dev/ptmx is neither a symlink to pts/ptmx nor a device",
    )


@check("dev-symlinks", "runtime-linux.md#dev-symbolic-links")
def dev_symlinks(ctx: Ctx) -> None:
    """/dev/fd, /dev/stdin, /dev/stdout, /dev/stderr link to /proc/self/fd[/N]."""
    want = {
        "/dev/fd": "/proc/self/fd",
        "/dev/stdin": "/proc/self/fd/0",
        "/dev/stdout": "/proc/self/fd/1",
        "/dev/stderr": "/proc/self/fd/2",
    }
    out = ctx.run_ok(ctx.config("; ".join(f"echo @@{p}=$(readlink {p})" for p in want)))
    got = fields(out)
    for p, target in want.items():
        expect(got.get(p) == target, f"{p} -> {got.get(p)!r}, expected {target}")


@check("file-descriptors", "runtime-linux.md#file-descriptors")
def fds(ctx: Ctx) -> None:
    """Only stdin, stdout and stderr are open in the container process."""
    ctx.need_probe()
    out = ctx.run_ok(ctx.config("exec probe fds"))
    expect(out.strip() == "", f"extra open file descriptors: {out.split()}")


@check("devices-create", "config-linux.md#devices")
def devices_create(ctx: Ctx) -> None:
    """linux.devices entries exist with their type, major/minor, mode, uid and gid."""
    cfg = ctx.config(
        "for p in /dev/conf-c /dev/conf-b /dev/conf-p; do stat -c '@@%n %F %t %T %a %u %g' $p; done"
    )
    cfg["linux"]["devices"] = [
        {
            "path": "/dev/conf-c",
            "type": "c",
            "major": 1,
            "minor": 3,
            "fileMode": 0o640,
            "uid": 1000,
            "gid": 1001,
        },
        {
            "path": "/dev/conf-b",
            "type": "b",
            "major": 7,
            "minor": 200,
            "fileMode": 0o600,
            "uid": 0,
            "gid": 0,
        },
        {"path": "/dev/conf-p", "type": "p", "fileMode": 0o620, "uid": 0, "gid": 5},
    ]
    out = ctx.run_ok(cfg)
    seen = {
        ln.split()[0][2:]: " ".join(ln.split()[1:])
        for ln in out.splitlines()
        if ln.startswith("@@")
    }
    want = {
        "/dev/conf-c": "character special file 1 3 640 1000 1001",
        "/dev/conf-b": "block special file 7 c8 600 0 0",
        "/dev/conf-p": "fifo 0 0 620 0 5",
    }
    for path, w in want.items():
        expect(seen.get(path) == w, f"{path}: {seen.get(path)!r}, expected {w!r}")


@check("devices-existing-mismatch", "config-linux.md#devices")
def devices_mismatch(ctx: Ctx) -> None:
    """A device path already holding a different file generates an error."""
    f = ctx.tmp / "regular"
    f.write_text("keep\n")
    cfg = ctx.config("true")
    cfg["mounts"].append(
        {"destination": "/dev/conf-x", "type": "bind", "source": str(f), "options": ["bind"]}
    )
    cfg["linux"]["devices"] = [{"path": "/dev/conf-y", "type": "c", "major": 1, "minor": 3}]
    ctx.control(cfg, "the clash")
    cfg["linux"]["devices"] = [{"path": "/dev/conf-x", "type": "c", "major": 1, "minor": 3}]
    p = ctx.run(cfg)
    expect(p.rc != 0, "run succeeded although /dev/conf-x was a regular file, not char 1:3")
    expect(f.read_text() == "keep\n", "the runtime overwrote the host file")


def _device_rules(rules: list[dict[str, object]], allowed: bool) -> Callable[[Ctx], None]:
    def fn(ctx: Ctx) -> None:
        d = ctx.tmp / "devs"
        d.mkdir()
        # 240 is a major reserved for local use: no driver, so an open the cgroup
        # allows fails with ENXIO, one it denies fails with EPERM first.
        os.mknod(d / "c240", 0o666 | 0o020000, os.makedev(240, 0))
        cfg = ctx.config("cat /mnt/devs/c240 2>&1; true")
        cfg["mounts"].append(
            {"destination": "/mnt/devs", "type": "bind", "source": str(d), "options": ["rbind"]}
        )
        cfg["linux"]["resources"] = {"devices": rules}
        out = ctx.run_ok(cfg)
        denied = "not permitted" in out
        expect(
            denied != allowed,
            f"rules {rules}: open said {out.strip()!r}, expected "
            f"{'allowed (ENXIO)' if allowed else 'denied (EPERM)'}",
        )

    return fn


_DENY_ALL = {"allow": False, "access": "rwm"}
_ALLOW = {"allow": True, "type": "c", "major": 240, "minor": 0, "access": "rw"}
_DENY = {"allow": False, "type": "c", "major": 240, "minor": 0, "access": "r"}
add(
    "device-cgroup-deny",
    "config-linux.md#allowed-device-list",
    "deny-all denies a device node",
    _device_rules([_DENY_ALL], False),
)
add(
    "device-cgroup-allow",
    "config-linux.md#allowed-device-list",
    "deny-all then allow c 240:0 allows it",
    _device_rules([_DENY_ALL, _ALLOW], True),
)
add(
    "device-cgroup-order",
    "config-linux.md#allowed-device-list",
    "rules apply in order: a later deny wins",
    _device_rules([_DENY_ALL, _ALLOW, _DENY], False),
)


@check("sysctl", "config-linux.md#sysctl")
def sysctl(ctx: Ctx) -> None:
    """linux.sysctl values are set in the container's namespaces."""
    cfg = ctx.config("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax")
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.msgmax": "4321"}
    got = ctx.run_ok(cfg).split()
    expect(got == ["1", "4321"], f"ip_forward, msgmax = {got}, expected ['1', '4321']")


@check("masked-paths", "config-linux.md#masked-paths")
def masked(ctx: Ctx) -> None:
    """maskedPaths cannot be read: files read empty, directories list empty."""
    cfg = ctx.config(
        "echo @@kcore=$(head -c 16 /proc/kcore | wc -c); "
        "echo @@keys=$(cat /proc/keys 2>/dev/null | wc -c); "
        "echo @@firmware=$(ls /sys/firmware | wc -l); echo @@alive=yes"
    )
    cfg["linux"]["maskedPaths"] = [
        "/proc/kcore",
        "/proc/keys",
        "/sys/firmware",
        "/proc/conformance-does-not-exist",
    ]
    f = fields(ctx.run_ok(cfg))
    expect(f.get("alive") == "yes", "container did not run to the end")
    for key in ("kcore", "keys", "firmware"):
        expect(f.get(key) == "0", f"masked {key} still readable ({f.get(key)} bytes/entries)")


@check("readonly-paths", "config-linux.md#readonly-paths")
def readonly(ctx: Ctx) -> None:
    """readonlyPaths are read-only (writes fail, mount flagged ro), others stay writable."""
    cfg = ctx.config(
        "echo x > /proc/sys/kernel/domainname 2>/dev/null && echo @@sys=written; "
        "touch /mnt/w/f 2>/dev/null && echo @@w=written; "
        "touch /mnt/v/f 2>/dev/null && echo @@v=written; "
        "cat /proc/self/mountinfo"
    )
    cfg["mounts"] += [
        {"destination": "/mnt/w", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/mnt/v", "type": "tmpfs", "source": "tmpfs"},
    ]
    cfg["linux"]["readonlyPaths"] = ["/proc/sys", "/mnt/w"]
    out = ctx.run_ok(cfg)
    f = fields(out)
    expect("sys" not in f, "/proc/sys is writable")
    expect("w" not in f, "/mnt/w (readonlyPaths) is writable")
    expect(f.get("v") == "written", "/mnt/v (not listed) is not writable")
    expect("ro" in mount_at(out, "/proc/sys").opts, "/proc/sys not mounted ro")


def _propagation(mode: str) -> Callable[[Ctx], None]:
    def fn(ctx: Ctx) -> None:
        cfg = ctx.config("cat /proc/self/mountinfo")
        cfg["linux"]["rootfsPropagation"] = mode
        p = ctx.run(cfg)
        expect(p.rc == 0, f"rootfsPropagation {mode} refused: {p.tail()}")
        opt = mount_at(p.out, "/").optional
        has = {k: any(o.startswith(k) for o in opt) for k in ("shared:", "master:", "unbindable")}
        ok = {
            "shared": has["shared:"],
            "private": not any(has.values()),
            "slave": not has["shared:"],
            "unbindable": has["unbindable"],
        }[mode]
        expect(ok, f"rootfsPropagation {mode}: / has propagation fields {list(opt)}")

    return fn


for _mode in ("shared", "slave", "private", "unbindable"):
    add(
        f"rootfs-propagation-{_mode}",
        "config-linux.md#rootfs-mount-propagation",
        f"rootfsPropagation {_mode} is applied to /",
        _propagation(_mode),
    )


def _seccomp(ctx: Ctx, rules: list[dict[str, object]], script: str) -> str:
    ctx.need_probe()
    need_x86_64()
    cfg = ctx.config(script)
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}
    return ctx.run_ok(cfg)


@check("seccomp-errno", "config-linux.md#seccomp")
def seccomp_errno(ctx: Ctx) -> None:
    """SCMP_ACT_ERRNO with errnoRet 42 makes mkdir fail with errno 42."""
    out = _seccomp(
        ctx,
        [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}],
        "probe mkdir /tmp/conf",
    )
    expect("errno=42" in out, f"probe says {out.strip()!r}, expected errno=42")


@check("seccomp-errno-default-eperm", "config-linux.md#seccomp")
def seccomp_eperm(ctx: Ctx) -> None:
    """SCMP_ACT_ERRNO without errnoRet returns EPERM."""
    out = _seccomp(
        ctx, [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}], "probe mkdir /tmp/conf"
    )
    expect("errno=1" in out.split(), f"probe says {out.strip()!r}, expected errno=1 (EPERM)")


@check("seccomp-kill", "config-linux.md#seccomp")
def seccomp_kill(ctx: Ctx) -> None:
    """SCMP_ACT_KILL kills the process at the syscall (SIGSYS)."""
    out = _seccomp(
        ctx,
        [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}],
        "probe mkdir /tmp/conf; echo status=$?",
    )
    expect("status=159" in out, f"{out.strip()!r}: expected death by SIGSYS (status 159)")


@check("seccomp-args", "config-linux.md#seccomp")
def seccomp_args(ctx: Ctx) -> None:
    """A rule with an args condition only matches calls whose argument matches."""
    # getpriority(2) is syscall 140 on x86_64: which=1 (PRIO_PGRP) matches, 0 does not.
    out = _seccomp(
        ctx,
        [
            {
                "names": ["getpriority"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 42,
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}],
            }
        ],
        "probe sys 140 1 0; probe sys 140 0 0",
    )
    lines = out.strip().splitlines()
    expect(len(lines) == 2 and "errno=42" in lines[0], f"matching call: {lines[:1]}")
    expect("errno=0" in lines[1], f"non-matching call was filtered too: {lines[1:]}")


@check("seccomp-errno-on-kill-errors", "config-linux.md#seccomp")
def seccomp_bad_errno(ctx: Ctx) -> None:
    """errnoRet on an action without errno (SCMP_ACT_KILL) generates an error."""
    need_x86_64()
    cfg = ctx.config("true")
    cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL"}],
    }
    ctx.control(cfg, "errnoRet")
    cfg["linux"]["seccomp"]["syscalls"][0]["errnoRet"] = 5
    expect(ctx.run(cfg).rc != 0, "run succeeded with errnoRet on SCMP_ACT_KILL")


@check("personality", "config-linux.md#personality")
def personality(ctx: Ctx) -> None:
    """personality LINUX32 makes uname -m report a 32-bit machine."""
    need_x86_64()
    cfg = ctx.config("uname -m")
    cfg["linux"]["personality"] = {"domain": "LINUX32"}
    out = ctx.run_ok(cfg).strip()
    expect(out in ("i686", "i386"), f"uname -m says {out!r}, expected i686")
