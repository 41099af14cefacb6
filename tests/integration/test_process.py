"""process.* and per-process linux.* fields, each read back from inside the
container (/proc/self/status, /proc/self/limits, ...)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime, error_lines


def run_sh(rt: Runtime, script: str, **overrides: Any) -> str:
    b = rt.bundle(**{"process.args": ["sh", "-c", script], **overrides})
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    return p.stdout


def status_fields(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def caps_of(hexmask: str) -> set[int]:
    n = int(hexmask, 16)
    return {i for i in range(64) if n >> i & 1}


def test_capability_sets(rt: Runtime) -> None:
    caps = {"bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
            "effective": ["CAP_KILL", "CAP_CHOWN"], "permitted": ["CAP_KILL", "CAP_CHOWN"],
            "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]}
    st = status_fields(run_sh(rt, "cat /proc/self/status", **{"process.capabilities": caps}))
    assert caps_of(st["CapBnd"]) == {0, 5, 10}
    # after execve as root: permitted/effective = (bounding & inheritable-file...) -> as set
    assert caps_of(st["CapInh"]) == {5}
    assert caps_of(st["CapAmb"]) == {5}
    assert caps_of(st["CapPrm"]) >= {0, 5}
    assert not caps_of(st["CapEff"]) - {0, 5, 10}


def test_non_root_user_keeps_listed_caps(rt: Runtime) -> None:
    caps = {k: ["CAP_NET_BIND_SERVICE"] for k in
            ("bounding", "effective", "permitted", "inheritable", "ambient")}
    st = status_fields(run_sh(rt, "cat /proc/self/status", **{
        "process.capabilities": caps, "process.user": {"uid": 1000, "gid": 1000}}))
    assert st["Uid"].split()[0] == "1000"
    assert caps_of(st["CapEff"]) == {10} and caps_of(st["CapAmb"]) == {10}


def test_no_new_privileges(rt: Runtime) -> None:
    on = status_fields(run_sh(rt, "cat /proc/self/status", **{"process.noNewPrivileges": True}))
    off = status_fields(run_sh(rt, "cat /proc/self/status",
                               **{"process.noNewPrivileges": False}))
    assert on["NoNewPrivs"] == "1" and off["NoNewPrivs"] == "0"


def test_rlimits(rt: Runtime) -> None:
    out = run_sh(rt, "cat /proc/self/limits", **{"process.rlimits": [
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200}]})
    rows = {line[:26].strip(): line[26:].split() for line in out.splitlines()[1:]}
    assert rows["Max open files"][:2] == ["512", "1000"]
    assert rows["Max core file size"][:2] == ["0", "0"]
    assert rows["Max processes"][:2] == ["100", "200"]


def test_oom_score_adj(rt: Runtime) -> None:
    assert run_sh(rt, "cat /proc/self/oom_score_adj",
                  **{"process.oomScoreAdj": 500}).strip() == "500"


def test_scheduler_policy(rt: Runtime) -> None:
    # field 41 of /proc/self/stat is the policy: SCHED_BATCH = 3
    out = run_sh(rt, "cut -d' ' -f41 /proc/self/stat",
                 **{"process.scheduler": {"policy": "SCHED_BATCH", "nice": 5}})
    assert out.strip() == "3"


def test_io_priority(rt: Runtime) -> None:
    out = run_sh(rt, "ionice", **{"process.ioPriority": {"class": "IOPRIO_CLASS_BE",
                                                          "priority": 6}})
    assert out.strip() == "best-effort: prio 6"


def _cpus_allowed(pid: int | str) -> str:
    return status_fields(Path(f"/proc/{pid}/status").read_text())["Cpus_allowed_list"]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cpus to tell apart")
def test_exec_cpu_affinity_is_for_exec_not_init(rt: Runtime) -> None:
    """config.md: execCPUAffinity "is not applicable to the container's init
    process": init keeps the default affinity, `exec` (config's process) gets it."""
    b = rt.bundle(**{"process.args": ["sleep", "600"],
                     "process.execCPUAffinity": {"initial": "0", "final": "0"}})
    cid = rt.new_id()
    rt("run", "-d", "-b", str(b), cid, check=True)
    try:
        # init: the default (ours, or its cpuset's on cgroup v1), not "0"
        assert _cpus_allowed(rt.state(cid)["pid"]) != "0"
        p = rt("exec", cid, "grep", "Cpus_allowed_list", "/proc/self/status")
        assert p.returncode == 0, p.stderr
        assert p.stdout.split() == ["Cpus_allowed_list:", "0"]
    finally:
        rt("delete", "-f", cid)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cpus to tell apart")
@pytest.mark.parametrize("which", ["all", "lowest", "highest"])
def test_init_keeps_the_callers_cpu_affinity(rt: Runtime, which: str) -> None:
    """pyrunc starts its stage 1 off the caller's CPU for a head start
    (pyrunc.early); the container must still get the caller's affinity."""
    mine = os.sched_getaffinity(0)
    mask = {"all": mine, "lowest": {min(mine)}, "highest": {max(mine)}}[which]
    b = rt.bundle(**{"process.args": ["grep", "Cpus_allowed_list", "/proc/self/status"]})
    os.sched_setaffinity(0, mask)  # inherited by the runtime we start
    try:
        p = rt("run", "-b", str(b), rt.new_id())
    finally:
        os.sched_setaffinity(0, mine)
    assert p.returncode == 0, p.stderr
    got = p.stdout.split()[1]
    assert _cpu_set(got) == mask


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cpus to tell apart")
@pytest.mark.parametrize("which", ["all", "lowest"])
def test_exec_keeps_the_callers_cpu_affinity(rt: Runtime, which: str) -> None:
    """As for init: exec's joiner starts off the caller's CPU (pyrunc.early)."""
    mine = os.sched_getaffinity(0)
    mask = {"all": mine, "lowest": {min(mine)}}[which]
    b = rt.bundle(**{"process.args": ["sleep", "600"]})
    cid = rt.new_id()
    rt("run", "-d", "-b", str(b), cid, check=True)
    try:
        os.sched_setaffinity(0, mask)  # inherited by the runtime we start
        try:
            p = rt("exec", cid, "grep", "Cpus_allowed_list", "/proc/self/status")
        finally:
            os.sched_setaffinity(0, mine)
        assert p.returncode == 0, p.stderr
        assert _cpu_set(p.stdout.split()[1]) == mask
    finally:
        rt("delete", "-f", cid)


