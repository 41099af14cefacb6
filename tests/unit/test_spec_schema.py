"""The project's config schema (pyrunc/spec/schema/) against the spec's own
good/bad corpus, and against the validator generated from it that runs on
the create path: whatever the fast path refuses, the schema refuses too."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from pyrunc import spec
from pyrunc.errors import ConfigError
from tests.conftest import BUSYBOX_BUNDLE, REPO, SHARED

jsonschema = pytest.importorskip("jsonschema")
SCHEMA = json.loads((REPO / "pyrunc" / "spec" / "schema" / "config-schema.json").read_text())
VALIDATOR = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)
CORPUS = SHARED / "oci-runtime-spec" / "schema" / "test" / "config"


def schema_ok(cfg: Any) -> bool:
    return not any(True for _ in VALIDATOR.iter_errors(cfg))


def corpus() -> list[Path]:
    if not CORPUS.exists():
        return []
    return sorted(p for p in CORPUS.glob("*/*.json") if "freebsd" not in p.name)


@pytest.mark.skipif(not CORPUS.exists(), reason="../shared/oci-runtime-spec is not beside the repo")
@pytest.mark.parametrize("path", corpus(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_spec_corpus(path: Path) -> None:
    try:
        cfg = json.loads(path.read_text())
    except ValueError:
        pytest.skip("not JSON (tests the parser, not the schema)")
    assert schema_ok(cfg) == (path.parent.name == "good")


@pytest.mark.parametrize("cfg", [
    json.loads((BUSYBOX_BUNDLE / "config.json").read_text()),
    json.loads((REPO / "bundles" / "hardened" / "config.json").read_text()),
    json.loads((REPO / "bundles" / "hooks" / "config.json").read_text()),
    spec.template(), spec.template(rootless=True)], ids=["busybox", "hardened", "hooks",
                                                          "template", "template-rootless"])
def test_our_configs_are_schema_valid(cfg: dict[str, Any]) -> None:
    assert schema_ok(cfg)


MUTATIONS: list[tuple[str, Any]] = [
    ("process.args", []), ("process.args", "sh"), ("process.args", [1]),
    ("process.cwd", 5), ("process.user.uid", "root"), ("process.user.gid", -1.5),
    ("process.env", [3]), ("process.terminal", "yes"), ("root", None), ("root.path", 1),
    ("ociVersion", 1), ("mounts", [{"type": "tmpfs"}]),
    ("linux.namespaces", [{"type": "pidd"}]), ("linux.uidMappings", [{"hostID": 0}]),
    ("process.rlimits", [{"type": "RLIMIT_NOFILE"}]), ("process.capabilities.bounding", "x"),
    ("process.user.additionalGids", ["a"]),
]


def mutate(cfg: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(cfg)
    *parents, last = dotted.split(".")
    cur = out
    for p in parents:
        cur = cur.setdefault(p, {})
    if value is None:
        cur.pop(last, None)
    else:
        cur[last] = value
    return out


def test_fast_validator_never_refuses_a_schema_valid_config() -> None:
    base = json.loads((BUSYBOX_BUNDLE / "config.json").read_text())
    rng = random.Random(7)
    cases = [mutate(base, k, v) for k, v in MUTATIONS]
    for _ in range(200):  # random combinations of two mutations
        (k1, v1), (k2, v2) = rng.sample(MUTATIONS, 2)
        cases.append(mutate(mutate(base, k1, v1), k2, v2))
    for cfg in cases:
        try:
            spec.validate_config(cfg)
            fast_ok = True
        except ConfigError:
            fast_ok = False
        if not fast_ok:
            assert not schema_ok(cfg), cfg
    # and every single mutation above is caught by both
    for (k, v), cfg in zip(MUTATIONS, cases, strict=False):
        assert not schema_ok(cfg), (k, v)
        with pytest.raises(ConfigError):
            spec.validate_config(cfg)
