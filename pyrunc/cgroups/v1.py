"""cgroup v1 resources and stats, the way runc's fs driver does them: one
directory per controller hierarchy; in "hybrid" mode hugetlb may live only
on the unified hierarchy, where it is set the v2 way."""

from __future__ import annotations

import errno
import posix  # not os: see pyrunc.posixfs

from pyrunc import posixfs
from pyrunc.cgroups import DEFAULT_DEVICE_RULES, fs
from pyrunc.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cgroups import Manager

class _Writer:
    def __init__(self, mgr: Manager) -> None:
        self.mgr = mgr

    def dir(self, ctrl: str, field: str) -> str:
        d = self.mgr.dir_of(ctrl)
        if d is None:  # runc: "cannot set X limit: container could not join or create cgroup"
            raise PyruncError(f"linux.resources.{field}: the {ctrl} cgroup controller is "
                              "not mounted on this host")
        return d

    def __call__(self, ctrl: str, name: str, value: Any, field: str) -> None:
        fs.write(self.dir(ctrl, field), name, value, field, self.mgr.rootless)


def set_resources(mgr: Manager, res: dict[str, Any]) -> None:
    """Apply linux.resources on v1, in runc's subsystem order. Zero means
    "not set" for the numbers (runc's rule; docker always sends shares 0,
    blkio weight 0, period 0...)."""
    if res.get("unified"):
        raise PyruncError("linux.resources.unified: needs cgroup v2, and this host's "
                          "controllers are on cgroup v1")
    w = _Writer(mgr)
    cpu = res.get("cpu") or {}
    for key in ("cpus", "mems"):
        if cpu.get(key):
            w("cpuset", f"cpuset.{key}", cpu[key], f"cpu.{key}")
    if "devices" in res:
        _set_devices(mgr, w, res["devices"] or [])
    _set_memory(mgr, w, res.get("memory") or {})
    _set_cpu(w, cpu)
    pids = res.get("pids") or {}
    if pids.get("limit"):  # 0 is unset (runc 1.1; docker sends it), below 0 unlimited
        w("pids", "pids.max", "max" if pids["limit"] < 0 else pids["limit"], "pids.limit")
    _set_blkio(w, res.get("blockIO") or {})
    _set_hugetlb(mgr, w, res.get("hugepageLimits") or [])
    net = res.get("network") or {}
    if net.get("classID"):
        w("net_cls", "net_cls.classid", net["classID"], "network.classID")
    for i, p in enumerate(net.get("priorities") or []):
        w("net_prio", "net_prio.ifpriomap", f"{p['name']} {p['priority']}",
          f"network.priorities[{i}]")
    rdma = res.get("rdma") or {}
    for dev in sorted(rdma):
        w("rdma", "rdma.max", fs.rdma_line(dev, rdma[dev]), f"rdma.{dev}")


def _set_devices(mgr: Manager, w: _Writer, rules: list[dict[str, Any]]) -> None:
    if mgr.dir_of("devices") is None:
        if "" in mgr.dirs:  # hybrid without a v1 devices hierarchy: the v2 way
            from pyrunc.cgroups.devices_bpf import apply_device_rules

            apply_device_rules(mgr.dirs[""], rules)
            return
    d = w.dir("devices", "devices")
    try:
        with fs.Batch(d, mgr.rootless) as write:
            write("devices.deny", "a", "devices")
            for i, r in enumerate(rules):
                kind = r.get("type", "a")
                major = "*" if r.get("major", -1) in (None, -1) else r["major"]
                minor = "*" if r.get("minor", -1) in (None, -1) else r["minor"]
                rule = "a" if kind == "a" else f"{kind} {major}:{minor} {r.get('access', 'rwm')}"
                write("devices.allow" if r.get("allow") else "devices.deny", rule,
                      f"devices[{i}]")
            for rule in DEFAULT_DEVICE_RULES:
                write("devices.allow", rule, "devices")
    except PyruncError:
        if not mgr.rootless:  # rootless: device rules are not expected to work (runc)
            raise


