"""Markdown table and JSON dump of the results."""

import json
from pathlib import Path

from .stats import median, p90
from .suite import Row


def _num(value: float, unit: str) -> str:
    return f"{value:.3f}" if unit == "s" else f"{value:.1f}"


NA_WIDTH = 60  # full reasons are listed under the table


def cell(row: Row, name: str) -> str:
    if name in row.na:
        reason = row.na[name]
        short = reason if len(reason) <= NA_WIDTH else reason[: NA_WIDTH - 1] + "…"
        return f"n/a: {short}".replace("|", "\\|")
    values = row.samples.get(name)
    if not values:
        return "–"
    return f"{_num(median(values), row.unit)} / {_num(p90(values), row.unit)}"


def ratio(row: Row, name: str, baseline: str) -> float | None:
    a, b = row.samples.get(name), row.samples.get(baseline)
    if not a or not b or median(b) == 0:
        return None
    return median(a) / median(b)


def table(rows: list[Row], names: list[str], baseline: str) -> str:
    others = [n for n in names if n != baseline]
    head = ["benchmark", "unit"] + [f"{n} median / p90" for n in names]
    head += [f"{n}/{baseline}" for n in others]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.label.strip() if not row.label.startswith(" ") else "↳ " + row.label.strip()]
        cells.append(row.unit)
        cells += [cell(row, n) for n in names]
        for n in others:
            r = ratio(row, n, baseline)
            cells.append("n/a" if r is None else f"{r:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    reasons = sorted({(n, r.na[n]) for r in rows for n in names if n in r.na})
    if reasons:
        lines += ["", "Not available:"] + [f"- {n}: {why}" for n, why in reasons]
    return "\n".join(lines)


def write_json(path: Path, rows: list[Row], meta: dict[str, object]) -> None:
    data = {
        "meta": meta,
        "rows": [
            {"key": r.key, "label": r.label.strip(), "unit": r.unit,
             "samples": r.samples, "na": r.na}
            for r in rows
        ],
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
