"""The v2 manager against a directory laid out like a fresh cgroup v2 cgroup
(the files a 6.x kernel shows with every controller enabled), asserting
exactly what is written, in which order: runc's fs2 conversions.

The `cg` fixture also runs the same tests against a real cgroup when the host
is pure cgroup v2; elsewhere that variant skips with the reason. Tests that
need a file content a fresh kernel cgroup cannot have take `fake` only.
Device rules (an eBPF program) are tested elsewhere."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyrunc.cgroups import Manager, fs, open_manager, v2
from pyrunc.errors import PyruncError

CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma misc"
FRESH = {
    "cgroup.controllers": CONTROLLERS, "cgroup.subtree_control": "", "cgroup.procs": "",
    "cgroup.events": "populated 0\nfrozen 0", "cgroup.freeze": "0", "cgroup.kill": "",
    "cgroup.type": "domain",
    "cpu.weight": "100", "cpu.weight.nice": "0", "cpu.max": "max 100000", "cpu.max.burst": "0",
    "cpu.idle": "0", "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\n"
    "nr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0",
    "cpuset.cpus": "", "cpuset.mems": "", "cpuset.cpus.effective": "0-1",
    "cpuset.mems.effective": "0",
    "io.weight": "default 100", "io.bfq.weight": "default 100", "io.max": "", "io.stat": "",
    "memory.current": "0", "memory.min": "0", "memory.low": "0", "memory.high": "max",
    "memory.max": "max", "memory.peak": "0", "memory.swap.current": "0",
    "memory.swap.max": "max", "memory.swap.peak": "0", "memory.oom.group": "0",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0",
    "memory.stat": "anon 0\nfile 0\nkernel 0\nshmem 0",
    "pids.current": "0", "pids.max": "max", "pids.peak": "0", "rdma.max": "", "rdma.current": "",
    **{f"hugetlb.{size}.{name}": value for size in ("2MB", "1GB") for name, value in (
        ("max", "max"), ("rsvd.max", "max"), ("current", "0"), ("rsvd.current", "0"),
        ("events", "max 0"))},
}

PURE_V2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def make_fake(root: Path) -> Path:
    d = root / "fake-cgroup"
    d.mkdir()
    for name, text in FRESH.items():
        (d / name).write_text(text + "\n" if text else "")
    return d


class Cgroup:
    """A v2 cgroup directory plus every write pyrunc made to it, in order."""

    def __init__(self, path: Path, fake: bool) -> None:
        self.path, self.fake = path, fake
        self.writes: list[tuple[str, str]] = []

    def set(self, res: dict[str, object]) -> list[tuple[str, str]]:
        self.writes.clear()
        v2.set_resources(str(self.path), res)
        return self.writes

    def read(self, name: str) -> str:
        return (self.path / name).read_text().strip()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Records what goes through fs.write_raw, the one place that writes."""
    log: list[tuple[str, str]] = []
    real = fs.write_raw

    def write_raw(d: str, name: str, value: str) -> None:
        real(d, name, value)
        log.append((name, value))

    monkeypatch.setattr(fs, "write_raw", write_raw)
    return log


@pytest.fixture
def fake(tmp_path: Path, spy: list[tuple[str, str]]) -> Cgroup:
    cg = Cgroup(make_fake(tmp_path), True)
    cg.writes = spy
    return cg


@pytest.fixture(params=["fake", "kernel"])
def cg(request: pytest.FixtureRequest, tmp_path: Path,
       spy: list[tuple[str, str]]) -> Iterator[Cgroup]:
    if request.param == "fake":
        c = Cgroup(make_fake(tmp_path), True)
        c.writes = spy
        yield c
        return
    if not PURE_V2 or os.geteuid() != 0:
        pytest.skip("needs root on a pure cgroup v2 host (this one is v1/hybrid: memory, cpu, "
                    "io, pids are bound to v1 hierarchies)")
    mgr = open_manager(f"/pyrunc-v2test-{uuid.uuid4().hex[:8]}", "x")
    mgr.create()
    try:
        missing = set(CONTROLLERS.split()) - v2.controllers(mgr.dirs[""]) - {"misc", "rdma"}
        if missing:
            pytest.skip(f"controllers not available to a child cgroup here: {sorted(missing)}")
        c = Cgroup(Path(mgr.dirs[""]), False)
        c.writes = spy
        yield c
    finally:
        mgr.destroy()


