"""Command line: run the checks against one runtime, or compare several side by side."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conformance import checks
from conformance.harness import HERE, REPO, Ctx, Session
from conformance.registry import CHECKS, Check, Fail, Skip
from conformance.report import (
    FAIL,
    PASS,
    SKIP,
    Result,
    compare_table,
    line,
    totals,
    write_junit,
    write_tap,
)

RESULTS = HERE / "results"


class UsageError(Exception):
    """A bad command line: reported in one line, exit status 2."""


def resolve_runtime(name: str) -> list[str]:
    """argv prefix for RUNTIME: a path, a name on PATH, or the repo's own pyrunc."""
    if os.sep in name:
        if not os.access(name, os.X_OK):
            raise UsageError(f"runtime {name} is not an executable file")
        return [str(Path(name).resolve())]
    found = shutil.which(name)
    if found:
        return [found]
    if name == "pyrunc":
        venv = REPO / ".venv" / "bin" / "pyrunc"
        if venv.exists():
            return [str(venv)]
        # Not installed: run the package from the working tree.
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
        )
        return [sys.executable, "-m", "pyrunc"]
    raise UsageError(f"runtime {name!r} not found on PATH")


def run_one(session: Session, chk: Check) -> Result:
    t0 = time.monotonic()
    ctx = Ctx(session, chk.name)
    try:
        chk.fn(ctx)
        status, reason = PASS, ""
    except Fail as e:
        status, reason = FAIL, str(e)
    except Skip as e:
        status, reason = SKIP, str(e)
    except Exception as e:  # a bug in a check must not hide the other results
        status, reason = FAIL, f"check error: {type(e).__name__}: {e}"
    finally:
        ctx.cleanup()
    return Result(chk.name, chk.clause, status, reason, time.monotonic() - t0)


def smoke(session: Session) -> str:
    """Why the runtime cannot run the base config at all ("" if it can)."""
    ctx = Ctx(session, "smoke")
    try:
        p = ctx.run(ctx.config("echo smoke-ok"))
        return "" if p.rc == 0 and "smoke-ok" in p.out else p.tail()
    except Fail as e:
        return str(e)
    finally:
        ctx.cleanup()


def run_suite(
    runtime: str, selected: list[Check], jobs: int, keep: bool, echo: bool
) -> tuple[list[Result], str]:
    """Run `selected` against `runtime`; also return why the base config fails, if it does."""
    session = Session(resolve_runtime(runtime), keep)
    try:
        session.prepare()
        broken = smoke(session)
        if echo:
            print(f"# runtime: {' '.join(session.runtime)}  ({len(selected)} checks, -j {jobs})")
            if not session.probe:
                print(f"# note: {session.probe_error}")
            if broken:
                print(f"# warning: the base config does not run, most checks will fail: {broken}")
        results: list[Result] = []
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for r in pool.map(lambda c: run_one(session, c), selected):
                results.append(r)
                if echo:
                    print(line(r), flush=True)
        return results, broken
    finally:
        if keep:
            print(f"# kept tmp dirs under {session.tmp}", file=sys.stderr)
        session.close()


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="conformance", description=__doc__)
    ap.add_argument("runtime", nargs="*", help="runtime binary (name on PATH or path)")
    ap.add_argument("--filter", default="", help="only checks whose name or clause contains this")
    ap.add_argument("--keep", action="store_true", help="keep the tmp dirs (bundles, state)")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    out = ap.add_mutually_exclusive_group()
    out.add_argument("--junit", type=Path, help="write JUnit XML here")
    out.add_argument("--tap", type=Path, help="write TAP here")
    ap.add_argument(
        "--compare",
        action="store_true",
        help="run every RUNTIME and print a markdown table side by side",
    )
    ap.add_argument("--list", action="store_true", help="list the checks and exit")
    ap.add_argument(
        "--index", action="store_true", help="print the MUST index (markdown) of the spec and exit"
    )
    ap.add_argument(
        "--update-readme", action="store_true", help="rewrite the MUST index in README.md"
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(parse(argv))
    except UsageError as e:
        print(f"conformance: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("conformance: interrupted", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace) -> int:
    checks.load()
    selected = [c for c in CHECKS.values() if args.filter in c.name or args.filter in c.clause]
    if args.list:
        for c in selected:
            print(f"{c.name:<40} {c.clause:<45} {c.doc}")
        return 0
    if args.index or args.update_readme:
        from conformance.spec_index import render, update_readme

        if args.update_readme:
            update_readme(HERE / "README.md")
        else:
            print(render(), end="")
        return 0
    if not args.runtime:
        print(
            "usage: conformance RUNTIME [--filter S] [--keep] [-j N] [--junit F|--tap F]\n"
            "       conformance --compare RUNTIME...",
            file=sys.stderr,
        )
        return 2
    if os.geteuid() != 0:
        print("conformance: must run as root (containers need it)", file=sys.stderr)
        return 2
    if args.compare:
        return compare(args, selected)
    if len(args.runtime) != 1:
        print("conformance: one RUNTIME, or use --compare", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    results, _ = run_suite(args.runtime[0], selected, args.jobs, args.keep, echo=True)
    write_results(args, args.runtime[0], results)
    print(f"# {time.monotonic() - t0:.1f}s")
    print(totals(results))
    return 1 if any(r.status == FAIL for r in results) else 0


def write_results(args: argparse.Namespace, runtime: str, results: list[Result]) -> None:
    stem = Path(runtime).name
    if args.tap:
        write_tap(args.tap, results)
    else:
        write_junit(args.junit or RESULTS / f"{stem}.junit.xml", results, f"oci-conformance:{stem}")


def compare(args: argparse.Namespace, selected: list[Check]) -> int:
    by_rt: dict[str, list[Result]] = {}
    notes: dict[str, str] = {}
    for rt in args.runtime:
        t0 = time.monotonic()
        by_rt[rt], broken = run_suite(rt, selected, args.jobs, args.keep, echo=False)
        if broken:
            notes[rt] = broken
        print(f"# {rt}: {totals(by_rt[rt])} ({time.monotonic() - t0:.1f}s)", file=sys.stderr)
        RESULTS.mkdir(parents=True, exist_ok=True)
        write_junit(RESULTS / f"{Path(rt).name}.junit.xml", by_rt[rt], f"oci-conformance:{rt}")
    table = compare_table(by_rt, notes)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compare.md").write_text(table)
    print(table, end="")
    return 1 if any(r.status == FAIL for rs in by_rt.values() for r in rs) else 0