def _set_memory(mgr: Manager, w: _Writer, mem: dict[str, Any]) -> None:
    limit, swap = mem.get("limit") or 0, mem.get("swap") or 0
    if mem.get("kernel") or mem.get("kernelTCP"):
        from pyrunc import log

        log.warning("linux.resources.memory.kernel, kernelTCP: kernel memory limits are "
                    "ignored (as runc does)")
    if limit or swap:
        d = w.dir("memory", "memory")
        if mem.get("checkBeforeUpdate"):
            from pyrunc.cgroups.v2 import check_usage

            check_usage(fs.read_int(d, "memory.usage_in_bytes"), limit, swap)
        _set_memory_and_swap(w, d, limit, swap)
    if mem.get("reservation"):
        w("memory", "memory.soft_limit_in_bytes", mem["reservation"], "memory.reservation")
    if mem.get("disableOOMKiller"):
        w("memory", "memory.oom_control", 1, "memory.disableOOMKiller")
    swappiness = mem.get("swappiness")
    if swappiness not in (None, -1):
        if not 0 <= swappiness <= 100:
            raise PyruncError(f"linux.resources.memory.swappiness: invalid value {swappiness} "
                              "(valid range is 0-100)")
        w("memory", "memory.swappiness", swappiness, "memory.swappiness")


def _set_memory_and_swap(w: _Writer, d: str, limit: int, swap: int) -> None:
    """memory.memsw.limit_in_bytes must stay >= memory.limit_in_bytes: write
    them in the order that keeps that true (runc's setMemoryAndSwap)."""
    if limit == -1 and not swap and posixfs.exists(f"{d}/memory.memsw.limit_in_bytes"):
        swap = -1  # unlimited memory, no word on swap: unlimited swap too
    order = ["memory", "swap"]
    if limit and swap:
        cur = fs.read_int(d, "memory.limit_in_bytes") or 0
        if swap == -1 or cur < swap:
            order.reverse()  # raise the memory+swap ceiling first
    for which in order:
        if which == "swap" and swap:
            w("memory", "memory.memsw.limit_in_bytes", swap, "memory.swap")
        elif which == "memory" and limit:
            try:
                fs.write_raw(d, "memory.limit_in_bytes", str(limit))
            except OSError as e:
                if e.errno != errno.EBUSY:
                    w("memory", "memory.limit_in_bytes", limit, "memory.limit")
                    continue
                raise PyruncError(
                    f"linux.resources.memory.limit: unable to set memory limit to {limit} "
                    f"(current usage: {fs.read_int(d, 'memory.usage_in_bytes')}, peak usage: "
                    f"{fs.read_int(d, 'memory.max_usage_in_bytes')})") from None


def _set_cpu(w: _Writer, cpu: dict[str, Any]) -> None:
    if cpu.get("shares"):
        w("cpu", "cpu.shares", cpu["shares"], "cpu.shares")
        got = fs.read_int(w.dir("cpu", "cpu.shares"), "cpu.shares")
        if got is not None and got != cpu["shares"]:
            bound = "maximum" if got < cpu["shares"] else "minimum"
            raise PyruncError(f"linux.resources.cpu.shares: the {bound} allowed cpu-shares "
                              f"is {got}")
    quota, period = cpu.get("quota") or 0, cpu.get("period") or 0
    pending = []
    for key, name, value in (("period", "cpu.cfs_period_us", period),
                             ("burst", "cpu.cfs_burst_us", cpu.get("burst"))):
        if value is None or (key == "period" and not value):
            continue
        try:
            fs.write_raw(w.dir("cpu", f"cpu.{key}"), name, str(value))
        except OSError as e:
            if key == "burst" and e.errno == errno.ENOENT:
                continue  # no burst knob on this kernel: runc ignores it
            # EINVAL: the new value does not fit the current quota; retry after it
            if e.errno != errno.EINVAL or not quota:
                w("cpu", name, value, f"cpu.{key}")
            pending.append((name, value, f"cpu.{key}"))
    if quota:
        w("cpu", "cpu.cfs_quota_us", quota, "cpu.quota")
        for name, value, field in pending:
            w("cpu", name, value, field)
    if cpu.get("idle") is not None:
        w("cpu", "cpu.idle", cpu["idle"], "cpu.idle")
    for key, name in (("realtimePeriod", "cpu.rt_period_us"),
                      ("realtimeRuntime", "cpu.rt_runtime_us")):
        if cpu.get(key):
            w("cpu", name, cpu[key], f"cpu.{key}")