MiB = 1 << 20


# ---- memory -------------------------------------------------------------------
def test_memory_limit_reservation_swap(cg: Cgroup) -> None:
    assert cg.set({"memory": {"limit": 64 * MiB, "reservation": 32 * MiB,
                              "swap": 96 * MiB}}) == [
        ("memory.swap.max", str(32 * MiB)),  # v1's memory+swap minus memory
        ("memory.max", str(64 * MiB)), ("memory.low", str(32 * MiB))]
    assert cg.read("memory.max") == str(64 * MiB)
    assert cg.read("memory.low") == str(32 * MiB)


def test_swap_equal_to_limit_means_no_swap(cg: Cgroup) -> None:
    assert cg.set({"memory": {"limit": 64 * MiB, "swap": 64 * MiB}}) == [
        ("memory.swap.max", "0"), ("memory.max", str(64 * MiB))]


def test_unlimited(cg: Cgroup) -> None:
    # -1 memory and no swap: both unlimited; -1 swap: "max"
    assert cg.set({"memory": {"limit": -1}}) == [("memory.swap.max", "max"),
                                                  ("memory.max", "max")]
    assert cg.set({"memory": {"limit": 64 * MiB, "swap": -1}}) == [
        ("memory.swap.max", "max"), ("memory.max", str(64 * MiB))]
    assert cg.set({"memory": {"limit": -1, "swap": 64 * MiB}}) == [
        ("memory.swap.max", str(64 * MiB)), ("memory.max", "max")]


@pytest.mark.parametrize("mem,msg", [
    ({"swap": 64 * MiB}, "memory.swap: cannot set a swap limit without a memory limit"),
    ({"limit": 64 * MiB, "swap": 32 * MiB}, "must be >= the memory limit"),
    ({"limit": -5, "swap": 32 * MiB}, "memory.limit: invalid value -5")])
def test_bad_swap_is_refused_before_any_write(cg: Cgroup, mem: dict[str, int],
                                              msg: str) -> None:
    with pytest.raises(PyruncError, match=msg):
        cg.set({"memory": mem})
    assert cg.writes == []


def test_no_swap_accounting(fake: Cgroup) -> None:
    (fake.path / "memory.swap.max").unlink()
    # no swap or unlimited swap: nothing to do, as runc
    assert fake.set({"memory": {"limit": 64 * MiB, "swap": 64 * MiB}}) == [
        ("memory.max", str(64 * MiB))]
    with pytest.raises(PyruncError, match=r"memory\.swap: cannot write .* to memory\.swap\.max"):
        fake.set({"memory": {"limit": 64 * MiB, "swap": 96 * MiB}})
    assert not (fake.path / "memory.swap.max").exists()  # never created


def test_check_before_update(fake: Cgroup) -> None:
    (fake.path / "memory.current").write_text(f"{100 * MiB}\n")
    with pytest.raises(PyruncError, match=f"rejecting memory limit {64 * MiB} <= usage"):
        fake.set({"memory": {"limit": 64 * MiB, "checkBeforeUpdate": True}})
    assert fake.writes == []
    assert fake.set({"memory": {"limit": 128 * MiB, "checkBeforeUpdate": True}}) == [
        ("memory.max", str(128 * MiB))]
    assert fake.set({"memory": {"limit": 64 * MiB}}) == [("memory.max", str(64 * MiB))]


def test_v1_only_memory_settings_are_ignored(cg: Cgroup) -> None:
    assert cg.set({"memory": {"swappiness": 10, "disableOOMKiller": True, "kernel": 1 << 30},
                   "cpu": {"realtimeRuntime": 1000, "realtimePeriod": 10000},
                   "blockIO": {"leafWeight": 300},
                   "network": {"classID": 1}}) == []


