"""Every cgroup v1 resource observed in the cgroup files of a running
container, at create and through `pyrunc update`; what this host lacks
(net_cls, net_prio, rdma, CFQ's leaf weights) is a clear error, as in runc."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Runtime, error_lines
from tests.integration.test_cgroups_cli import cgroup_dir, start

pytestmark = pytest.mark.skipif(not os.path.isdir("/sys/fs/cgroup/memory"),
                                reason="needs cgroup v1 controllers")
MiB = 1 << 20


def read(d: Path, name: str) -> str:
    return (d / name).read_text().strip()


def mounted(controller: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(" - cgroup " in line and controller in line.split()[-1].split(",")
                   for line in f)


@pytest.fixture
def loopdev(tmp_path: Path) -> Iterator[str]:
    """A loop device of our own on the BFQ scheduler (per-device weights need
    BFQ); "MAJ:MIN". Detached afterwards."""
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(8 * MiB)
    dev = subprocess.run(["losetup", "-f", "--show", str(img)], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        name = os.path.basename(dev)
        sched = Path(f"/sys/block/{name}/queue/scheduler")
        if "bfq" not in sched.read_text():
            pytest.skip("no BFQ I/O scheduler in this kernel")
        sched.write_text("bfq")
        yield Path(f"/sys/block/{name}/dev").read_text().strip()
    finally:
        subprocess.run(["losetup", "-d", dev], check=True)


def test_blockio_weight_device_and_throttle(rt: Runtime, loopdev: str) -> None:
    major, minor = (int(x) for x in loopdev.split(":"))
    dev = {"major": major, "minor": minor}
    cid, pid = start(rt, **{"linux.resources": {"blockIO": {
        "weight": 300, "weightDevice": [{**dev, "weight": 500}],
        "throttleReadBpsDevice": [{**dev, "rate": 1 * MiB}],
        "throttleWriteBpsDevice": [{**dev, "rate": 2 * MiB}],
        "throttleReadIOPSDevice": [{**dev, "rate": 100}],
        "throttleWriteIOPSDevice": [{**dev, "rate": 200}]}}})
    blk = cgroup_dir(pid, "blkio")
    assert read(blk, "blkio.bfq.weight") == "300"
    assert f"{loopdev} 500" in read(blk, "blkio.bfq.weight_device").splitlines()
    assert read(blk, "blkio.throttle.read_bps_device") == f"{loopdev} {1 * MiB}"
    assert read(blk, "blkio.throttle.write_bps_device") == f"{loopdev} {2 * MiB}"
    assert read(blk, "blkio.throttle.read_iops_device") == f"{loopdev} 100"
    assert read(blk, "blkio.throttle.write_iops_device") == f"{loopdev} 200"
    p = rt("update", "--blkio-weight", "200", cid)
    assert p.returncode == 0, p.stderr
    assert read(blk, "blkio.bfq.weight") == "200"
    p = rt("update", "-r", "-", cid, input=json.dumps({"blockIO": {
        "weightDevice": [{**dev, "weight": 700}],
        "throttleReadBpsDevice": [{**dev, "rate": 4 * MiB}]}}))
    assert p.returncode == 0, p.stderr
    assert f"{loopdev} 700" in read(blk, "blkio.bfq.weight_device").splitlines()
    assert read(blk, "blkio.throttle.read_bps_device") == f"{loopdev} {4 * MiB}"
    rt("delete", "-f", cid, check=True)


@pytest.mark.parametrize("resources,message", [
    ({"blockIO": {"leafWeight": 300}},
     "linux.resources.blockIO.leafWeight: cannot write '300' to blkio.leaf_weight: no such "
     "control file"),
    ({"network": {"classID": 1048577}},
     "linux.resources.network.classID: the net_cls cgroup controller is not mounted"),
    ({"network": {"priorities": [{"name": "eth0", "priority": 5}]}},
     "linux.resources.network.priorities[0]: the net_prio cgroup controller is not mounted"),
    ({"rdma": {"mlx5_1": {"hcaHandles": 3}}},
     "linux.resources.rdma.mlx5_1: the rdma cgroup controller is not mounted"),
])
def test_what_this_host_lacks_is_a_clear_error(rt: Runtime, resources: dict[str, object],
                                                 message: str) -> None:
    ctrl = {"network": "net_cls" if "classID" in str(resources) else "net_prio",
            "rdma": "rdma", "blockIO": ""}[next(iter(resources))]
    if ctrl and mounted(ctrl):
        pytest.skip(f"{ctrl} is mounted here")
    if "leafWeight" in str(resources) and Path("/sys/fs/cgroup/blkio/blkio.leaf_weight").exists():
        pytest.skip("this kernel still has CFQ's leaf weights")
    b = rt.bundle(**{"linux.resources": resources})
    p = rt("run", "-d", "-b", str(b), rt.new_id())
    assert p.returncode == 1
    assert error_lines(p.stderr)[-1].startswith(message), p.stderr


@pytest.mark.skipif(not (mounted("net_cls") and mounted("net_prio")),
                    reason="net_cls/net_prio are not mounted on this host")
def test_network_class_and_priorities(rt: Runtime) -> None:
    cid, pid = start(rt, **{"linux.resources": {"network": {
        "classID": 1048577, "priorities": [{"name": "lo", "priority": 5}]}}})
    assert read(cgroup_dir(pid, "net_cls"), "net_cls.classid") == "1048577"
    assert "lo 5" in read(cgroup_dir(pid, "net_prio"), "net_prio.ifpriomap").splitlines()
    rt("delete", "-f", cid, check=True)


def test_memory_settings(rt: Runtime) -> None:
    cid, pid = start(rt, **{"linux.resources": {"memory": {
        "limit": 64 * MiB, "reservation": 32 * MiB, "swap": 96 * MiB, "swappiness": 10,
        "disableOOMKiller": True}}})
    mem = cgroup_dir(pid, "memory")
    assert read(mem, "memory.limit_in_bytes") == str(64 * MiB)
    assert read(mem, "memory.soft_limit_in_bytes") == str(32 * MiB)
    assert read(mem, "memory.memsw.limit_in_bytes") == str(96 * MiB)
    assert read(mem, "memory.swappiness") == "10"
    assert "oom_kill_disable 1" in read(mem, "memory.oom_control").splitlines()
    # raising memory above the old memory+swap: swap goes first (runc's order)
    p = rt("update", "--memory", "128m", "--memory-swap", "256m", cid)
    assert p.returncode == 0, p.stderr
    assert read(mem, "memory.limit_in_bytes") == str(128 * MiB)
    assert read(mem, "memory.memsw.limit_in_bytes") == str(256 * MiB)
    # and back down: memory goes first
    p = rt("update", "--memory", "32m", "--memory-swap", "48m", cid)
    assert p.returncode == 0, p.stderr
    assert read(mem, "memory.memsw.limit_in_bytes") == str(48 * MiB)
    p = rt("update", "--memory", "-1", cid)  # unlimited: swap too
    assert p.returncode == 0, p.stderr
    assert int(read(mem, "memory.limit_in_bytes")) > 1 << 60
    assert int(read(mem, "memory.memsw.limit_in_bytes")) > 1 << 60
    rt("delete", "-f", cid, check=True)


def test_memory_check_before_update(rt: Runtime) -> None:
    cid, pid = start(rt)
    mem = cgroup_dir(pid, "memory")
    usage = int(read(mem, "memory.usage_in_bytes"))
    assert usage > 4096
    p = rt("update", "-r", "-", cid, input=json.dumps(
        {"memory": {"limit": 4096, "checkBeforeUpdate": True}}))
    assert p.returncode == 1
    assert "linux.resources.memory.limit: rejecting memory limit 4096 <= usage" in p.stderr
    assert int(read(mem, "memory.limit_in_bytes")) > 1 << 60  # untouched
    assert rt.state(cid)["status"] == "running"
    p = rt("update", "-r", "-", cid, input=json.dumps(
        {"memory": {"limit": 64 * MiB, "checkBeforeUpdate": True}}))
    assert p.returncode == 0, p.stderr
    assert read(mem, "memory.limit_in_bytes") == str(64 * MiB)
    rt("delete", "-f", cid, check=True)


def test_kernel_memory_is_ignored(rt: Runtime) -> None:
    cid, pid = start(rt, **{"linux.resources": {"memory": {"kernel": 64 * MiB,
                                                           "kernelTCP": 8 * MiB}}})
    mem = cgroup_dir(pid, "memory")
    assert int(read(mem, "memory.kmem.limit_in_bytes")) > 1 << 60
    assert int(read(mem, "memory.kmem.tcp.limit_in_bytes")) > 1 << 60
    rt("delete", "-f", cid, check=True)


def test_cpu_settings_and_update_flags(rt: Runtime) -> None:
    cid, pid = start(rt, **{"linux.resources": {"cpu": {
        "shares": 512, "quota": 50000, "period": 100000, "burst": 10000,
        "cpus": "0", "mems": "0"}}})
    cpu, cpuset = cgroup_dir(pid, "cpu"), cgroup_dir(pid, "cpuset")
    assert [read(cpu, f) for f in ("cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us",
                                   "cpu.cfs_burst_us")] == ["512", "50000", "100000", "10000"]
    assert read(cpuset, "cpuset.cpus") == "0" and read(cpuset, "cpuset.mems") == "0"
    p = rt("update", "--cpu-period", "200000", "--cpu-quota", "80000", "--cpu-burst", "20000",
           "--cpu-share", "256", "--cpuset-cpus", "0-1", "--cpu-rt-period", "1000000",
           "--cpu-rt-runtime", "10000", cid)
    assert p.returncode == 0, p.stderr
    assert [read(cpu, f) for f in ("cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us",
                                   "cpu.cfs_burst_us", "cpu.rt_period_us",
                                   "cpu.rt_runtime_us")] == ["256", "80000", "200000", "20000",
                                                             "1000000", "10000"]
    assert read(cpuset, "cpuset.cpus") == "0-1"
    p = rt("update", "--cpu-idle", "1", cid)
    assert p.returncode == 0, p.stderr
    assert read(cpu, "cpu.idle") == "1"
    rt("delete", "-f", cid, check=True)
