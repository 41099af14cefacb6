"""Per-process kernel settings applied by init before execve: scheduler,
I/O priority, CPU affinity and personality (process.* and linux.personality)."""

from __future__ import annotations

import posix  # not os: see pyrunc.posixfs

from pyrunc.linux import libc as L

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any

SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}


class SchedError(Exception):
    pass


def parse_cpus(spec: str) -> set[int]:
    """"0-3,7" -> {0,1,2,3,7}"""
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def apply_scheduler(s: dict[str, Any], src: str = "config.json: process.") -> None:
    """src prefixes field names in errors (exec's process.json: "process.json: ")."""
    policy = SCHED_POLICIES.get(s["policy"])
    if policy is None:
        raise SchedError(f"{src}scheduler.policy: unknown policy {s['policy']!r}")
    flags = 0
    for f in s.get("flags", []):
        if f not in SCHED_FLAGS:
            raise SchedError(f"{src}scheduler.flags: unknown flag {f!r}")
        flags |= SCHED_FLAGS[f]
    try:
        L.sched_setattr(policy, flags, s.get("nice", 0), s.get("priority", 0),
                        s.get("runtime", 0), s.get("deadline", 0), s.get("period", 0))
    except OSError as e:
        raise SchedError(f"{src}scheduler: cannot set {s['policy']}: {e.strerror}") from None


def apply_io_priority(p: dict[str, Any], src: str = "config.json: process.") -> None:
    cls = IOPRIO_CLASSES.get(p["class"])
    if cls is None:
        raise SchedError(f"{src}ioPriority.class: unknown class {p['class']!r}")
    try:
        L.ioprio_set(cls, p.get("priority", 0))
    except OSError as e:
        raise SchedError(f"{src}ioPriority: {e.strerror}") from None


def apply_affinity(cpus: str | None, field: str, src: str = "config.json: process.") -> None:
    if not cpus:
        return
    try:
        posix.sched_setaffinity(0, parse_cpus(cpus))
    except (ValueError, OSError) as e:
        raise SchedError(f"{src}execCPUAffinity.{field}: cannot set {cpus!r}: {e}") from None


def apply_personality(p: dict[str, Any]) -> None:
    domain = PERSONALITY_DOMAINS.get(p["domain"])
    if domain is None:
        raise SchedError(f"config.json: linux.personality.domain: unknown domain "
                         f"{p['domain']!r}")
    if p.get("flags"):
        raise SchedError("config.json: linux.personality.flags: no flags are supported "
                         "(like runc)")
    L.personality(domain)


MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
              "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_NUMA_BALANCING": 1 << 13}


def apply_memory_policy(p: dict[str, Any]) -> None:
    mode = MPOL_MODES.get(p["mode"])
    if mode is None:
        raise SchedError(f"config.json: linux.memoryPolicy.mode: unknown mode {p['mode']!r}")
    for f in p.get("flags", []):
        if f not in MPOL_FLAGS:
            raise SchedError(f"config.json: linux.memoryPolicy.flags: unknown flag {f!r}")
        mode |= MPOL_FLAGS[f]
    try:
        L.set_mempolicy(mode, parse_cpus(p.get("nodes", "")))
    except (OSError, ValueError) as e:
        raise SchedError(f"config.json: linux.memoryPolicy: cannot set {p['mode']} "
                         f"nodes={p.get('nodes', '')!r}: {e}") from None
