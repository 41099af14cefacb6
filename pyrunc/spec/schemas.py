"""The JSON schemas under schema/, loaded as self-contained documents.

Used by the code generator and by the error report of an invalid config,
never on the hot path (the generated _validator answers valid/invalid)."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema")
CONFIG = "config-schema.json"
PROCESS = "process-schema.json"


def _read(name: str) -> dict[str, Any]:
    import json

    with open(os.path.join(SCHEMA_DIR, name)) as f:
        doc: dict[str, Any] = json.load(f)
    return doc


def load_schema(name: str) -> dict[str, Any]:
    """The schema file `name` with a reference into another file of ours
    ("config-schema.json#/definitions/X") rewritten to a local one, the other
    file's definitions copied in: plain jsonschema and our compiler both
    then need no resolver for other documents."""
    doc = _read(name)
    ref = doc.get("$ref", "")
    if "#" in ref and not ref.startswith("#"):
        other, _, pointer = ref.partition("#")
        doc["$ref"] = "#" + pointer
        doc["definitions"] = {**_read(other).get("definitions", {}), **doc.get("definitions", {})}
    return doc
