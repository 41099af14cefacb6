"""Why a document is invalid, in one line, from jsonschema.

Only reached once the generated validator has said "invalid", so the cost of
importing jsonschema is paid by broken configs alone."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

_LONG = 60  # longer value reprs are abbreviated in messages


def json_path(parts: Iterable[str | int]) -> str:
    """["linux", "namespaces", 2, "type"] -> "linux.namespaces[2].type"."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p.replace("_", "a").isalnum():
            out += f".{p}" if out else p
        else:
            out += f"[{p!r}]"  # a map key such as an annotation "org.opencontainers.x"
    return out


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{...}"
    if isinstance(value, list):
        return "[...]"
    if isinstance(value, str):
        return repr(value[: _LONG - 10] + "...")
    return repr(value)[: _LONG - 10] + "..."


def first_error(instance: Any, schema_name: str) -> str | None:
    """'<path>: <rule broken by value>' for jsonschema's most relevant error,
    None if jsonschema finds the document valid."""
    import jsonschema

    from pyrunc.spec.schemas import load_schema

    validator = jsonschema.Draft4Validator(load_schema(schema_name))
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is None:
        return None
    message = error.message
    shown = repr(error.instance)
    if len(shown) > _LONG and message.startswith(shown):
        message = _short(error.instance) + message[len(shown):]
    path = json_path(error.absolute_path)
    return f"{path}: {message}" if path else message
