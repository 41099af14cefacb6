"""The benchmarks. Each repetition visits every runtime in turn (A,B,C,A,B,C...)."""

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .proc import RssUnavailable
from .runtime import BenchFailure, Runtime, pool_map

MS = 1000.0
MIB = 1024.0


@dataclass
class Settings:
    reps: int  # repetitions of the single-command benchmarks
    batch_reps: int  # repetitions of the batch benchmarks (sequential, parallel)
    seq_n: int
    par_n: int
    list_n: int
    warmup: int


@dataclass
class Row:
    key: str
    label: str
    unit: str
    samples: dict[str, list[float]] = field(default_factory=dict)
    na: dict[str, str] = field(default_factory=dict)


Bundles = dict[str, Path]
OneRep = Callable[[Runtime], dict[str, float]]


def _interleave(rts: list[Runtime], reps: int, rows: list[Row], one: OneRep) -> None:
    by_key = {r.key: r for r in rows}
    active = []
    for rt in rts:
        if rt.na:
            for r in rows:
                r.na[rt.name] = rt.na
        else:
            active.append(rt)
            for r in rows:
                r.samples[rt.name] = []
    for _ in range(reps):
        for rt in list(active):
            try:
                for key, value in one(rt).items():
                    by_key[key].samples[rt.name].append(value)
            except BenchFailure as exc:
                active.remove(rt)
                for r in rows:  # partial samples of a failing runtime would mislead
                    r.samples.pop(rt.name, None)
                    r.na[rt.name] = str(exc)


def _run(rt: Runtime, bundle: Path) -> float:
    cid = rt.track(rt.new_id())
    out = rt.call("run", "--bundle", str(bundle), cid)
    if out.rc != 0:
        raise BenchFailure(f"run: {out.reason()}")
    rt.remove(cid)  # a foreground run deletes its container; this is a no-op then
    return out.seconds


def _peak_rss(rt: Runtime, *args: str) -> dict[str, float]:
    """{"rss_<cmd>": MiB} from one extra, untimed call under GNU time (see
    proc.py for why not wait4); {} where GNU time is missing. The container
    the call makes is removed."""
    cid = rt.track(rt.new_id())
    try:
        out = rt.call(*args, cid, rss=True)
    except RssUnavailable:
        return {}
    finally:
        rt.remove(cid)
    if out.rc != 0:
        raise BenchFailure(f"{args[0]} (rss run): {out.reason()}")
    return {f"rss_{args[0]}": out.maxrss_kib / MIB}


def _init_pid(rt: Runtime, cid: str) -> int:
    out = rt.call("state", cid, capture=True)
    if out.rc != 0:
        raise BenchFailure(f"state: {out.reason()}")
    return int(json.loads(out.stdout)["pid"])


