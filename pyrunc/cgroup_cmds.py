"""Commands that act through the container's cgroup: pause, resume, ps,
update, events (parent side; the managers live in pyrunc.cgroups)."""

from __future__ import annotations

import os
import time

from pyrunc.container import Container, manager_for
from pyrunc.errors import PyruncError, UsageError
from pyrunc.state import Root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _manager(c: Container) -> tuple[Any, str, Any]:
    cdir, st, status = c.open()
    cdir.unlock()
    mgr = manager_for(st)
    if mgr is None:
        raise PyruncError("container has no cgroup (rootless without a delegated cgroup?)")
    return mgr, status, st


def pause(root: Root, cid: str) -> None:
    mgr, status, _ = _manager(Container(root, cid))
    if status not in ("running", "created"):
        raise PyruncError("container not running" if status != "paused"
                          else "container already paused")
    mgr.freeze()


def resume(root: Root, cid: str) -> None:
    mgr, status, _ = _manager(Container(root, cid))
    if status != "paused":
        raise PyruncError("container not paused")
    mgr.thaw()


def ps(root: Root, cid: str, fmt: str, ps_args: list[str]) -> str:
    mgr, status, _ = _manager(Container(root, cid))
    if status == "stopped":
        raise PyruncError("container not running")
    pids = sorted(mgr.pids())
    if fmt == "json":
        from pyrunc.fastjson import dumps

        return dumps(pids, compact=True) + "\n"
    import subprocess

    args = ps_args or ["-ef"]
    try:
        out = subprocess.run(["ps", *args], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise PyruncError(f"ps {' '.join(args)}: {e}") from None
    lines = out.splitlines()
    if not lines:
        return ""
    header = lines[0]
    try:
        col = header.split().index("PID")
    except ValueError:
        raise PyruncError("ps: no PID column in the output of ps " + " ".join(args)) from None
    keep = [header]
    wanted = {str(p) for p in pids}
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col] in wanted:
            keep.append(line)
    return "\n".join(keep) + "\n"


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}


def ram_in_bytes(text: str, flag: str) -> int:
    """"64m", "1g", "1024", "-1" (unlimited), like runc's units.RAMInBytes."""
    t = text.strip().lower()
    if t == "-1":
        return -1
    num = t.rstrip("kmgtb")
    unit = t[len(num):]
    try:
        value = float(num)
    except ValueError:
        raise UsageError(f"invalid value {text!r} for {flag}") from None
    if unit not in _UNITS or value < 0:
        raise UsageError(f"invalid value {text!r} for {flag}")
    return int(value * _UNITS[unit])


def resources_from_flags(flags: dict[str, str | None]) -> dict[str, Any]:
    """The runc update flags as an OCI linux.resources object."""
    res: dict[str, Any] = {}

    def put(section: str, key: str, value: Any) -> None:
        res.setdefault(section, {})[key] = value

    def num(flag: str) -> int:
        raw = flags[flag]
        assert raw is not None
        try:
            return int(raw)
        except ValueError:
            raise UsageError(f'invalid value "{raw}" for flag --{flag}') from None

    for flag, section, key in (("memory", "memory", "limit"),
                               ("memory-reservation", "memory", "reservation"),
                               ("memory-swap", "memory", "swap")):
        if flags.get(flag) is not None:
            put(section, key, ram_in_bytes(str(flags[flag]), "--" + flag))
    for flag, section, key in (("cpu-quota", "cpu", "quota"), ("cpu-period", "cpu", "period"),
                               ("cpu-share", "cpu", "shares"), ("cpu-rt-period", "cpu",
                                                                "realtimePeriod"),
                               ("cpu-rt-runtime", "cpu", "realtimeRuntime"),
                               ("cpu-idle", "cpu", "idle"), ("cpu-burst", "cpu", "burst"),
                               ("pids-limit", "pids", "limit"),
                               ("blkio-weight", "blockIO", "weight")):
        if flags.get(flag) is not None:
            put(section, key, num(flag))
    for flag, key in (("cpuset-cpus", "cpus"), ("cpuset-mems", "mems")):
        if flags.get(flag) is not None:
            put("cpu", key, flags[flag])
    return res


