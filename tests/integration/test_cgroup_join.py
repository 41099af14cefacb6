"""Where init stands after `create`. Stage 1 joins the v1 hierarchies itself
and forks init straight into the v2 one (clone3); from a new user namespace
the parent moves them instead, while init builds the rootfs. These tests pin
down what must hold however it is done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime


def _cgroups_of(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        out[ctrls] = path
    return out


@pytest.mark.parametrize("userns", [False, True])
def test_init_is_in_every_container_cgroup_once_created(rt: Runtime, userns: bool) -> None:
    over: dict[str, Any] = {"process.args": ["sleep", "100"]}
    if userns:  # the parent moves stage 1 and init
        ids = [{"containerID": 0, "hostID": 0, "size": 65536}]
        cfg = rt.config(rt.bundle())
        over["linux.namespaces"] = cfg["linux"]["namespaces"] + [{"type": "user"}]
        over["linux.uidMappings"] = over["linux.gidMappings"] = ids
    b = rt.bundle(**over)
    cid = rt.new_id()
    rt("create", "-b", str(b), cid, check=True)
    pid = rt.state(cid)["pid"]
    groups = _cgroups_of(pid)
    # One line per hierarchy (v1 controllers, name=systemd and the unified one
    # in hybrid mode); each must be the container's own cgroup, named by id.
    assert groups and all(path.endswith("/" + cid) for path in groups.values()), groups
    rt("delete", "-f", cid, check=True)


def test_cgroup_namespace_is_rooted_at_the_container_cgroup(rt: Runtime) -> None:
    cfg = rt.config(rt.bundle())
    cfg["linux"]["namespaces"].append({"type": "cgroup"})
    script = "cat /proc/self/cgroup; echo --; cat /sys/fs/cgroup/pids/cgroup.procs"
    cfg["process"]["args"] = ["sh", "-c", script]
    b = rt.bundle("cgns")
    rt.write_config(b, cfg)
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    cgroup, procs = p.stdout.split("--\n")
    paths = [ln.split(":", 2)[2] for ln in cgroup.splitlines()]
    assert paths and set(paths) == {"/"}, p.stdout
    # the pids hierarchy seen inside is the container's own: sh (PID 1) and cat
    assert "1" in procs.split(), p.stdout
