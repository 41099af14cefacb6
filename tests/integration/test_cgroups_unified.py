"""The v2 manager on the real unified hierarchy of this host: what v2 offers
without the v1-bound controllers (cgroup.procs, cgroup.freeze, cgroup.events,
cgroup.kill, cgroup.* unified keys, cpu.stat), and the hybrid join of a
container. On a hybrid host the unified mount is /sys/fs/cgroup/unified; on
a pure v2 host it is /sys/fs/cgroup."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyrunc.cgroups import Manager, v2
from pyrunc.errors import PyruncError
from tests.conftest import Runtime, error_lines
from tests.integration.test_cgroups_cli import start


def _unified_mount() -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.startswith("cgroup2 "):
                return left.split()[4]
    return None


UNIFIED = _unified_mount()
pytestmark = pytest.mark.skipif(UNIFIED is None or os.geteuid() != 0,
                                reason="needs root and a cgroup2 mount")


@pytest.fixture
def mgr() -> Iterator[Manager]:
    """A v2 manager on a fresh cgroup of our own, straight under the mount."""
    assert UNIFIED is not None
    m = Manager({"": os.path.join(UNIFIED, f"pyrunc-test-{uuid.uuid4().hex[:8]}")})
    m.create()
    try:
        yield m
    finally:
        m.destroy()
        assert not os.path.exists(m.dirs[""])


@pytest.fixture
def busy(mgr: Manager) -> Iterator[subprocess.Popen[bytes]]:
    """A shell spinning in the cgroup, counting in its CPU time."""
    p = subprocess.Popen(["sh", "-c", "while :; do :; done"])
    try:
        mgr.apply(p.pid)
        yield p
    finally:
        p.kill()
        p.wait()


def events(m: Manager) -> dict[str, str]:
    text = Path(m.dirs[""], "cgroup.events").read_text()
    return dict(line.split() for line in text.splitlines())


def cpu_ticks(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_freeze_and_thaw(mgr: Manager, busy: subprocess.Popen[bytes]) -> None:
    assert mgr.pids() == [busy.pid]
    assert events(mgr) == {"populated": "1", "frozen": "0"}
    mgr.freeze()
    assert events(mgr)["frozen"] == "1" and mgr.is_frozen()
    before = cpu_ticks(busy.pid)
    time.sleep(0.3)
    assert cpu_ticks(busy.pid) == before  # frozen: it does not run at all
    mgr.thaw()
    assert events(mgr)["frozen"] == "0" and not mgr.is_frozen()
    for _ in range(100):
        if cpu_ticks(busy.pid) > before:
            break
        time.sleep(0.05)
    assert cpu_ticks(busy.pid) > before  # running again


def test_cgroup_kill_takes_frozen_processes_too(mgr: Manager) -> None:
    procs = [subprocess.Popen(["sleep", "600"]) for _ in range(3)]
    try:
        for p in procs:
            mgr.apply(p.pid)
        mgr.freeze()
        mgr.signal_all(9)
        assert [p.wait(timeout=10) for p in procs] == [-9, -9, -9]
        assert events(mgr)["populated"] == "0"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_unified_keys_for_real(mgr: Manager) -> None:
    mgr.set({"unified": {"cgroup.max.descendants": "3", "cgroup.max.depth": "2"}})
    d = Path(mgr.dirs[""])
    assert (d / "cgroup.max.descendants").read_text().strip() == "3"
    assert (d / "cgroup.max.depth").read_text().strip() == "2"
    have = v2.controllers(mgr.dirs[""])
    if "memory" in have:
        pytest.skip("memory is enabled here: nothing to refuse")
    with pytest.raises(PyruncError, match=r"unified\['memory\.high'\]: the memory controller "
                                          r"is not enabled in this cgroup"):
        mgr.set({"unified": {"memory.high": "64M"}})
    assert not (d / "memory.high").exists()


def test_stats_without_v2_controllers(mgr: Manager, busy: subprocess.Popen[bytes]) -> None:
    for _ in range(100):  # let it run a little
        if cpu_ticks(busy.pid) > 0:
            break
        time.sleep(0.05)
    st = mgr.stats()
    assert st["pids"]["current"] == 1  # counted from cgroup.procs without a pids controller
    assert st["cpu"]["usage"]["total"] > 0  # cpu.stat is there without the cpu controller
    assert st["cpu"]["usage"]["user"] + st["cpu"]["usage"]["kernel"] > 0


# ---- through the CLI: the hybrid join ----------------------------------------------
def unified_dir(pid: int) -> Path:
    assert UNIFIED is not None
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return Path(UNIFIED) / line[3:].lstrip("/")
    raise AssertionError("no unified cgroup")


@pytest.mark.skipif(UNIFIED == "/sys/fs/cgroup", reason="pure v2 host: no hybrid join")
def test_hybrid_join_created_and_removed(rt: Runtime) -> None:
    cid, pid = start(rt, "sleep 600 & sleep 601 & wait")
    d = unified_dir(pid)
    assert d.name == cid and d.is_dir()
    for _ in range(50):
        procs = (d / "cgroup.procs").read_text().split()
        if len(procs) == 3:
            break
        time.sleep(0.05)
    assert str(pid) in procs and len(procs) == 3  # the children are there too
    rt("pause", cid, check=True)
    rt("resume", cid, check=True)
    assert rt("kill", "--all", cid, "KILL").returncode == 0
    for _ in range(100):
        if (d / "cgroup.events").read_text().splitlines()[0] == "populated 0":
            break
        time.sleep(0.05)
    assert "populated 0" in (d / "cgroup.events").read_text().splitlines()
    rt("delete", cid, check=True)
    assert not d.exists()


def test_hugetlb_limits(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["sleep", "600"],
                     "linux.resources": {"hugepageLimits": [{"pageSize": "2MB",
                                                             "limit": 4 << 20}]}})
    cid = rt.new_id()
    p = rt("run", "-d", "-b", str(b), cid)
    parent_has_it = "hugetlb" in Path(UNIFIED or "", "cgroup.subtree_control").read_text()
    v1_hugetlb = os.path.isdir("/sys/fs/cgroup/hugetlb")
    if not parent_has_it and not v1_hugetlb:
        # Here: hugetlb is on the unified hierarchy, but the root cgroup does not
        # delegate it (and tests never write to cgroups they did not create).
        assert p.returncode == 1
        assert error_lines(p.stderr)[-1].startswith(
            "linux.resources.hugepageLimits: hugetlb is only on the unified hierarchy here, "
            "and not enabled for this cgroup"), p.stderr
        return
    assert p.returncode == 0, p.stderr
    pid = rt.state(cid)["pid"]
    if v1_hugetlb:
        rel = next(ln.split(":", 2)[2] for ln in Path(f"/proc/{pid}/cgroup").read_text()
                   .splitlines() if "hugetlb" in ln.split(":")[1].split(","))
        f = Path("/sys/fs/cgroup/hugetlb", rel.lstrip("/"), "hugetlb.2MB.limit_in_bytes")
    else:
        f = unified_dir(pid) / "hugetlb.2MB.max"
    assert f.read_text().strip() == str(4 << 20)
    rt("delete", "-f", cid, check=True)