def _set_blkio(w: _Writer, bio: dict[str, Any]) -> None:
    if not bio:
        return
    d = w.dir("blkio", "blockIO")
    # CFQ's names when they exist, else BFQ's (runc's detectWeightFilenames)
    cfq = posixfs.exists(f"{d}/blkio.weight")
    weight, weight_dev = (("blkio.weight", "blkio.weight_device") if cfq
                          else ("blkio.bfq.weight", "blkio.bfq.weight_device"))
    if bio.get("weight"):
        w("blkio", weight, bio["weight"], "blockIO.weight")
    if bio.get("leafWeight"):
        w("blkio", "blkio.leaf_weight", bio["leafWeight"], "blockIO.leafWeight")
    for i, wd in enumerate(bio.get("weightDevice") or []):
        dev = f"{wd['major']}:{wd['minor']}"
        if wd.get("weight"):
            w("blkio", weight_dev, f"{dev} {wd['weight']}", f"blockIO.weightDevice[{i}]")
        if wd.get("leafWeight"):
            w("blkio", "blkio.leaf_weight_device", f"{dev} {wd['leafWeight']}",
              f"blockIO.weightDevice[{i}].leafWeight")
    for key, name in (("throttleReadBpsDevice", "read_bps_device"),
                      ("throttleWriteBpsDevice", "write_bps_device"),
                      ("throttleReadIOPSDevice", "read_iops_device"),
                      ("throttleWriteIOPSDevice", "write_iops_device")):
        for i, td in enumerate(bio.get(key) or []):
            w("blkio", f"blkio.throttle.{name}", f"{td['major']}:{td['minor']} {td['rate']}",
              f"blockIO.{key}[{i}]")


def _set_hugetlb(mgr: Manager, w: _Writer, limits: list[dict[str, Any]]) -> None:
    if not limits:
        return
    if mgr.dir_of("hugetlb") is None and "" in mgr.dirs:
        from pyrunc.cgroups import v2

        d = mgr.dirs[""]
        if "hugetlb" not in v2.controllers(d) and not mgr.rootless:
            raise PyruncError("linux.resources.hugepageLimits: hugetlb is only on the unified "
                              "hierarchy here, and not enabled for this cgroup (its parent's "
                              "cgroup.subtree_control lacks +hugetlb)")
        fs.write_hugetlb(d, limits, mgr.rootless, "max", "rsvd.max")
        return
    fs.write_hugetlb(w.dir("hugetlb", "hugepageLimits[0]"), limits, mgr.rootless,
                     "limit_in_bytes", "rsvd.limit_in_bytes")


# ---- stats --------------------------------------------------------------------
def stats(mgr: Manager) -> dict[str, Any]:
    """`events --stats` data from the v1 hierarchies (runc's fs GetStats)."""
    from pyrunc.cgroups import stats as S  # only `events` needs it

    def at(ctrl: str) -> str:
        return mgr.dir_of(ctrl) or "/nonexistent"

    acct = at("cpuacct")
    percpu = [int(x) for x in (fs.read(acct, "cpuacct.usage_percpu") or "").split()]
    pk: list[int] = []
    pu: list[int] = []
    for line in (fs.read(acct, "cpuacct.usage_all") or "").splitlines()[1:]:
        f = line.split()
        if len(f) == 3:
            pu.append(int(f[1]))
            pk.append(int(f[2]))
    tick = 1_000_000_000 // posix.sysconf("SC_CLK_TCK")
    st = fs.read_keyed(acct, "cpuacct.stat")
    thr = fs.read_keyed(at("cpu"), "cpu.stat")
    cpu = S.cpu(total=fs.read_int(acct, "cpuacct.usage") or 0, percpu=percpu,
                percpu_kernel=pk, percpu_user=pu, kernel=st.get("system", 0) * tick,
                user=st.get("user", 0) * tick, periods=thr.get("nr_periods", 0),
                throttled_periods=thr.get("nr_throttled", 0),
                throttled_time=thr.get("throttled_time", 0))
    cs = at("cpuset")
    cpuset = S.cpuset()
    if mgr.dir_of("cpuset"):
        cpuset = S.cpuset(S.parse_list(fs.read(cs, "cpuset.cpus") or ""),
                          S.parse_list(fs.read(cs, "cpuset.mems") or ""),
                          {k: fs.read_int(cs, f"cpuset.{k}") or 0 for k in S.CPUSET_FLAGS})

    m = at("memory")

    def entry(prefix: str) -> dict[str, Any]:
        return S.memory_entry(fs.read_int(m, prefix + "limit_in_bytes") or 0,
                              fs.read_int(m, prefix + "usage_in_bytes") or 0,
                              fs.read_int(m, prefix + "max_usage_in_bytes") or 0,
                              fs.read_int(m, prefix + "failcnt") or 0)
    raw = fs.read_keyed(m, "memory.stat")
    memory = S.memory(entry("memory."), entry("memory.memsw."), entry("memory.kmem."),
                      entry("memory.kmem.tcp."), raw, cache=raw.get("cache", 0))
    p = at("pids")
    limit = fs.read_int(p, "pids.max") or 0
    pids = S.pids(fs.read_int(p, "pids.current") or 0, 0 if limit == fs.MAX_U64 else limit)
    hugetlb: dict[str, Any] = {}
    h = mgr.dir_of("hugetlb")
    for size in fs.hugepage_sizes():
        if h:
            hugetlb[size] = S.hugetlb_entry(
                fs.read_int(h, f"hugetlb.{size}.usage_in_bytes") or 0,
                fs.read_int(h, f"hugetlb.{size}.max_usage_in_bytes") or 0,
                fs.read_int(h, f"hugetlb.{size}.failcnt") or 0)
        elif "" in mgr.dirs:  # hybrid: hugetlb on the unified hierarchy
            from pyrunc.cgroups import v2

            if (unified := v2.hugetlb_stats(mgr.dirs[""], size)) is not None:
                hugetlb[size] = unified
    return S.stats(cpu, cpuset, memory, pids, _blkio_stats(at("blkio")), hugetlb)


