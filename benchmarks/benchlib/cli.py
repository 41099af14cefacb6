"""Command line: parse options, prepare runtimes and bundle, run, report, clean up."""

import argparse
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from . import bundle, plot, report
from .runtime import Runtime
from .suite import BENCHES, Row, Settings

HERE = Path(__file__).resolve().parents[1]
REPO = HERE.parent


def _default_runtimes() -> list[tuple[str, str]]:
    found = []
    pyrunc = REPO / ".venv" / "bin" / "pyrunc"
    if pyrunc.exists():
        found.append(("pyrunc", str(pyrunc)))
    return found + [("runc", "/usr/sbin/runc"), ("crun", "/usr/bin/crun")]


def _runtime_arg(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path or not name.replace("-", "").replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(f"--runtime wants NAME=PATH, got {text!r}")
    return name, path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmarks/run",
        description="Start-up benchmarks of OCI runtimes, side by side (see benchmarks/README.md).",
    )
    p.add_argument("--runtime", action="append", type=_runtime_arg, metavar="NAME=PATH",
                   help="runtime to measure (repeatable); default: pyrunc (if built), runc, crun")
    p.add_argument("--reps", type=int, metavar="N",
                   help="repetitions per single-command benchmark (default 30, --quick 3)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: few repetitions and small batches")
    p.add_argument("--only", action="append", choices=sorted(BENCHES), metavar="BENCH",
                   help=f"run only this benchmark (repeatable): {', '.join(BENCHES)}")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="results directory (default benchmarks/results/<UTC time>)")
    return p


def _settings(args: argparse.Namespace) -> Settings:
    if args.quick:
        reps = args.reps or 3
        return Settings(reps=reps, batch_reps=2, seq_n=10, par_n=5, list_n=10, warmup=1)
    reps = args.reps or 30
    return Settings(reps=reps, batch_reps=max(3, reps // 6), seq_n=100, par_n=50, list_n=200,
                    warmup=3)


def _version(path: str) -> str:
    import subprocess

    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    return (done.stdout.strip().splitlines() or ["?"])[0]


def _probe(rt: Runtime, bundles: dict[str, Path], warmup: int) -> str:
    """Warm the caches; set rt.na if the runtime cannot run the bundle at all."""
    if not os.access(rt.path, os.X_OK):
        rt.na = f"not executable: {rt.path}"
        return "n/a"
    for _ in range(warmup):
        cid = rt.track(rt.new_id())
        out = rt.call("run", "--bundle", str(bundles["true"]), cid)
        if out.rc != 0:
            rt.na = out.reason()
            return "n/a"
    cid = rt.track(rt.new_id())
    rc = rt.call("run", "--bundle", str(bundles["exit3"]), cid).rc
    return "yes" if rc == 3 else f"NO (`sh -c 'exit 3'` gave {rc})"


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.reps is not None and args.reps < 1:
        _parser().error("--reps must be at least 1")
    settings = _settings(args)
    specs = args.runtime or _default_runtimes()
    names = [n for n, _ in specs]
    if len(set(names)) != len(names):
        _parser().error("--runtime names must be unique")
    if os.geteuid() != 0:
        print("benchmarks/run: must run as root (the runtimes create namespaces)", file=sys.stderr)
        return 2
    baseline = "runc" if "runc" in names else names[0]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = args.out or HERE / "results" / stamp
    chosen = args.only or list(BENCHES)

    signal.signal(signal.SIGTERM, _on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    runtimes: list[Runtime] = []
    rows: list[Row] = []
    interrupted = False
    try:
        bundles = bundle.build(work)
        relay: dict[str, str] = {}
        for name, path in specs:
            rt = Runtime(name, path)
            runtimes.append(rt)
            relay[name] = _probe(rt, bundles, settings.warmup)
            print(f"{name}: {path}: " + (f"n/a: {rt.na}" if rt.na else "ready"), file=sys.stderr)
        for key in chosen:
            t0 = time.monotonic()
            print(f"benchmark {key} ...", file=sys.stderr, end="", flush=True)
            rows += BENCHES[key](runtimes, bundles, settings)
            print(f" {time.monotonic() - t0:.1f}s", file=sys.stderr)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: cleaning up", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let cleanup finish
        leftovers = {rt.name: rt.cleanup() for rt in runtimes}
        shutil.rmtree(work, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if interrupted or not rows:
        return 130 if interrupted else 1

    meta: dict[str, object] = {
        "date": stamp,
        "host": f"{platform.node()} {platform.release()} {os.cpu_count()} CPUs",
        "load_avg_end": os.getloadavg(),
        "settings": vars(settings),
        "runtimes": {n: {"path": p, "version": _version(p)} for n, p in specs},
        "exit_status_relayed": relay,
        "leftover_containers": leftovers,
    }
    text = _markdown(rows, names, baseline, meta)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.md").write_text(text)
    report.write_json(out_dir / "results.json", rows, meta)
    chart = plot.plot(out_dir / "ratios", rows, names, baseline)
    print(text)
    print(f"saved: {out_dir / 'results.md'}, {out_dir / 'results.json'}, {chart}")
    return 0


def _markdown(rows: list[Row], names: list[str], baseline: str, meta: dict[str, object]) -> str:
    s = meta["settings"]
    assert isinstance(s, dict)
    versions = meta["runtimes"]
    assert isinstance(versions, dict)
    relay = meta["exit_status_relayed"]
    assert isinstance(relay, dict)
    lines = [
        f"# Start-up benchmarks ({meta['date']})",
        "",
        f"Host: {meta['host']}, load average at end {meta['load_avg_end']}. "
        f"{s['reps']} repetitions per command, {s['batch_reps']} per batch, "
        f"{s['warmup']} warm-up runs; runtimes interleaved per repetition.",
        "",
    ]
    for n in names:
        lines.append(f"- {n}: `{versions[n]['path']}` ({versions[n]['version']}); "
                     f"exit status relayed by `run`: {relay.get(n, 'n/a')}")
    lines += ["", report.table(rows, names, baseline), "",
              f"Ratios are median / {baseline} median from this run (lower is faster/smaller).", ""]
    return "\n".join(lines)