# ---- cpu ------------------------------------------------------------------------
@pytest.mark.parametrize("shares,weight", [(2, 1), (1024, 100), (512, 59), (4096, 303),
                                           (262144, 10000)])
def test_shares_to_weight(cg: Cgroup, shares: int, weight: int) -> None:
    assert cg.set({"cpu": {"shares": shares}}) == [("cpu.weight", str(weight))]
    assert cg.read("cpu.weight") == str(weight)


def test_cpu_max(cg: Cgroup) -> None:
    assert cg.set({"cpu": {"quota": 50000, "period": 200000}}) == [("cpu.max", "50000 200000")]
    # one half given: the other half stays (runc update)
    assert cg.set({"cpu": {"quota": 30000}}) == [("cpu.max", "30000 200000")]
    assert cg.set({"cpu": {"period": 100000}}) == [("cpu.max", "30000 100000")]
    assert cg.read("cpu.max") == "30000 100000"
    assert cg.set({"cpu": {"quota": -1}}) == [("cpu.max", "max 100000")]
    assert cg.set({"cpu": {"period": 50000}}) == [("cpu.max", "max 50000")]


def test_cpu_idle_and_burst(cg: Cgroup) -> None:
    assert cg.set({"cpu": {"idle": 1}}) == [("cpu.idle", "1")]
    assert cg.set({"cpu": {"idle": 0, "quota": 50000, "period": 100000, "burst": 20000}}) == [
        ("cpu.idle", "0"), ("cpu.max.burst", "20000"), ("cpu.max", "50000 100000")]
    assert cg.read("cpu.max.burst") == "20000"


def test_cpuset(cg: Cgroup) -> None:
    assert cg.set({"cpu": {"cpus": "0", "mems": "0"}}) == [("cpuset.cpus", "0"),
                                                            ("cpuset.mems", "0")]


def test_docker_zeros_write_nothing(cg: Cgroup) -> None:
    assert cg.set({"memory": {"limit": 0, "reservation": 0, "swap": 0},
                   "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""},
                   "blockIO": {"weight": 0}, "pids": {"limit": 0}}) == []


# ---- io -------------------------------------------------------------------------
def test_io_weight_with_bfq(fake: Cgroup) -> None:
    assert fake.set({"blockIO": {"weight": 500, "weightDevice": [
        {"major": 8, "minor": 0, "weight": 300}, {"major": 8, "minor": 16}]}}) == [
        ("io.bfq.weight", "500"), ("io.bfq.weight", "8:0 300"), ("io.bfq.weight", "8:16 0")]


def test_io_weight_without_bfq(fake: Cgroup) -> None:
    (fake.path / "io.bfq.weight").unlink()
    # blkio [10..1000] -> io.weight [1..10000]; no per-device weights without BFQ
    assert fake.set({"blockIO": {"weight": 500, "weightDevice": [
        {"major": 8, "minor": 0, "weight": 300}]}}) == [("io.weight", "4950")]
    assert fake.set({"blockIO": {"weight": 10}}) == [("io.weight", "1")]
    assert fake.set({"blockIO": {"weight": 1000}}) == [("io.weight", "10000")]


def test_old_kernel_bfq_has_no_device_weights(fake: Cgroup) -> None:
    (fake.path / "io.bfq.weight").write_text("100\n")  # before Linux 5.4
    assert fake.set({"blockIO": {"weightDevice": [{"major": 8, "minor": 0,
                                                   "weight": 300}]}}) == []


def test_io_max(fake: Cgroup) -> None:
    assert fake.set({"blockIO": {
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 200}]}}) == [
        ("io.max", "8:0 rbps=1048576"), ("io.max", "8:0 wbps=2097152"),
        ("io.max", "8:16 riops=100"), ("io.max", "8:16 wiops=200")]


