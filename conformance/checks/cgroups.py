"""config-linux.md control groups: the container's cgroup files after create.

Values are read from the host side of the container's own cgroup (found through
/proc/PID/cgroup of the created container), so they do not depend on how the
runtime mounts cgroupfs inside the container. The placement itself is also
checked from inside the container.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conformance.checks.util import fields, host_cgroup_dir, read_cgroup_file
from conformance.harness import Ctx
from conformance.registry import Skip, add, check, expect

LONG = "exec sleep 30"


def v1(controller: str) -> None:
    if not Path(f"/sys/fs/cgroup/{controller}").is_dir():
        raise Skip(f"no cgroup v1 {controller} hierarchy on this host")


def created_pid(ctx: Ctx, resources: dict[str, Any], **linux: Any) -> int:
    cfg = ctx.config(LONG)
    cfg["linux"]["resources"] = resources
    cfg["linux"].update(linux)
    cid = ctx.create_ok(cfg)
    pid = ctx.state(cid).get("pid")
    expect(isinstance(pid, int) and pid > 0, "state has no pid")
    assert isinstance(pid, int)
    return pid


def _value(
    controller: str, resources: dict[str, Any], files: dict[str, str]
) -> Callable[[Ctx], None]:
    def fn(ctx: Ctx) -> None:
        v1(controller)
        pid = created_pid(ctx, resources)
        for name, want in files.items():
            got = read_cgroup_file(pid, controller, name)
            if name == "memory.oom_control":
                got = "1" if "oom_kill_disable 1" in got else "0"
            expect(got == want, f"{name} = {got!r}, expected {want!r}")

    return fn


MIB = 1024 * 1024
VALUES: list[tuple[str, str, str, dict[str, Any], dict[str, str]]] = [
    (
        "cgroup-memory-limit",
        "memory",
        "config-linux.md#memory",
        {"memory": {"limit": 64 * MIB}},
        {"memory.limit_in_bytes": str(64 * MIB)},
    ),
    (
        "cgroup-memory-reservation",
        "memory",
        "config-linux.md#memory",
        {"memory": {"reservation": 32 * MIB}},
        {"memory.soft_limit_in_bytes": str(32 * MIB)},
    ),
    (
        "cgroup-memory-swap",
        "memory",
        "config-linux.md#memory",
        {"memory": {"limit": 64 * MIB, "swap": 96 * MIB}},
        {"memory.memsw.limit_in_bytes": str(96 * MIB)},
    ),
    (
        "cgroup-memory-swappiness",
        "memory",
        "config-linux.md#memory",
        {"memory": {"swappiness": 17}},
        {"memory.swappiness": "17"},
    ),
    (
        "cgroup-memory-disable-oom-killer",
        "memory",
        "config-linux.md#memory",
        {"memory": {"disableOOMKiller": True}},
        {"memory.oom_control": "1"},
    ),
    (
        "cgroup-cpu-shares",
        "cpu",
        "config-linux.md#cpu",
        {"cpu": {"shares": 512}},
        {"cpu.shares": "512"},
    ),
    (
        "cgroup-cpu-quota-period",
        "cpu",
        "config-linux.md#cpu",
        {"cpu": {"quota": 50000, "period": 200000}},
        {"cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "200000"},
    ),
    (
        "cgroup-cpuset",
        "cpuset",
        "config-linux.md#cpu",
        {"cpu": {"cpus": "0", "mems": "0"}},
        {"cpuset.cpus": "0", "cpuset.mems": "0"},
    ),
    (
        "cgroup-pids-limit",
        "pids",
        "config-linux.md#pids",
        {"pids": {"limit": 42}},
        {"pids.max": "42"},
    ),
    (
        "cgroup-blkio-weight",
        "blkio",
        "config-linux.md#block-io",
        {"blockIO": {"weight": 500}},
        {"blkio.weight": "500"},
    ),
    (
        "cgroup-hugepage-limit",
        "hugetlb",
        "config-linux.md#huge-page-limits",
        {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MIB}]},
        {"hugetlb.2MB.limit_in_bytes": str(4 * MIB)},
    ),
    (
        "cgroup-network-classid",
        "net_cls",
        "config-linux.md#network",
        {"network": {"classID": 1048577}},
        {"net_cls.classid": "1048577"},
    ),
]

for _name, _ctrl, _clause, _res, _files in VALUES:
    add(_name, _clause, f"{_res} shows in {', '.join(_files)}", _value(_ctrl, _res, _files))


@check("cgroups-path", "config-linux.md#cgroups-path")
def cgroups_path(ctx: Ctx) -> None:
    """An absolute cgroupsPath places the process there (seen from the host and from inside),
    and delete removes the cgroup."""
    v1("pids")
    path = f"/oci-conformance-{uuid.uuid4().hex[:12]}"
    cfg = ctx.config("cat /proc/self/cgroup; " + LONG)
    out = ctx.outdir(cfg)
    cfg["process"]["args"] = ["sh", "-c", f"cat /proc/self/cgroup > /out/cg; {LONG}"]
    cfg["linux"]["cgroupsPath"] = path
    cid = ctx.create_ok(cfg)
    pid = ctx.state(cid)["pid"]
    d = host_cgroup_dir(pid, "pids")
    expect(
        d == Path("/sys/fs/cgroup/pids") / path.lstrip("/"),
        f"pids cgroup is {d}, expected /sys/fs/cgroup/pids{path}",
    )
    expect(ctx.rt("start", cid).rc == 0, "start failed")
    ctx.wait_status(cid, "running")
    inside = ""
    for _ in range(100):
        if (out / "cg").exists() and (out / "cg").read_text():
            inside = (out / "cg").read_text()
            break
        time.sleep(0.02)
    pids_line = [ln for ln in inside.splitlines() if ":pids:" in ln]
    expect(
        pids_line and pids_line[0].endswith(path),
        f"inside, /proc/self/cgroup says {pids_line}, expected ...:pids:{path}",
    )
    expect(ctx.rt("kill", cid, "KILL").rc == 0, "kill failed")
    ctx.wait_status(cid, "stopped")
    expect(ctx.rt("delete", cid).rc == 0, "delete failed")
    expect(not d.exists(), f"{d} still exists after delete")


@check("cgroup-unified-on-v1", "config-linux.md#unified")
def unified_v1(ctx: Ctx) -> None:
    """unified naming a controller the v2 hierarchy does not have generates an error."""
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        raise Skip("this host runs cgroup v2: no absent controller to name")
    v2 = Path("/sys/fs/cgroup/unified/cgroup.controllers")
    if v2.exists() and "memory" in v2.read_text().split():
        raise Skip("memory is available on the v2 hierarchy here")
    ctx.control(ctx.config("true"), "resources.unified")
    cfg = ctx.config(LONG)
    cfg["linux"]["resources"] = {"unified": {"memory.max": "67108864"}}
    cid, p = ctx.create(cfg)
    expect(
        p.rc != 0,
        "create succeeded although unified names memory.max and the memory "
        "controller is not on the v2 hierarchy",
    )


@check("cgroup-values-inside", "config-linux.md#control-groups")
def values_inside(ctx: Ctx) -> None:
    """With a cgroup mount, the process reads its own limits (memory, pids, cpu shares)."""
    v1("memory")
    cfg = ctx.config(
        "for f in memory/memory.limit_in_bytes pids/pids.max cpu/cpu.shares; do "
        'echo "@@$f=$(cat /sys/fs/cgroup/$f)"; done'
    )
    cfg["mounts"].append(
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        }
    )
    cfg["linux"]["resources"] = {
        "memory": {"limit": 48 * MIB},
        "pids": {"limit": 77},
        "cpu": {"shares": 256},
    }
    got = fields(ctx.run_ok(cfg))
    want = {
        "memory/memory.limit_in_bytes": str(48 * MIB),
        "pids/pids.max": "77",
        "cpu/cpu.shares": "256",
    }
    for f, w in want.items():
        expect(got.get(f) == w, f"inside, /sys/fs/cgroup/{f} = {got.get(f)!r}, expected {w}")