def _vm_hwm_kib(pid: int) -> int:
    """Peak RSS so far of a live process (VmHWM), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Wait (untimed) until a non-child process has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return
        time.sleep(0.002)
    raise BenchFailure(f"container init {pid} still running {timeout:.0f}s after start")


def bench_run(rts: list[Runtime], b: Bundles, s: Settings) -> list[Row]:
    rows = [
        Row("run", "run /bin/true (foreground)", "ms"),
        Row("rss_run", "peak RSS during run", "MiB"),
    ]

    def one(rt: Runtime) -> dict[str, float]:
        seconds = _run(rt, b["true"])
        return {"run": seconds * MS, **_peak_rss(rt, "run", "--bundle", str(b["true"]))}

    _interleave(rts, s.reps, rows, one)
    return rows


def bench_cycle(rts: list[Runtime], b: Bundles, s: Settings) -> list[Row]:
    rows = [
        Row("cycle", "create + start + delete", "ms"),
        Row("create", "  create", "ms"),
        Row("start", "  start", "ms"),
        Row("delete", "  delete (stopped)", "ms"),
        Row("rss_create", "peak RSS during create (CLI)", "MiB"),
        Row("rss_init", "peak RSS of waiting init after create", "MiB"),
    ]

    def one(rt: Runtime) -> dict[str, float]:
        t_create, t_start, t_delete, hwm = _cycle(rt, b["true"])
        return {
            "cycle": (t_create + t_start + t_delete) * MS,
            "create": t_create * MS,
            "start": t_start * MS,
            "delete": t_delete * MS,
            "rss_init": hwm / MIB,
            **_peak_rss(rt, "create", "--bundle", str(b["true"])),
        }

    _interleave(rts, s.reps, rows, one)
    return rows


def _cycle(rt: Runtime, bundle: Path) -> tuple[float, float, float, int]:
    """create, start, delete of one container: their times in seconds, and
    the VmHWM (KiB) of its init while it waits to be started (untimed)."""
    cid = rt.track(rt.new_id())
    t_create = rt.must("create", "--bundle", str(bundle), cid).seconds
    pid = _init_pid(rt, cid)
    hwm = _vm_hwm_kib(pid)
    t_start = rt.must("start", cid).seconds
    _wait_gone(pid)  # containerd waits for the exit before it deletes
    t_delete = rt.must("delete", cid).seconds
    rt.remove(cid)
    return t_create, t_start, t_delete, hwm


def bench_seccomp(rts: list[Runtime], b: Bundles, s: Settings) -> list[Row]:
    """run and the cycle again, under podman's default seccomp profile (what
    real containers get; the runtime compiles it on every create)."""
    rows = [
        Row("seccomp_run", "run /bin/true, podman's seccomp profile", "ms"),
        Row("seccomp_cycle", "create + start + delete, podman's seccomp profile", "ms"),
    ]
    if "seccomp" not in b:
        for r in rows:
            r.na = {rt.name: "no /usr/share/containers/seccomp.json (containers-common)"
                    for rt in rts}
        return rows

    def one(rt: Runtime) -> dict[str, float]:
        return {"seccomp_run": _run(rt, b["seccomp"]) * MS,
                "seccomp_cycle": sum(_cycle(rt, b["seccomp"])[:3]) * MS}

    _interleave(rts, s.reps, rows, one)
    return rows


def bench_sequential(rts: list[Runtime], b: Bundles, s: Settings) -> list[Row]:
    rows = [Row("sequential", f"{s.seq_n} sequential runs (total)", "s")]

    def one(rt: Runtime) -> dict[str, float]:
        return {"sequential": sum(_run(rt, b["true"]) for _ in range(s.seq_n))}

    _interleave(rts, s.batch_reps, rows, one)
    return rows


def bench_parallel(rts: list[Runtime], b: Bundles, s: Settings) -> list[Row]:
    rows = [
        Row("par_create", f"{s.par_n} parallel creates (wall)", "s"),
        Row("par_delete", f"then {s.par_n} parallel delete -f (wall)", "s"),
    ]

    def batch(rt: Runtime, verb: list[str], ids: list[str]) -> float:
        t0 = time.perf_counter()
        procs = [rt.spawn(*verb, cid) for cid in ids]
        outs = [p.finish() for p in procs]
        wall = time.perf_counter() - t0
        bad = [o for o in outs if o.rc != 0]
        if bad:
            raise BenchFailure(f"{verb[0]} ({len(bad)}/{len(ids)} failed): {bad[0].reason()}")
        return wall

    def one(rt: Runtime) -> dict[str, float]:
        ids = [rt.track(rt.new_id()) for _ in range(s.par_n)]
        try:
            created = batch(rt, ["create", "--bundle", str(b["true"])], ids)
            deleted = batch(rt, ["delete", "-f"], ids)
        finally:
            rt.remove_many(ids)
        return {"par_create": created, "par_delete": deleted}

    _interleave(rts, s.batch_reps, rows, one)
    return rows


def _start(rt: Runtime, bundle: Path) -> str:
    cid = rt.track(rt.new_id())
    rt.must("create", "--bundle", str(bundle), cid)
    rt.must("start", cid)
    return cid


@contextmanager
def _per_runtime(rts: list[Runtime], make: Callable[[Runtime], list[str]]) -> Iterator[None]:
    """Set up containers for each runtime (n/a on failure), remove them afterwards."""
    made: dict[str, list[str]] = {}
    try:
        for rt in rts:
            if rt.na:
                continue
            try:
                made[rt.name] = make(rt)
            except BenchFailure as exc:
                rt.na = f"setup: {exc}"
        yield
    finally:
        for rt in rts:
            rt.remove_many(made.get(rt.name, []))


def bench_state(rts: list[Runtime], b: Bundles, s: Settings) -> list[Row]:
    ids: dict[str, str] = {}

    def one(rt: Runtime) -> dict[str, float]:
        return {"state": rt.must("state", ids[rt.name]).seconds * MS}

    return [_with_sleeper(rts, b, s, Row("state", "state (running)", "ms"), one, ids)]


def bench_exec(rts: list[Runtime], b: Bundles, s: Settings) -> list[Row]:
    ids: dict[str, str] = {}

    def one(rt: Runtime) -> dict[str, float]:
        return {"exec": rt.must("exec", ids[rt.name], "/bin/true").seconds * MS}

    return [_with_sleeper(rts, b, s, Row("exec", "exec /bin/true (running)", "ms"), one, ids)]


def _with_sleeper(
    rts: list[Runtime], b: Bundles, s: Settings, row: Row, verb: OneRep, ids: dict[str, str]
) -> Row:
    saved = {rt.name: rt.na for rt in rts}

    def make(rt: Runtime) -> list[str]:
        ids[rt.name] = _start(rt, b["sleep"])
        return [ids[rt.name]]

    with _per_runtime(rts, make):
        _interleave(rts, s.reps, [row], verb)
    for rt in rts:  # a setup failure is this benchmark's n/a, not the runtime's
        rt.na = saved[rt.name]
    return row


def bench_kill(rts: list[Runtime], b: Bundles, s: Settings) -> list[Row]:
    def one(rt: Runtime) -> dict[str, float]:
        cid = _start(rt, b["sleep"])
        try:
            # KILL: sleep as PID 1 of its namespace has no TERM handler, so TERM is ignored.
            killed = rt.must("kill", cid, "KILL")
        finally:
            rt.remove(cid)
        return {"kill": killed.seconds * MS}

    rows = [Row("kill", "kill KILL (running)", "ms")]
    _interleave(rts, s.reps, rows, one)
    return rows


def bench_list(rts: list[Runtime], b: Bundles, s: Settings) -> list[Row]:
    saved = {rt.name: rt.na for rt in rts}

    def populate(rt: Runtime) -> list[str]:
        # Stopped containers (/bin/true has exited): listed like any other, but
        # without keeping list_n processes alive.
        return pool_map(lambda _: _start(rt, b["true"]), range(s.list_n), 4)

    def one(rt: Runtime) -> dict[str, float]:
        return {"list": rt.must("list").seconds * MS}

    rows = [Row("list", f"list ({s.list_n} containers)", "ms")]
    with _per_runtime(rts, populate):
        _interleave(rts, s.reps, rows, one)
    for rt in rts:
        rt.na = saved[rt.name]
    return rows


BENCHES: dict[str, Callable[[list[Runtime], Bundles, Settings], list[Row]]] = {
    "run": bench_run,
    "cycle": bench_cycle,
    "sequential": bench_sequential,
    "parallel": bench_parallel,
    "state": bench_state,
    "list": bench_list,
    "kill": bench_kill,
    "exec": bench_exec,
    "seccomp": bench_seccomp,
}
