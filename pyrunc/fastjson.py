"""JSON through CPython's C accelerator (_json) directly.

`import json` pulls in `re` and costs ~7 ms, on every pyrunc command; the C
scanner and encoder it wraps need neither. Output and accepted input are the
same as json.loads/json.dumps with default options; anything unusual (an
error to report, indentation) goes to the json module itself."""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # duck-typed context
_WS = " \t\n\r"


def loads(text: str) -> Any:
    """json.loads; on invalid input, json.loads raises its usual JSONDecodeError."""
    try:
        start = len(text) - len(text.lstrip(_WS))
        obj, end = _scan(text, start)
        if text[end:].strip(_WS):
            raise ValueError("extra data")
        return obj
    except (StopIteration, ValueError, SystemError):
        # (SystemError: the C scanner's own error path needs json.decoder loaded)
        import json

        return json.loads(text)  # raises with line and column


def _default(o: object) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


_compact = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None, ":", ",",
                              False, False, True)
_spaced = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None, ": ", ", ",
                             False, False, True)


def dumps(obj: Any, compact: bool = False) -> str:
    """json.dumps(obj) (compact=True: separators=(",", ":"))."""
    return "".join((_compact if compact else _spaced)(obj, 0))


def dumps_indent(obj: Any, indent: str = "  ", _level: int = 0) -> str:
    """json.dumps(obj, indent=...) for the small documents pyrunc prints."""
    pad, inner = indent * _level, indent * (_level + 1)
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{_json.encode_basestring_ascii(str(k))}: "
                 f"{dumps_indent(v, indent, _level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, list) and obj:
        items = [inner + dumps_indent(v, indent, _level + 1) for v in obj]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return dumps(obj)


def copy_tree(obj: Any) -> Any:
    """A deep copy of a parsed JSON value (copy.deepcopy costs ~2 ms to import)."""
    if isinstance(obj, dict):
        return {k: copy_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [copy_tree(v) for v in obj]
    return obj  # str, int, float, bool, None: immutable
