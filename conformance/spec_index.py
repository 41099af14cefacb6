"""The MUST index: every MUST of the spec's Linux-relevant files, and what covers it.

Requirements are extracted from the spec text itself (one row per sentence that
says MUST, table rows included), so the index follows the spec; COVERAGE maps
them to checks, or says why no check can cover them here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from conformance.coverage import COVERAGE
from conformance.harness import SPEC_DIR
from conformance.registry import CHECKS

FILES = ("runtime.md", "runtime-linux.md", "config.md", "config-linux.md")


@dataclass(frozen=True)
class Must:
    file: str
    slug: str
    line: int
    text: str


def slugify(heading: str) -> str:
    """GitHub's heading anchor: lowercase, punctuation dropped, spaces to dashes."""
    text = re.sub(r"<[^>]*>", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def slugs(file: str) -> set[str]:
    out = set()
    for ln in (SPEC_DIR / file).read_text().splitlines():
        if ln.startswith("#"):
            out.add(slugify(ln.lstrip("#")))
    return out


def _blocks(file: str) -> list[tuple[str, int, str]]:
    """(section slug, first line, text) of each paragraph, bullet item or table row;
    wrapped lines are joined so that a sentence is never cut at a line break."""
    out: list[tuple[str, int, str]] = []
    slug, in_code, start = "", False, 0
    cur: list[str] = []

    def flush() -> None:
        if cur:
            out.append((slug, start, " ".join(cur)))
            cur.clear()

    for n, ln in enumerate((SPEC_DIR / file).read_text().splitlines(), 1):
        if ln.startswith("```"):
            flush()
            in_code = not in_code
            continue
        if in_code:
            continue
        stripped = ln.strip()
        if ln.startswith("#"):
            flush()
            slug = slugify(ln.lstrip("#"))
            continue
        if not stripped:
            flush()
            continue
        new_item = (
            re.match(r"([*-]|\d+\.)\s", stripped) is not None
            or stripped.startswith(("|", "`"))
            or "|" in stripped
        )
        if new_item or not cur:
            flush()
            start = n
        cur.append(stripped)
        if "|" in stripped:  # table rows stand alone
            flush()
    flush()
    return out


def musts() -> list[Must]:
    found: list[Must] = []
    for file in FILES:
        for slug, n, block in _blocks(file):
            if "MUST" not in block:
                continue
            text = re.sub(
                r"\[([^\]]*)\]\[[^\]]*\]|\[([^\]]*)\]\([^)]*\)",
                lambda m: m.group(1) or m.group(2) or "",
                block,
            )
            text = re.sub(r"\s+", " ", text.replace("**", "").replace("`", "")).strip(" *|")
            if "|" in block:  # a table row: one requirement
                found.append(Must(file, slug, n, text))
                continue
            for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z*])", text):
                if "MUST" in sentence:
                    found.append(Must(file, slug, n, sentence.strip()))
    return found


def cover(m: Must) -> str:
    """The first COVERAGE rule for this file/section whose text key appears in the MUST."""
    for file, slug, key, what in COVERAGE:
        if file == m.file and slug in (m.slug, "*") and key.lower() in m.text.lower():
            return what
    return "UNMAPPED"


def kind(what: str) -> str:
    if what.startswith("n/a"):
        return "n/a"
    if what.startswith("not checked"):
        return "not checked"
    if what == "UNMAPPED":
        return "unmapped"
    return "covered"


def problems() -> list[str]:
    """Clauses of checks that are no heading of the spec; coverage naming unknown checks."""
    out = []
    known = {f: slugs(f) for f in FILES}
    for c in CHECKS.values():
        file, _, slug = c.clause.partition("#")
        if file not in known or slug not in known[file]:
            out.append(f"check {c.name}: clause {c.clause} is not a heading of the spec")
    for _, _, _, what in COVERAGE:
        if kind(what) == "covered":
            for name in re.findall(r"`([^`]+)`", what):
                pattern = name.replace("*", ".*")
                if not any(re.fullmatch(pattern, n) for n in CHECKS):
                    out.append(f"coverage names unknown check {name}")
    return out


def render() -> str:
    rows = musts()
    whats = [cover(m) for m in rows]
    counts = {
        k: sum(kind(w) == k for w in whats) for k in ("covered", "n/a", "not checked", "unmapped")
    }
    out = [
        f"{len(rows)} MUST sentences in {', '.join(FILES)}: {counts['covered']} covered by "
        f"checks, {counts['n/a']} not applicable to a Linux runtime's behaviour, "
        f"{counts['not checked']} not checked (reason given)"
        + (f", {counts['unmapped']} UNMAPPED" if counts["unmapped"] else "")
        + ".",
        "",
        "| # | clause | requirement | covered by |",
        "|---|---|---|---|",
    ]
    for i, (m, what) in enumerate(zip(rows, whats, strict=True), 1):
        text = m.text if len(m.text) <= 160 else m.text[:157] + "..."
        text = text.replace("|", "\\|")
        out.append(f"| {i} | {m.file}#{m.slug} (l.{m.line}) | {text} | {what} |")
    issues = problems()
    if issues:
        out += ["", "Index problems:", *[f"- {p}" for p in issues]]
    return "\n".join(out) + "\n"


START, END = "<!-- must-index:start -->", "<!-- must-index:end -->"


def update_readme(readme: Path) -> None:
    """Replace the text between the index markers of README.md with a fresh index."""
    text = readme.read_text()
    head, sep, rest = text.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"conformance: {readme} lacks the {START} / {END} markers")
    readme.write_text(f"{head}{START}\n{render()}{END}{tail}")