def update(root: Root, cid: str, resources: dict[str, Any]) -> None:
    c = Container(root, cid)
    cdir, st, status = c.open()
    try:
        if status == "stopped":
            raise PyruncError("container not running")
        mgr = manager_for(st)
        if mgr is None:
            raise PyruncError("container has no cgroup to update")
        mgr.set(resources)
        # Remember the new values, as runc does, for later reads of the config.
        linux = st.config.setdefault("linux", {})
        current = linux.setdefault("resources", {})
        for key, value in resources.items():
            if isinstance(value, dict) and isinstance(current.get(key), dict):
                current[key].update(value)
            else:
                current[key] = value
        cdir.save(st)
    finally:
        cdir.unlock()


def read_resources(path: str) -> dict[str, Any]:
    """-r FILE or -r - : a JSON linux.resources object (as containerd and podman send)."""
    import sys

    from pyrunc.fastjson import loads

    try:
        text = sys.stdin.read() if path == "-" else open(path).read()
        data = loads(text)
    except OSError as e:
        raise PyruncError(f"--resources {path}: {e.strerror}") from None
    except ValueError as e:
        raise PyruncError(f"--resources {path}: invalid JSON: {e}") from None
    if not isinstance(data, dict):
        raise PyruncError(f"--resources {path}: expected a JSON object")
    return data


def parse_interval(text: str) -> float:
    """--interval: a Go duration like runc's ("5s", "500ms", "1m30s"), or
    plain seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    t = text.strip()
    try:
        total = float(t)
    except ValueError:
        total, num = 0.0, ""
        i = 0
        while i < len(t):
            if t[i].isdigit() or t[i] == ".":
                num += t[i]
                i += 1
                continue
            unit = next((u for u in sorted(units, key=len, reverse=True) if t.startswith(u, i)),
                        None)
            if unit is None or not num:
                raise UsageError(f'invalid value "{text}" for flag --interval') from None
            total += float(num) * units[unit]
            num, i = "", i + len(unit)
        if num or not t:
            raise UsageError(f'invalid value "{text}" for flag --interval') from None
    if total <= 0:
        raise UsageError("duration interval must be greater than 0")
    return total


def events(root: Root, cid: str, stats_once: bool, interval: float) -> None:
    """runc's events: --stats prints one stats event; otherwise a stats event
    every interval and an "oom" event as each OOM happens, until the
    container stops (runc: until its cgroup goes away)."""
    from pyrunc.cgroups.notify import OomWatch
    from pyrunc.fastjson import dumps

    c = Container(root, cid)
    mgr, status, st = _manager(c)
    if status == "stopped":
        raise PyruncError(f"container with id {cid} is not running")

    def stats() -> Any:
        data = mgr.stats()
        if "intelRdt" in st.extra:  # runc's "intel_rdt"
            from pyrunc import intelrdt
            data["intel_rdt"] = intelrdt.stats(st.extra["intelRdt"])
        return data

    def emit(kind: str, data: Any = None) -> None:
        event: dict[str, Any] = {"type": kind, "id": cid}
        if data is not None:
            event["data"] = data
        os.write(1, (dumps(event, compact=True) + "\n").encode())

    if stats_once:
        emit("stats", stats())
        return
    watch = OomWatch(mgr)
    try:
        next_stats = time.monotonic() + interval  # like Go's time.Tick: first after one interval
        while True:
            # wake at least every second to notice the container stopping
            for _ in range(watch.wait(min(1.0, max(0.0, next_stats - time.monotonic())))):
                emit("oom")
            try:
                status = c.state()["status"]
            except PyruncError:
                return
            if status == "stopped" or watch.gone():
                for _ in range(watch.wait(0)):  # an OOM that ended it is still news
                    emit("oom")
                return
            if time.monotonic() >= next_stats:
                emit("stats", stats())
                next_stats += interval
    finally:
        watch.close()