# ---- pids, hugetlb, rdma ---------------------------------------------------------
def test_pids(cg: Cgroup) -> None:
    assert cg.set({"pids": {"limit": 20}}) == [("pids.max", "20")]
    assert cg.read("pids.max") == "20"
    assert cg.set({"pids": {"limit": -1}}) == [("pids.max", "max")]


def test_hugetlb(cg: Cgroup) -> None:
    assert cg.set({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}]}) == [
        ("hugetlb.2MB.max", str(4 * MiB)), ("hugetlb.2MB.rsvd.max", str(4 * MiB))]
    assert cg.read("hugetlb.2MB.max") == str(4 * MiB)


def test_hugetlb_without_reservation_files(fake: Cgroup) -> None:
    for size in ("2MB", "1GB"):
        (fake.path / f"hugetlb.{size}.rsvd.max").unlink()
    assert fake.set({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB},
                                        {"pageSize": "1GB", "limit": 0}]}) == [
        ("hugetlb.2MB.max", str(4 * MiB)), ("hugetlb.1GB.max", "0")]


def test_hugetlb_unknown_size(fake: Cgroup) -> None:
    with pytest.raises(PyruncError, match=r"hugepageLimits\[0\]: .*hugetlb\.3MB\.max"):
        fake.set({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]})


def test_rdma(fake: Cgroup) -> None:
    assert fake.set({"rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000},
                              "mlx4_0": {"hcaObjects": 50}}}) == [
        ("rdma.max", "mlx4_0 hca_object=50"), ("rdma.max", "mlx5_1 hca_handle=3 hca_object=10000")]


# ---- unified ----------------------------------------------------------------------
def test_unified_written_last_line_by_line(cg: Cgroup) -> None:
    assert cg.set({"cpu": {"shares": 1024},
                   "unified": {"cpu.weight": "300", "memory.high": "67108864",
                               "io.max": "8:0 rbps=1000\n8:0 wbps=2000\n"}}) == [
        ("cpu.weight", "100"), ("cpu.weight", "300"), ("memory.high", "67108864"),
        ("io.max", "8:0 rbps=1000"), ("io.max", "8:0 wbps=2000")]
    assert cg.read("cpu.weight") == "300"


def test_unified_checks(fake: Cgroup) -> None:
    with pytest.raises(PyruncError, match=r"unified\['\.\./memory\.max'\]: must be a file name"):
        fake.set({"unified": {"../memory.max": "1"}})
    (fake.path / "cgroup.controllers").write_text("cpu pids\n")
    (fake.path / "memory.high").unlink()
    with pytest.raises(PyruncError, match=r"unified\['memory\.high'\]: the memory controller is "
                                          r"not enabled in this cgroup \(cgroup\.controllers: "
                                          r"cpu pids"):
        fake.set({"unified": {"memory.high": "1"}})
    with pytest.raises(PyruncError, match=r"unified\['nosuchfile'\]: must be CONTROLLER"):
        fake.set({"unified": {"nosuchfile": "1"}})
    with pytest.raises(PyruncError, match=r"unified\['cpu\.nosuch'\]: cannot write '1'"):
        fake.set({"unified": {"cpu.nosuch": "1"}})
    assert not (fake.path / "memory.high").exists() and fake.writes == []


def test_manager_set_on_v2_goes_here(fake: Cgroup) -> None:
    Manager({"": str(fake.path)}).set({"pids": {"limit": 9}, "memory": {"limit": 8 * MiB}})
    assert fake.writes == [("pids.max", "9"), ("memory.max", str(8 * MiB))]


