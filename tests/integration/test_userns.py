"""User namespaces: id maps written by the parent, setgroups, devices bound
from the host, joining an existing user namespace by path."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Runtime
from tests.integration.test_rootfs import (
    CGROUP_RO_SCRIPT,
    CGROUP_V1,
    check_cgroup_v1_read_only,
)

MAPS = {"linux.uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "linux.gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}


def userns_bundle(rt: Runtime, script: str, name: str = "bundle") -> Path:
    b = rt.bundle(name, **{"process.args": ["sh", "-c", script], "root.readonly": False, **MAPS})
    for dirpath, dirnames, filenames in os.walk(b / "rootfs"):
        for n in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, n), 100000, 100000)
    os.lchown(b / "rootfs", 100000, 100000)
    # The container's root (host uid 100000) must be able to walk to its rootfs,
    # as with runc: open up the test's own tmp directories for traversal.
    for d in [b, *b.parents]:
        if d == Path("/tmp"):
            break
        d.chmod(d.stat().st_mode | 0o011)
    cfg = rt.config(b)
    cfg["linux"]["namespaces"].append({"type": "user"})
    rt.write_config(b, cfg)
    return b


def test_user_namespace_maps(rt: Runtime) -> None:
    b = userns_bundle(rt, "id -u; cat /proc/self/uid_map /proc/self/gid_map; "
                          "cat /proc/self/setgroups; touch /tmp/x && stat -c %u /tmp/x; "
                          "readlink /proc/self/ns/user")
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", "100000", "65536"]
    assert lines[2].split() == ["0", "100000", "65536"]
    assert lines[3] == "allow"
    assert lines[4] == "0"
    assert lines[5] != os.readlink("/proc/self/ns/user")
    # files the container root creates belong to the mapped host uid
    assert (b / "rootfs" / "tmp" / "x").stat().st_uid == 100000


def test_user_namespace_devices_are_bound_from_host(rt: Runtime) -> None:
    b = userns_bundle(rt, "echo hi > /dev/null && head -c 4 /dev/zero | wc -c")
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "4"


@pytest.mark.skipif(not CGROUP_V1, reason="needs cgroup v1 hierarchies")
def test_user_namespace_cgroup_v1_hierarchies_are_read_only(rt: Runtime) -> None:
    """As without a user namespace, where the mounts' flags may be locked."""
    b = userns_bundle(rt, CGROUP_RO_SCRIPT)
    check_cgroup_v1_read_only(rt("run", "-b", str(b), rt.new_id()))


def test_join_user_namespace_by_path(rt: Runtime) -> None:
    holder = subprocess.Popen(["unshare", "--user", "--map-root-user", "sh", "-c",
                               "echo ok; exec sleep 60"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        b = rt.bundle(**{"process.args": ["readlink", "/proc/self/ns/user"]})
        cfg = rt.config(b)
        cfg["linux"]["namespaces"].append({"type": "user",
                                           "path": f"/proc/{holder.pid}/ns/user"})
        for m in cfg["mounts"]:  # only uid/gid 0 exist in that namespace
            m["options"] = [o for o in m.get("options", []) if o != "gid=5"]
        rt.write_config(b, cfg)
        p = rt("run", "-b", str(b), rt.new_id())
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == os.readlink(f"/proc/{holder.pid}/ns/user")
    finally:
        holder.kill()
        holder.wait()


def test_unmapped_process_user_fails_start_with_the_reason(rt: Runtime) -> None:
    """A uid the user namespace does not map: init can only find out when it
    drops its privileges, after create (the seccomp filter and the user go
    after its last message to the parent); `start` reports init's error."""
    b = userns_bundle(rt, "true")
    cfg = rt.config(b)
    cfg["process"]["user"] = {"uid": 70000, "gid": 0}  # maps cover 0-65535
    rt.write_config(b, cfg)
    cid = rt.new_id()
    rt("create", "-b", str(b), cid, check=True)
    try:
        p = rt("start", cid)
        assert p.returncode == 1
        assert "Invalid argument" in p.stderr, p.stderr
    finally:
        rt("delete", "-f", cid)