_BLKIO_GROUPS = [
    [("bfq.sectors_recursive", "sectorsRecursive"),
     ("bfq.io_service_time_recursive", "ioServiceTimeRecursive"),
     ("bfq.io_wait_time_recursive", "ioWaitTimeRecursive"),
     ("bfq.io_merged_recursive", "ioMergedRecursive"),
     ("bfq.io_queued_recursive", "ioQueueRecursive"),
     ("bfq.time_recursive", "ioTimeRecursive"),
     ("bfq.io_serviced_recursive", "ioServicedRecursive"),
     ("bfq.io_service_bytes_recursive", "ioServiceBytesRecursive")],
    [("bfq.io_serviced_recursive", "ioServicedRecursive"),
     ("bfq.io_service_bytes_recursive", "ioServiceBytesRecursive")],
    [("sectors_recursive", "sectorsRecursive"),
     ("io_service_time_recursive", "ioServiceTimeRecursive"),
     ("io_wait_time_recursive", "ioWaitTimeRecursive"),
     ("io_merged_recursive", "ioMergedRecursive"),
     ("io_queued_recursive", "ioQueueRecursive"),
     ("time_recursive", "ioTimeRecursive"),
     ("io_serviced_recursive", "ioServicedRecursive"),
     ("io_service_bytes_recursive", "ioServiceBytesRecursive")],
    [("throttle.io_serviced_recursive", "ioServicedRecursive"),
     ("throttle.io_service_bytes_recursive", "ioServiceBytesRecursive")],
]
_BLKIO_ORDER = ["ioServiceBytesRecursive", "ioServicedRecursive", "ioQueueRecursive",
                "ioServiceTimeRecursive", "ioWaitTimeRecursive", "ioMergedRecursive",
                "ioTimeRecursive", "sectorsRecursive"]


def _blkio_stats(d: str) -> dict[str, Any]:
    """The first family of blkio stat files this kernel has (BFQ debug, BFQ,
    CFQ, then throttle), as runc picks them."""
    from pyrunc.cgroups import stats as S  # only `events` needs it

    for group in _BLKIO_GROUPS:
        if not posixfs.exists(f"{d}/blkio.{group[0][0]}"):
            continue
        tables: dict[str, list[dict[str, Any]]] = {}
        for name, key in group:
            rows = []
            for line in (fs.read(d, "blkio." + name) or "").splitlines():
                f = line.replace(":", " ").split()
                if len(f) in (3, 4) and f[0].isdigit() and f[1].isdigit() and f[-1].isdigit():
                    rows.append(S.blkio_entry(int(f[0]), int(f[1]),
                                              f[2] if len(f) == 4 else "", int(f[-1])))
            if rows:
                tables[key] = rows
        return {k: tables[k] for k in _BLKIO_ORDER if k in tables}
    return {}
