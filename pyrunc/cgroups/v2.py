"""cgroup v2 (unified) resources, the way runc's fs2 driver sets them.

OCI resources are cgroup-v1 shaped; runc converts them: cpu.shares ->
cpu.weight, memory swap (memory+swap in v1) -> memory.swap.max (swap only),
blkio weight -> io.bfq.weight or io.weight, throttle*Device -> io.max lines.
Values of 0 mean "unset" (what docker always sends), -1 means "max". What
v2 has no file for (realtime, swappiness, disableOOMKiller, leafWeight,
network) runc ignores, and so do we, with a warning."""

from __future__ import annotations

import errno

from pyrunc import posixfs
from pyrunc.cgroups import fs
from pyrunc.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2..262144] -> cpu.weight [1..10000]: runc's current
    quadratic fit through min, max and the defaults (1024 -> 100)."""
    import math

    if shares == 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    lg = math.log2(shares)
    return math.ceil(10 ** ((lg * lg + 125 * lg) / 612.0 - 7.0 / 34.0))


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10..1000] -> io.weight [1..10000] (runc's linear map)."""
    return 0 if weight == 0 else 1 + (weight - 10) * 9999 // 990


def swap_to_v2(swap: int, limit: int) -> int:
    """OCI memory.swap is memory+swap (v1); memory.swap.max is swap alone."""
    if limit == -1 and swap == 0:
        return -1  # unlimited memory and no word on swap: both unlimited
    if swap in (-1, 0) or limit == -1:
        return swap
    if limit == 0:
        raise PyruncError("linux.resources.memory.swap: cannot set a swap limit "
                          "without a memory limit")
    if limit < 0:
        raise PyruncError(f"linux.resources.memory.limit: invalid value {limit}")
    if swap < limit:
        raise PyruncError("linux.resources.memory.swap: memory+swap limit "
                          f"({swap}) must be >= the memory limit ({limit})")
    return swap - limit


def _num(value: int) -> str:
    """runc's numToStr: 0 is unset (""), -1 is "max"."""
    return "" if value == 0 else "max" if value == -1 else str(value)


def controllers(d: str) -> set[str]:
    return set((fs.read(d, "cgroup.controllers") or "").split())


def enable_controllers(mount: str, d: str) -> None:
    """Like runc's CreateCgroupPath on a pure v2 host: every ancestor of d
    (from the mount's root down) delegates all the root's controllers to its
    children. A controller the kernel refuses is left out; writing one of its
    files later gives the clear error."""
    want = (fs.read(mount, "cgroup.controllers") or "").split()
    if not want:
        return
    rel = posixfs.relpath(posixfs.dirname(d), mount)
    cur = mount
    for part in [""] + ([] if rel == "." else rel.split("/")):
        cur = posixfs.join(cur, part) if part else cur
        have = set((fs.read(cur, "cgroup.subtree_control") or "").split())
        if have.issuperset(want):
            continue
        try:
            fs.write_raw(cur, "cgroup.subtree_control", " ".join("+" + c for c in want))
        except OSError:
            for c in want:
                try:
                    fs.write_raw(cur, "cgroup.subtree_control", "+" + c)
                except OSError:
                    pass


