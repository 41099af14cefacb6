"""Result records and the three output formats: TAP, JUnit XML, markdown comparison."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass(frozen=True)
class Result:
    name: str
    clause: str
    status: str  # PASS / FAIL / SKIP
    reason: str
    seconds: float


def totals(results: list[Result]) -> str:
    n = {s: sum(r.status == s for r in results) for s in (PASS, FAIL, SKIP)}
    return f"{n[PASS]} passed, {n[FAIL]} failed, {n[SKIP]} skipped"


def line(r: Result) -> str:
    tag = {PASS: "PASS", FAIL: "FAIL", SKIP: "SKIP"}[r.status]
    text = f"{tag}  {r.name:<40} {r.clause}"
    return f"{text}  -- {r.reason}" if r.reason else text


def write_tap(path: Path, results: list[Result]) -> None:
    out = [f"1..{len(results)}"]
    for i, r in enumerate(results, 1):
        desc = f"{r.name} [{r.clause}]"
        if r.status == PASS:
            out.append(f"ok {i} - {desc}")
        elif r.status == SKIP:
            out.append(f"ok {i} - {desc} # SKIP {r.reason}")
        else:
            out.append(f"not ok {i} - {desc}")
            out.append(f"  # {r.reason}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")


def write_junit(path: Path, results: list[Result], suite: str) -> None:
    ts = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(sum(r.status == FAIL for r in results)),
        skipped=str(sum(r.status == SKIP for r in results)),
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for r in results:
        tc = ET.SubElement(ts, "testcase", classname=r.clause, name=r.name, time=f"{r.seconds:.3f}")
        if r.status == FAIL:
            ET.SubElement(tc, "failure", message=r.reason).text = r.reason
        elif r.status == SKIP:
            ET.SubElement(tc, "skipped", message=r.reason)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(ts).write(path, encoding="utf-8", xml_declaration=True)


def compare_table(by_runtime: dict[str, list[Result]], notes: dict[str, str]) -> str:
    """Markdown: one row per check, one column per runtime; failures listed after."""
    names = list(by_runtime)
    rows: dict[str, dict[str, Result]] = {}
    for rt, results in by_runtime.items():
        for r in results:
            rows.setdefault(r.name, {})[rt] = r
    mark = {PASS: "pass", FAIL: "**FAIL**", SKIP: "skip"}
    out = ["| check | clause | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for name, cells in rows.items():
        clause = next(iter(cells.values())).clause
        vals = [mark[cells[rt].status] if rt in cells else "-" for rt in names]
        out.append(f"| {name} | {clause} | " + " | ".join(vals) + " |")
    out.append("| **totals** | | " + " | ".join(totals(by_runtime[rt]) for rt in names) + " |")
    for rt in names:
        bad = [r for r in by_runtime[rt] if r.status != PASS]
        if bad:
            out += ["", f"### {rt}: failures and skips", ""]
            if rt in notes:
                out += [f"Note: {rt} cannot run the base config at all: {_md(notes[rt])}", ""]
            out += [f"- {r.status} `{r.name}`: {_md(r.reason)}" for r in bad]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