def test_enable_controllers(tmp_path: Path) -> None:
    """Pure v2 create: each ancestor delegates all the root's controllers."""
    root = tmp_path / "mnt"
    (root / "a" / "b").mkdir(parents=True)
    for d in (root, root / "a"):
        (d / "cgroup.subtree_control").write_text("")
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / "cgroup.subtree_control").write_text("cpu memory pids\n")  # already there
    v2.enable_controllers(str(root), str(root / "a" / "b"))
    assert (root / "a" / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (root / "cgroup.subtree_control").read_text() == "cpu memory pids\n"


def test_the_cgroup_drivers_stay_off_os() -> None:
    """create imports its host's driver on every call: `import os` would be
    ~1 ms of its critical path (pyrunc.posixfs)."""
    import subprocess
    import sys

    import pyrunc

    code = (f"import sys; sys.path.insert(0, {str(Path(pyrunc.__file__).parent.parent)!r})\n"
            "import pyrunc.cgroups.v1, pyrunc.cgroups.v2; print('os' in sys.modules)")
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert (p.returncode, p.stdout) == (0, "False\n"), p.stderr


# ---- stats ------------------------------------------------------------------------
def test_stats(fake: Cgroup) -> None:
    p = fake.path
    (p / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"
                                "nr_periods 10\nnr_throttled 2\nthrottled_usec 30\n")
    (p / "memory.stat").write_text("anon 4096\nfile 8192\nkernel 100\n")
    (p / "memory.current").write_text("12288\n")
    (p / "memory.max").write_text("67108864\n")
    (p / "memory.peak").write_text("20000\n")
    (p / "memory.swap.current").write_text("100\n")
    (p / "pids.current").write_text("3\n")
    (p / "pids.max").write_text("10\n")
    (p / "io.stat").write_text("8:16 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n"
                               "8:0 rbytes=10 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n")
    sizes = fs.hugepage_sizes()
    st = v2.stats(str(p))
    assert list(st) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                        "network_interfaces"]
    assert st["cpu"] == {"usage": {"total": 1500000, "kernel": 500000, "user": 1000000},
                         "throttling": {"periods": 10, "throttledPeriods": 2,
                                        "throttledTime": 30000}}
    assert st["memory"] == {
        "cache": 8192,
        "usage": {"limit": 67108864, "usage": 12288, "max": 20000, "failcnt": 0},
        # v1-style memory+swap, the limit stays "max"
        "swap": {"limit": fs.MAX_U64, "usage": 12388, "failcnt": 0},
        "kernel": {"limit": 0, "failcnt": 0}, "kernelTCP": {"limit": 0, "failcnt": 0},
        "raw": {"anon": 4096, "file": 8192, "kernel": 100}}
    assert st["pids"] == {"current": 3, "limit": 10}
    assert st["blkio"] == {
        "ioServiceBytesRecursive": [
            {"major": 8, "op": "Read", "value": 10}, {"major": 8, "op": "Write"},
            {"major": 8, "minor": 16, "op": "Read", "value": 1},
            {"major": 8, "minor": 16, "op": "Write", "value": 2}],
        "ioServicedRecursive": [
            {"major": 8, "op": "Read", "value": 1}, {"major": 8, "op": "Write"},
            {"major": 8, "minor": 16, "op": "Read", "value": 3},
            {"major": 8, "minor": 16, "op": "Write", "value": 4}]}
    assert st["hugetlb"] == {s: {"failcnt": 0} for s in sizes}
    assert st["cpuset"]["sched_load_balance"] == 0 and "cpus" not in st["cpuset"]
    assert st["intel_rdt"] == {} and st["network_interfaces"] is None


def test_stats_without_controllers(fake: Cgroup) -> None:
    (fake.path / "cgroup.controllers").write_text("\n")
    (fake.path / "pids.current").unlink()
    (fake.path / "cgroup.procs").write_text("12\n13\n")
    st = v2.stats(str(fake.path))
    assert st["pids"] == {"current": 2}
    assert st["memory"]["usage"] == {"limit": 0, "failcnt": 0} and "raw" not in st["memory"]
    assert st["blkio"] == {} and st["hugetlb"] == {}


def test_oom_kills(fake: Cgroup) -> None:
    assert v2.oom_kills(str(fake.path)) == 0
    (fake.path / "memory.events").write_text("low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\n")
    assert v2.oom_kills(str(fake.path)) == 2