def set_resources(d: str, res: dict[str, Any], rootless: bool = False) -> None:
    """Apply linux.resources to the v2 cgroup directory d, in runc's order."""
    ignored = [f for f, on in (
        ("memory.swappiness", (res.get("memory") or {}).get("swappiness") not in (None, -1)),
        ("memory.disableOOMKiller", (res.get("memory") or {}).get("disableOOMKiller")),
        ("cpu.realtimeRuntime", (res.get("cpu") or {}).get("realtimeRuntime")),
        ("cpu.realtimePeriod", (res.get("cpu") or {}).get("realtimePeriod")),
        ("blockIO.leafWeight", (res.get("blockIO") or {}).get("leafWeight")),
        ("network", res.get("network"))) if on]
    if ignored:
        from pyrunc import log

        log.warning("linux.resources: " + ", ".join(ignored) + ": no such setting on cgroup "
                    "v2; ignored (as runc does)")
    _set_pids(d, res.get("pids") or {}, rootless)
    _set_memory(d, res.get("memory") or {}, rootless)
    _set_io(d, res.get("blockIO") or {}, rootless)
    _set_cpu(d, res.get("cpu") or {}, rootless)
    if "devices" in res:
        from pyrunc.cgroups.devices_bpf import apply_device_rules

        try:
            apply_device_rules(d, res.get("devices") or [])
        except (PyruncError, OSError):
            if not rootless:  # rootless: device rules are not expected to work
                raise
    cpu = res.get("cpu") or {}
    for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
        if cpu.get(key):
            fs.write(d, name, cpu[key], f"cpu.{key}", rootless)
    fs.write_hugetlb(d, res.get("hugepageLimits") or [], rootless, "max", "rsvd.max")
    rdma = res.get("rdma") or {}
    for dev in sorted(rdma):
        fs.write(d, "rdma.max", fs.rdma_line(dev, rdma[dev]), f"rdma.{dev}", rootless)
    set_unified(d, res.get("unified") or {})


def _set_pids(d: str, pids: dict[str, Any], rootless: bool) -> None:
    limit = pids.get("limit")
    if limit:  # 0 is unset (runc 1.1; docker sends it), below 0 unlimited
        fs.write(d, "pids.max", "max" if limit < 0 else limit, "pids.limit", rootless)


def _set_memory(d: str, mem: dict[str, Any], rootless: bool) -> None:
    limit, swap = mem.get("limit") or 0, mem.get("swap") or 0
    reservation = mem.get("reservation") or 0
    if not (limit or swap or reservation):
        return
    if mem.get("checkBeforeUpdate"):
        check_usage(fs.read_int(d, "memory.current"), limit, swap)
    swap2 = swap_to_v2(swap, limit)
    text = _num(swap2)
    if text == "" and swap2 == 0 and swap > 0:
        text = "0"  # limit == swap: no swap at all
    if text:
        try:
            fs.write_raw(d, "memory.swap.max", text)
        except OSError as e:
            # No swap accounting here: fine when asking for none or unlimited.
            if not (e.errno == errno.ENOENT and text in ("max", "0")):
                fs.write(d, "memory.swap.max", text, "memory.swap", rootless)
    if _num(limit):
        fs.write(d, "memory.max", _num(limit), "memory.limit", rootless)
    if _num(reservation):
        fs.write(d, "memory.low", _num(reservation), "memory.reservation", rootless)


def check_usage(usage: int | None, limit: int, swap: int) -> None:
    """memory.checkBeforeUpdate: refuse a limit at or below the current usage
    (best effort: no usage figure, no check)."""
    if usage is None:
        return
    if swap > 0 and swap <= usage:
        raise PyruncError(f"linux.resources.memory.swap: rejecting memory+swap limit "
                          f"{swap} <= usage {usage} (checkBeforeUpdate)")
    if limit > 0 and limit <= usage:
        raise PyruncError(f"linux.resources.memory.limit: rejecting memory limit {limit} "
                          f"<= usage {usage} (checkBeforeUpdate)")


