"""Generate pyrunc/spec/_validator.py from our JSON schemas.

`import jsonschema` alone costs ~90 ms and create validates every config, so
the hot path runs plain Python generated from the same schema files: one
boolean function per schema, straight-line checks, no imports. Only the
keywords our schemas use are supported; anything else stops the generator
rather than being silently ignored.

Semantics follow JSON Schema draft 4 as jsonschema implements it (the unit
tests check both agree): "integer" excludes booleans and floats, keywords
for one type apply only once that type is checked, "pattern" is re.search.

Regenerate with `python -m pyrunc.spec.compile` after editing a schema."""

from __future__ import annotations

import os
import sys

from pyrunc.spec.schemas import CONFIG, PROCESS, load_schema

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_validator.py")

# name of the generated function -> schema file
ENTRY_POINTS = {"valid_config": CONFIG, "valid_process": PROCESS}

_ANNOTATIONS = {"$schema", "title", "description", "definitions"}
_TYPE_TEST = {  # Python test that a value is NOT of the JSON type
    "object": "type({v}) is not dict",
    "array": "type({v}) is not list",
    "string": "type({v}) is not str",
    "integer": "type({v}) is not int",  # bool is a subclass, type() excludes it
    "boolean": "type({v}) is not bool",
}
_KEYWORDS_OF_TYPE = {
    "object": {"properties", "required", "additionalProperties"},
    "array": {"items", "minItems"},
    "string": {"enum", "pattern"},
    "integer": {"minimum", "maximum"},
}
_ALL_KEYWORDS = _ANNOTATIONS | {"type", "$ref"} | set().union(*_KEYWORDS_OF_TYPE.values())

# The runtime half of "pattern": an anchored regex of quantified atoms as an
# NFA (sets of atom indices), so the validator does not pay for `import re`.
_PATTERN_RUNTIME = '''
def _closure(atoms: tuple[Atom, ...], states: set[int]) -> set[int]:
    todo = list(states)
    while todo:
        i = todo.pop()
        if i < len(atoms) and atoms[i][3] != "1" and i + 1 not in states:
            states.add(i + 1)
            todo.append(i + 1)
    return states


def _full_match(atoms: tuple[Atom, ...], s: str) -> bool:
    states = _closure(atoms, {0})
    for c in s:
        after = set()
        for i in states:
            if i < len(atoms):
                negated, chars, ranges, quant = atoms[i]
                if (c in chars or any(lo <= c <= hi for lo, hi in ranges)) != negated:
                    after.add(i if quant == "*" else i + 1)
        if not after:
            return False
        states = _closure(atoms, after)
    return len(atoms) in states


def _match(atoms: tuple[Atom, ...], s: str) -> bool:
    """re.search("^...$", s): Python's `$` also matches before a final newline."""
    return _full_match(atoms, s) or (s[-1:] == "\\n" and _full_match(atoms, s[:-1]))
'''

# an atom: (negated, chars, ranges, quantifier "1" | "?" | "*")
Atom = tuple[bool, str, tuple[tuple[str, str], ...], str]

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _escape(pattern: str, i: int) -> tuple[str, int]:
    c = pattern[i + 1]
    if c in _ESCAPES:
        return _ESCAPES[c], i + 2
    if c.isalnum():
        raise ValueError(f"pattern {pattern!r}: escape \\{c} is not supported")
    return c, i + 2


def _parse_class(pattern: str, i: int) -> tuple[bool, str, tuple[tuple[str, str], ...], int]:
    i += 1  # past "["
    negated = pattern[i] == "^"
    if negated:
        i += 1
    chars: list[str] = []
    ranges: list[tuple[str, str]] = []
    first = True
    while pattern[i] != "]" or first:
        first = False
        if pattern[i] == "\\":
            c, i = _escape(pattern, i)
        else:
            c, i = pattern[i], i + 1
        if pattern[i] == "-" and pattern[i + 1] != "]":
            if pattern[i + 1] == "\\":
                hi, i = _escape(pattern, i + 1)
            else:
                hi, i = pattern[i + 1], i + 2
            ranges.append((c, hi))
        else:
            chars.append(c)
    return negated, "".join(chars), tuple(ranges), i + 1