def _cpu_set(cpu_list: str) -> set[int]:
    out: set[int] = set()
    for part in cpu_list.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


@pytest.mark.parametrize("nnp", [False, True])
def test_filter_denying_socket_io_still_starts(rt: Runtime, nnp: bool) -> None:
    """Init loads the seccomp filter after its last message to the parent,
    so a profile forbidding socket I/O (a "no network" profile) still lets
    the container start, as with runc."""
    denied = ["socket", "connect", "sendto", "recvfrom", "sendmsg", "recvmsg"]
    b = rt.bundle(**{"process.args": ["echo", "up"], "process.noNewPrivileges": nnp,
                     "linux.seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                         {"names": denied, "action": "SCMP_ACT_ERRNO"}]}})
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "up"


def test_personality_linux32(rt: Runtime) -> None:
    out = run_sh(rt, "uname -m", **{"linux.personality": {"domain": "LINUX32"}})
    assert out.strip() in ("i686", "armv8l", "armv7l")


def test_namespaced_sysctl(rt: Runtime) -> None:
    out = run_sh(rt, "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward",
                 **{"linux.sysctl": {"kernel.shmmax": "1000000", "net.ipv4.ip_forward": "1"}})
    assert out.split() == ["1000000", "1"]


def test_host_wide_sysctl_is_refused(rt: Runtime) -> None:
    b = rt.bundle(**{"linux.sysctl": {"vm.swappiness": "10"}})
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 1
    assert "'vm.swappiness' is not in a separate kernel namespace" in error_lines(p.stderr)[0]


def test_time_namespace_offsets(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["cut", "-d.", "-f1", "/proc/uptime"],
                     "linux.timeOffsets": {"boottime": {"secs": 86400 * 365}}})
    cfg = rt.config(b)
    cfg["linux"]["namespaces"].append({"type": "time"})
    rt.write_config(b, cfg)
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    host_uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert int(p.stdout) >= 86400 * 365 + int(host_uptime) - 5


@pytest.mark.parametrize("field,value,message", [
    ("process.apparmorProfile", "myprofile", "apparmor is not enabled on this host"),
    ("process.selinuxLabel", "system_u:system_r:container_t:s0",
     "config.json: process.selinuxLabel: selinux label is specified in config, but selinux "
     "is disabled"),
    ("linux.mountLabel", "system_u:object_r:container_file_t:s0",
     "config.json: linux.mountLabel: selinux label is specified in config, but selinux "
     "is disabled"),
])
def test_lsm_labels_refused_without_the_lsm(rt: Runtime, field: str, value: str,
                                            message: str) -> None:
    # This host has no LSM: runc refuses these too (apparmor with a less clear error).
    b = rt.bundle(**{field: value})
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 1
    assert message in error_lines(p.stderr)[0]


def test_net_devices_moved_with_addresses(rt: Runtime) -> None:
    import subprocess

    name, peer = f"pd{rt.token[:6]}", f"pp{rt.token[:6]}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", peer], check=True)
    try:
        subprocess.run(["ip", "addr", "add", "10.213.7.1/24", "dev", name], check=True)
        out = run_sh(rt, "ip -o addr show dev ctr0; cat /sys/class/net/ctr0/operstate",
                     **{"linux.netDevices": {name: {"name": "ctr0"}}})
        assert "10.213.7.1/24" in out
        assert out.split()[-1] in ("lowerlayerdown", "up")  # up; its peer is down
    finally:
        # the pair dies with the container's namespace; clean up if the move failed
        subprocess.run(["ip", "link", "del", peer], stderr=subprocess.DEVNULL)


def test_net_device_missing_on_host(rt: Runtime) -> None:
    b = rt.bundle(**{"linux.netDevices": {"nosuchdev0": {}}})
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 1
    assert error_lines(p.stderr) == [
        "config.json: linux.netDevices.nosuchdev0: no such network device on the host"]


def test_memory_policy(rt: Runtime) -> None:
    out = run_sh(rt, "grep -c . /proc/self/numa_maps >/dev/null; grep ' bind:' "
                     "/proc/self/numa_maps | head -1 | wc -l",
                 **{"linux.memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0"}})
    assert out.strip() == "1"


def test_unknown_fields_and_annotations_never_break_create(rt: Runtime) -> None:
    """Issue 3 / config.md: unknown properties MUST be ignored; annotations reach state."""
    b = rt.bundle(**{"process.args": ["sleep", "600"], "process.xFuture": {"a": [1]},
                     "process.user.xFuture": True, "linux.xFuture": "x",
                     "linux.resources.xFuture": 1, "xFuture": 0,
                     "annotations": {"org.example.k": "v", "io.x": ""}})
    cid = rt.new_id()
    p = rt("create", "-b", str(b), cid)
    try:
        assert p.returncode == 0, p.stderr
        assert rt.state(cid)["annotations"] == {"org.example.k": "v", "io.x": ""}
    finally:
        rt("delete", "-f", cid)