def _set_io(d: str, bio: dict[str, Any], rootless: bool) -> None:
    weight = bio.get("weight") or 0
    # BFQ's own weight file when the scheduler is there, else io.weight
    bfq = fs.read(d, "io.bfq.weight") if weight or bio.get("weightDevice") else None
    if weight:
        if bfq is not None:
            fs.write(d, "io.bfq.weight", weight, "blockIO.weight", rootless)
        else:
            fs.write(d, "io.weight", blkio_weight_to_io_weight(weight), "blockIO.weight",
                     rootless)
    # Per-device BFQ weights need Linux 5.4+, where the file reads
    # "default N" (older kernels show a bare number); else runc skips them.
    if bfq is not None and not bfq.strip().isdigit():
        for i, wd in enumerate(bio.get("weightDevice") or []):
            fs.write(d, "io.bfq.weight", f"{wd['major']}:{wd['minor']} {wd.get('weight') or 0}",
                     f"blockIO.weightDevice[{i}]", rootless)
    for key, op in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                    ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
        for i, td in enumerate(bio.get(key) or []):
            fs.write(d, "io.max", f"{td['major']}:{td['minor']} {op}={td['rate']}",
                     f"blockIO.{key}[{i}]", rootless)


def _set_cpu(d: str, cpu: dict[str, Any], rootless: bool) -> None:
    quota, period = cpu.get("quota") or 0, cpu.get("period") or 0
    if cpu.get("idle") is not None:
        fs.write(d, "cpu.idle", cpu["idle"], "cpu.idle", rootless)
    if cpu.get("shares"):
        fs.write(d, "cpu.weight", shares_to_weight(cpu["shares"]), "cpu.shares", rootless)
    burst = cpu.get("burst")
    if burst is not None:
        try:
            fs.write_raw(d, "cpu.max.burst", str(burst))
            burst = None
        except OSError as e:
            # A burst above the current quota is refused (EINVAL): retry
            # after cpu.max when a quota comes too (runc's order).
            if e.errno != errno.EINVAL or not quota:
                fs.write(d, "cpu.max.burst", burst, "cpu.burst", rootless)
    if quota or period:
        if not (quota and period):
            # One half given: keep the other half as it is (runc update
            # keeps the previous value; a fresh cgroup reads "max 100000").
            cur = (fs.read(d, "cpu.max") or "max 100000").split()
            if not quota:
                quota = -1 if cur[0] == "max" else int(cur[0])
            if not period:
                period = int(cur[1]) if len(cur) > 1 else 100000
        fs.write(d, "cpu.max", f"{quota if quota > 0 else 'max'} {period}", "cpu.quota",
                 rootless)
        if burst is not None:
            fs.write(d, "cpu.max.burst", burst, "cpu.burst", rootless)


def set_unified(d: str, unified: dict[str, str]) -> None:
    """linux.resources.unified: file name -> value, written line by line
    last (so they win over the converted values), like runc."""
    have: set[str] | None = None
    for key, value in unified.items():
        field = f"unified[{key!r}]"
        if "/" in key or key in ("", ".", ".."):
            raise PyruncError(f"linux.resources.{field}: must be a file name (no slashes)")
        for line in _lines(str(value)):
            try:
                fs.write_raw(d, key, line)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.EPERM, errno.EACCES):
                    ctrl, dot, _ = key.partition(".")
                    if not dot:
                        raise PyruncError(f"linux.resources.{field}: must be "
                                          "CONTROLLER.PARAMETER") from None
                    have = controllers(d) if have is None else have
                    if ctrl not in have and ctrl != "cgroup":
                        raise PyruncError(
                            f"linux.resources.{field}: the {ctrl} controller is not enabled "
                            f"in this cgroup (cgroup.controllers: {' '.join(sorted(have))}"
                            f"{'' if have else 'none'}; see the parent's "
                            "cgroup.subtree_control)") from None
                raise PyruncError(f"linux.resources.{field}: cannot write {line!r}: "
                                  f"{e.strerror}") from None


