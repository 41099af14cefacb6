"""The shape of `events --stats` data: runc's types/events.go Stats, as
runc 1.1 encodes it (Go's omitempty drops zero numbers and empty lists, never
a nested struct; keys in struct order, map keys sorted)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _some(**kv: Any) -> dict[str, Any]:
    """The omitempty fields: only those with a value."""
    return {k: v for k, v in kv.items() if v}


def cpu(total: int = 0, percpu: list[int] | None = None, percpu_kernel: list[int] | None = None,
        percpu_user: list[int] | None = None, kernel: int = 0, user: int = 0,
        periods: int = 0, throttled_periods: int = 0, throttled_time: int = 0) -> dict[str, Any]:
    usage = _some(total=total, percpu=percpu, percpu_kernel=percpu_kernel,
                  percpu_user=percpu_user)
    usage.update(kernel=kernel, user=user)
    return {"usage": usage,
            "throttling": _some(periods=periods, throttledPeriods=throttled_periods,
                                throttledTime=throttled_time)}


CPUSET_FLAGS = ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
                "memory_spread_page", "memory_spread_slab", "memory_pressure",
                "sched_load_balance", "sched_relax_domain_level")


def cpuset(cpus: list[int] | None = None, mems: list[int] | None = None,
           flags: dict[str, int] | None = None) -> dict[str, Any]:
    flags = flags or {}
    out: dict[str, Any] = _some(cpus=cpus)
    out["cpu_exclusive"] = flags.get("cpu_exclusive", 0)
    out.update(_some(mems=mems))
    for k in CPUSET_FLAGS[1:]:
        out[k] = flags.get(k, 0)
    return out


def memory_entry(limit: int = 0, usage: int = 0, max_usage: int = 0,
                 failcnt: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"limit": limit}
    out.update(_some(usage=usage, max=max_usage))
    out["failcnt"] = failcnt
    return out


def memory(usage: dict[str, Any], swap: dict[str, Any], kernel: dict[str, Any],
           kernel_tcp: dict[str, Any], raw: dict[str, int], cache: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = _some(cache=cache)
    out.update(usage=usage, swap=swap, kernel=kernel, kernelTCP=kernel_tcp)
    out.update(_some(raw=dict(sorted(raw.items()))))
    return out


def pids(current: int = 0, limit: int = 0) -> dict[str, Any]:
    return _some(current=current, limit=limit)


def blkio_entry(major: int, minor: int, op: str, value: int) -> dict[str, Any]:
    return _some(major=major, minor=minor, op=op, value=value)


def hugetlb_entry(usage: int = 0, max_usage: int = 0, failcnt: int = 0) -> dict[str, Any]:
    out = _some(usage=usage, max=max_usage)
    out["failcnt"] = failcnt
    return out


def stats(cpu: dict[str, Any], cpuset: dict[str, Any], memory: dict[str, Any],
          pids: dict[str, Any], blkio: dict[str, Any],
          hugetlb: dict[str, Any]) -> dict[str, Any]:
    return {"cpu": cpu, "cpuset": cpuset, "memory": memory, "pids": pids, "blkio": blkio,
            "hugetlb": dict(sorted(hugetlb.items())), "intel_rdt": {},
            "network_interfaces": None}


def parse_list(text: str) -> list[int]:
    """"0-3,7" -> [0, 1, 2, 3, 7] (cpuset.cpus / cpuset.mems)."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out
