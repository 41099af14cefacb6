"""Ratio chart: matplotlib PNG when importable, else a hand-written SVG."""

import math
from pathlib import Path
from xml.sax.saxutils import escape

from .report import ratio
from .suite import Row

Series = list[tuple[str, list[float | None]]]
COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]


def _series(rows: list[Row], names: list[str], baseline: str) -> Series:
    return [(r.label.strip(), [ratio(r, n, baseline) for n in names]) for r in rows]


def plot(path_stem: Path, rows: list[Row], names: list[str], baseline: str) -> Path:
    series = _series(rows, names, baseline)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        out = path_stem.with_suffix(".svg")
        out.write_text(_svg(series, names, baseline))
        return out
    out = path_stem.with_suffix(".png")
    _png(out, series, names, baseline)
    return out


def _png(out: Path, series: Series, names: list[str], baseline: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.5 * len(series) * max(1, len(names)) / 2 + 1.5))
    height = 0.8 / len(names)
    for i, name in enumerate(names):
        ys = [k + i * height for k in range(len(series))]
        xs = [v[i] or 0.0 for _, v in series]
        ax.barh(ys, xs, height=height, label=name, color=COLORS[i % len(COLORS)])
    ax.set_yticks([k + 0.4 - height / 2 for k in range(len(series))])
    ax.set_yticklabels([label for label, _ in series])
    ax.invert_yaxis()
    ax.set_xscale("log", base=2)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel(f"median time / {baseline} median (log scale; missing bar = n/a)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _svg(series: Series, names: list[str], baseline: str) -> str:
    """Horizontal grouped bars on a log2 axis; the line at 1.0 is the baseline."""
    values = [v for _, vs in series for v in vs if v]
    lo = min([0.5] + [2 ** math.floor(math.log2(v)) for v in values])
    hi = max([2.0] + [2 ** math.ceil(math.log2(v)) for v in values])
    left, plot_w, bar_h, gap, top = 300, 520, 14, 10, 40
    group_h = bar_h * len(names) + gap
    height = top + group_h * len(series) + 60
    width = left + plot_w + 80

    def x(v: float) -> float:
        return left + plot_w * (math.log2(v) - math.log2(lo)) / (math.log2(hi) - math.log2(lo))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14">median / {escape(baseline)} median '
        "(log scale; no bar = n/a)</text>",
    ]
    axis_y = top + group_h * len(series)
    tick = lo
    while tick <= hi:
        tx = x(tick)
        out.append(f'<line x1="{tx:.1f}" y1="{top}" x2="{tx:.1f}" y2="{axis_y}" '
                   f'stroke="{"black" if tick == 1 else "#ddd"}"/>')
        out.append(f'<text x="{tx:.1f}" y="{axis_y + 15}" text-anchor="middle">{tick:g}</text>')
        tick *= 2
    for k, (label, vs) in enumerate(series):
        gy = top + k * group_h
        out.append(f'<text x="{left - 8}" y="{gy + group_h / 2:.1f}" text-anchor="end">'
                   f"{escape(label)}</text>")
        for i, v in enumerate(vs):
            if not v:
                continue
            y = gy + i * bar_h
            x0, x1 = x(min(v, 1.0)), x(max(v, 1.0))
            out.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" '
                       f'height="{bar_h - 2}" fill="{COLORS[i % len(COLORS)]}"/>')
            out.append(f'<text x="{x1 + 4:.1f}" y="{y + bar_h - 4}" font-size="10">{v:.2f}</text>')
    for i, name in enumerate(names):
        lx = left + i * 110
        out.append(f'<rect x="{lx}" y="{axis_y + 30}" width="12" height="12" '
                   f'fill="{COLORS[i % len(COLORS)]}"/>')
        out.append(f'<text x="{lx + 16}" y="{axis_y + 40}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