# ---- stats --------------------------------------------------------------------
def stats(d: str) -> dict[str, Any]:
    """`events --stats` data from a v2 cgroup (runc's fs2 GetStats)."""
    from pyrunc.cgroups import stats as S  # only `events` needs it

    have = controllers(d)
    cur = fs.read_int(d, "pids.current")
    if cur is not None:
        limit = fs.read_int(d, "pids.max") or 0
        pids = S.pids(cur, 0 if limit == fs.MAX_U64 else limit)
    else:  # no pids controller: count the processes
        pids = S.pids(len((fs.read(d, "cgroup.procs") or "").split()))
    empty = S.memory_entry()
    memory = S.memory(empty, empty, empty, empty, {})
    if "memory" in have:
        raw = fs.read_keyed(d, "memory.stat")
        usage = _memory_data(d, "memory")
        swap = _memory_data(d, "memory.swap")
        # v1 reported memory+swap: so does runc on v2, for compatibility
        swap["usage"] += usage["usage"]
        if swap["limit"] != fs.MAX_U64:
            swap["limit"] += usage["limit"]
        memory = S.memory(S.memory_entry(**usage), S.memory_entry(swap["limit"], swap["usage"]),
                          empty, empty, raw, cache=raw.get("file", 0))
    cs = fs.read_keyed(d, "cpu.stat")  # there even without the cpu controller
    cpu = S.cpu(total=cs.get("usage_usec", 0) * 1000, kernel=cs.get("system_usec", 0) * 1000,
                user=cs.get("user_usec", 0) * 1000, periods=cs.get("nr_periods", 0),
                throttled_periods=cs.get("nr_throttled", 0),
                throttled_time=cs.get("throttled_usec", 0) * 1000)
    blkio: dict[str, Any] = {}
    if "io" in have:
        blkio = _io_stats(fs.read(d, "io.stat") or "")
    hugetlb: dict[str, Any] = {}
    if "hugetlb" in have:
        for size in fs.hugepage_sizes():
            if (entry := hugetlb_stats(d, size)) is not None:
                hugetlb[size] = entry
    return S.stats(cpu, S.cpuset(), memory, pids, blkio, hugetlb)


def _memory_data(d: str, prefix: str) -> dict[str, int]:
    return {"usage": fs.read_int(d, prefix + ".current") or 0,
            "limit": fs.read_int(d, prefix + ".max") or 0,
            "max_usage": fs.read_int(d, prefix + ".peak") or 0}


def _io_stats(text: str) -> dict[str, Any]:
    """io.stat "MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.." in v1's tables."""
    from pyrunc.cgroups import stats as S  # only `events` needs it

    tables: dict[str, list[dict[str, Any]]] = {"ioServiceBytesRecursive": [],
                                               "ioServicedRecursive": []}
    for line in sorted(text.splitlines()):
        dev, *items = line.split()
        major, _, minor = dev.partition(":")
        if not (major.isdigit() and minor.isdigit()):
            continue
        for item in items:
            key, _, value = item.partition("=")
            where = {"rbytes": ("ioServiceBytesRecursive", "Read"),
                     "wbytes": ("ioServiceBytesRecursive", "Write"),
                     "rios": ("ioServicedRecursive", "Read"),
                     "wios": ("ioServicedRecursive", "Write")}.get(key)
            if where and value.isdigit():
                tables[where[0]].append(S.blkio_entry(int(major), int(minor), where[1],
                                                      int(value)))
    return {k: v for k, v in tables.items() if v}


def hugetlb_stats(d: str, size: str) -> dict[str, Any] | None:
    """One page size's hugetlb entry of the stats (None: no such file here)."""
    from pyrunc.cgroups import stats as S  # only `events` needs it

    usage = fs.read_int(d, f"hugetlb.{size}.current")
    if usage is None:
        return None
    events = fs.read_keyed(d, f"hugetlb.{size}.events")
    return S.hugetlb_entry(usage, failcnt=events.get("max", 0))


def oom_kills(d: str) -> int:
    return fs.read_keyed(d, "memory.events").get("oom_kill", 0)


def _lines(value: str) -> list[str]:
    """runc's WriteFileByLine: one write a line, no empty write for a final newline."""
    lines = value.split("\n")
    return lines[:-1] if len(lines) > 1 and lines[-1] == "" else lines