def parse_pattern(pattern: str) -> tuple[Atom, ...]:
    """The subset we use: ^ atoms $, an atom a literal or a [class] with an
    optional ?, * or +."""
    if not (pattern.startswith("^") and pattern.endswith("$")) or pattern.endswith("\\$"):
        raise ValueError(f"pattern {pattern!r}: only ^...$ anchored patterns are supported")
    body = pattern[1:-1]
    atoms: list[Atom] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "[":
            negated, chars, ranges, i = _parse_class(body, i)
        elif c == "\\":
            negated, ranges = False, ()
            chars, i = _escape(body, i)
        elif c in ".()|{}^$?*+":
            raise ValueError(f"pattern {pattern!r}: {c!r} is not supported")
        else:
            negated, chars, ranges, i = False, c, (), i + 1
        quant = body[i] if i < len(body) and body[i] in "?*+" else "1"
        if quant != "1":
            i += 1
        if quant == "+":  # x+ = x x*
            atoms.append((negated, chars, ranges, "1"))
            quant = "*"
        atoms.append((negated, chars, ranges, quant))
    return tuple(atoms)


class Generator:
    def __init__(self) -> None:
        self.definitions: dict[str, Any] = {}
        self.constants: list[str] = []
        self.enums: dict[tuple[str, ...], str] = {}
        self.patterns: dict[str, str] = {}
        self.functions: dict[str, list[str]] = {}  # definition name -> its function
        self.pending: list[str] = []

    # -- constants ----------------------------------------------------------
    def _enum(self, values: list[Any]) -> str:
        if not all(isinstance(v, str) for v in values):
            raise ValueError(f"enum {values!r}: only strings are supported")
        key = tuple(sorted(values))
        if key not in self.enums:
            name = self.enums[key] = f"_ENUM{len(self.enums)}"
            self.constants += [f"{name} = frozenset((", *(f"    {v!r}," for v in key), "))"]
        return self.enums[key]

    def _pattern(self, pattern: str) -> str:
        if pattern not in self.patterns:
            name = self.patterns[pattern] = f"_PATTERN{len(self.patterns)}"
            self.constants += [f"{name}: tuple[Atom, ...] = (  # {pattern}",
                               *(f"    {atom!r}," for atom in parse_pattern(pattern)), ")"]
        return self.patterns[pattern]

    # -- schemas ------------------------------------------------------------
    def _target(self, ref: str) -> tuple[str, dict[str, Any]]:
        prefix = "#/definitions/"
        if not ref.startswith(prefix) or ref[len(prefix):] not in self.definitions:
            raise ValueError(f"$ref {ref!r}: only #/definitions/<name> of this file is supported")
        name = ref[len(prefix):]
        return name, self.definitions[name]

    @staticmethod
    def _is_leaf(node: dict[str, Any]) -> bool:
        """Checks of a leaf are inlined where it is referenced."""
        return not {"$ref", "properties", "items", "additionalProperties"} & node.keys()

    def _function_for(self, name: str) -> str:
        fn = f"_{name}"
        if name not in self.functions:
            self.functions[name] = []  # reserve: recursive references
            self.pending.append(name)
        return fn

    def _kind(self, node: dict[str, Any]) -> str | None:
        """The node's single type, after checking it uses only supported keywords."""
        unknown = node.keys() - _ALL_KEYWORDS
        if unknown:
            raise ValueError(f"schema keywords {sorted(unknown)} are not supported")
        kind = node.get("type")
        used = node.keys() - _ANNOTATIONS - {"type"}
        if kind is None:
            if used:
                raise ValueError(f"keywords {sorted(used)} need a single 'type' beside them")
            return None
        if not isinstance(kind, str) or kind not in _TYPE_TEST:
            raise ValueError(f"type {kind!r} is not supported")
        if used - _KEYWORDS_OF_TYPE.get(kind, set()):
            raise ValueError(f"keywords {sorted(used)} do not apply to type {kind!r}")
        if "additionalProperties" in node and (
                "properties" in node or not isinstance(node["additionalProperties"], dict)):
            raise ValueError("additionalProperties: only a schema for every value of a map "
                             "(no 'properties' beside it) is supported")
        return kind

    def expr(self, node: dict[str, Any], v: str, depth: int) -> str | None:
        """One expression, true when value `v` does NOT match `node` ("" when
        anything matches), or None when the node needs statements."""
        if "$ref" in node:
            if node.keys() - _ANNOTATIONS != {"$ref"}:
                raise ValueError("$ref beside other keywords is ignored by draft 4; not supported")
            name, target = self._target(node["$ref"])
            if self._is_leaf(target):
                return self.expr(target, v, depth)
            return f"not {self._function_for(name)}({v})"
        kind = self._kind(node)
        if kind is None:
            return ""
        bad = [_TYPE_TEST[kind].format(v=v)]
        w = f"x{depth}"
        if kind == "object":
            if "properties" in node or "required" in node:
                return None
            item = self.expr(node.get("additionalProperties", {}), w, depth + 1)
            if item is None:
                return None
            if item:
                bad.append(f"any({item} for {w} in {v}.values())")
        elif kind == "array":
            if "minItems" in node:
                bad.append(f"len({v}) < {node['minItems']}")
            item = self.expr(node.get("items", {}), w, depth + 1)
            if item is None:
                return None
            if item:
                bad.append(f"any({item} for {w} in {v})")
        elif kind == "string":
            if "enum" in node:
                bad.append(f"{v} not in {self._enum(node['enum'])}")
            if "pattern" in node:
                bad.append(f"not _match({self._pattern(node['pattern'])}, {v})")
        elif kind == "integer":
            lo, hi = node.get("minimum"), node.get("maximum")
            if lo is not None and hi is not None:
                bad.append(f"not {lo} <= {v} <= {hi}")
            elif lo is not None:
                bad.append(f"{v} < {lo}")
            elif hi is not None:
                bad.append(f"{v} > {hi}")
        return " or ".join(bad)

    def node(self, node: dict[str, Any], v: str, depth: int, ind: str) -> list[str]:
        """Statements that `return False` unless value `v` matches `node`."""
        bad = self.expr(node, v, depth)
        if bad is not None:
            return [f"{ind}if {bad}:", f"{ind}    return False"] if bad else []
        kind = self._kind(node)
        out = [f"{ind}if {_TYPE_TEST[str(kind)].format(v=v)}:", f"{ind}    return False"]
        w = f"x{depth}"
        if kind == "object":
            required = node.get("required", [])
            if required:
                test = " or ".join(f"{key!r} not in {v}" for key in required)
                out += [f"{ind}if {test}:", f"{ind}    return False"]
            for key, sub in node.get("properties", {}).items():
                sub_bad = self.expr(sub, w, depth + 1)
                if sub_bad == "":
                    continue
                if key in required:
                    out += [f"{ind}{w} = {v}[{key!r}]", *self.node(sub, w, depth + 1, ind)]
                elif sub_bad is not None:
                    out += [f"{ind}if ({w} := {v}.get({key!r}, _MISSING)) is not _MISSING and ("
                            f"{sub_bad}):", f"{ind}    return False"]
                else:
                    out += [f"{ind}{w} = {v}.get({key!r}, _MISSING)",
                            f"{ind}if {w} is not _MISSING:",
                            *self.node(sub, w, depth + 1, ind + "    ")]
            body = self.node(node.get("additionalProperties", {}), w, depth + 1, ind + "    ")
            if body:
                out += [f"{ind}for {w} in {v}.values():", *body]
        elif kind == "array":  # items that need statements
            if "minItems" in node:
                out += [f"{ind}if len({v}) < {node['minItems']}:", f"{ind}    return False"]
            out += [f"{ind}for {w} in {v}:", *self.node(node["items"], w, depth + 1, ind + "    ")]
        return out

    def function(self, name: str, schema: dict[str, Any], doc: str) -> list[str]:
        return [f"def {name}(x0: Any) -> bool:", f'    """{doc}"""',
                *self.node(schema, "x0", 1, "    "), "    return True"]

    def entry(self, name: str, schema: dict[str, Any], source: str) -> list[str]:
        self.definitions = schema.get("definitions", {})
        lines = self.function(name, schema, f"Whether a document is valid against {source}.")
        while self.pending:
            d = self.pending.pop(0)
            self.functions[d] = self.function(f"_{d}", self.definitions[d], f"definitions/{d}")
        return lines


def generate() -> str:
    gen = Generator()
    entries = [gen.entry(fn, load_schema(src), src) for fn, src in ENTRY_POINTS.items()]
    parts = [
        "# ruff: noqa: E501",
        '"""Generated by `python -m pyrunc.spec.compile`: do not edit.',
        "",
        "From schema/" + " and schema/".join(ENTRY_POINTS.values()) + ".",
        "Answers valid/invalid only; pyrunc.spec.report says why (with jsonschema).\"\"\"",
        "",
        "from __future__ import annotations",
        "",
        "TYPE_CHECKING = False",
        "if TYPE_CHECKING:",
        "    from typing import Any",
        "",
        "Atom = tuple[bool, str, tuple[tuple[str, str], ...], str]",
        "_MISSING = object()",
        *gen.constants,
        "",
        _PATTERN_RUNTIME.rstrip("\n"),
    ]
    for lines in [*entries, *(gen.functions[d] for d in sorted(gen.functions))]:
        parts += ["", "", *lines]
    return "\n".join(parts) + "\n"


def main() -> int:
    text = generate()
    with open(OUTPUT, "w") as f:
        f.write(text)
    print(f"wrote {OUTPUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
