"""Our config schema and fast validator against the runtime-spec's own
examples (../shared, beside the repository, as CI lays it out) with the
exact error lines, the `spec` template (as runc writes it), and the
generated validator kept in step with the schema files."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pyrunc import spec
from pyrunc.fastjson import dumps_indent
from pyrunc.spec import _validator, compile
from pyrunc.spec.schemas import CONFIG, PROCESS, SCHEMA_DIR, load_schema

REPO = Path(__file__).resolve().parents[2]
SPEC_TESTS = REPO.parent / "shared" / "oci-runtime-spec" / "schema" / "test" / "config"
# Non-Linux sections are only checked to be objects (brief: Linux-focused schema).
NOT_OUR_CONCERN = {"freebsd-vnet-disable.json": "a FreeBSD jail setting"}


def _corpus(kind: str) -> list[Path]:
    if not SPEC_TESTS.is_dir():
        return []
    return sorted((SPEC_TESTS / kind).glob("*.json"))


def _needs_corpus() -> None:
    if not SPEC_TESTS.is_dir():
        pytest.skip(f"{SPEC_TESTS} is missing (../shared is not beside the repository)")


def config_validator() -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(load_schema(CONFIG))


@pytest.mark.parametrize("name", [CONFIG, PROCESS])
def test_schema_files_are_valid_draft4(name: str) -> None:
    jsonschema.Draft4Validator.check_schema(load_schema(name))


def test_good_corpus_is_present_when_shared_is() -> None:
    _needs_corpus()
    assert len(_corpus("good")) >= 5 and len(_corpus("bad")) >= 4


@pytest.mark.parametrize("path", _corpus("good"), ids=lambda p: p.name)
def test_spec_good_configs_are_valid(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert config_validator().is_valid(doc)
    assert _validator.valid_config(doc)
    spec.validate_config(doc)


@pytest.mark.parametrize("path", _corpus("bad"), ids=lambda p: p.name)
def test_spec_bad_configs_are_rejected(path: Path, tmp_path: Path) -> None:
    if path.name in NOT_OUR_CONCERN:
        pytest.skip(f"{path.name}: {NOT_OUR_CONCERN[path.name]}, outside the Linux schema")
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "config.json").write_bytes(path.read_bytes())
    with pytest.raises(spec.ConfigError) as e:
        spec.load_config(str(tmp_path))
    line = str(e.value)
    assert line.startswith("config.json: ") and "\n" not in line
    try:
        doc = json.loads(path.read_text())
    except ValueError:
        assert "invalid JSON at line 1 column 2" in line
        return
    assert not _validator.valid_config(doc)
    assert not config_validator().is_valid(doc)


def test_spec_bad_configs_name_the_field() -> None:
    _needs_corpus()
    expected = {
        "linux-hugepage.json": "config.json: linux.resources.hugepageLimits[0].pageSize: "
                               "'64kB' does not match '^[1-9][0-9]*[KMG]B$'",
        "linux-netdevice.json": "config.json: linux.netDevices.eth0.name: 23 is not of type "
                                "'string'",
        "linux-rdma.json": "config.json: linux.resources.rdma.mlx5_1.hcaHandles: 'not a uint32' "
                           "is not of type 'integer'",
    }
    for name, line in expected.items():
        doc = json.loads((SPEC_TESTS / "bad" / name).read_text())
        with pytest.raises(spec.ConfigError) as e:
            spec.validate_config(doc)
        assert str(e.value) == line


@pytest.mark.parametrize("rootless", [False, True])
def test_template_is_valid_and_loads(rootless: bool, tmp_path: Path) -> None:
    doc = spec.template(rootless=rootless)
    assert _validator.valid_config(doc) and config_validator().is_valid(doc)
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(doc))
    assert spec.load_config(str(tmp_path)) == doc


@pytest.mark.parametrize("rootless", [False, True])
def test_template_is_runc_spec(rootless: bool) -> None:
    if not os.path.exists("/usr/sbin/runc"):
        pytest.skip("runc is not installed")
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["/usr/sbin/runc", "spec", *(["--rootless"] if rootless else [])],
                       cwd=d, check=True)
        runc_text = Path(d, "config.json").read_text()
    runc_doc = json.loads(runc_text)
    assert runc_doc.pop("ociVersion").startswith("1.")
    ours = spec.template(rootless=rootless)
    assert ours.pop("ociVersion") == "1.3.0"
    assert ours == runc_doc
    # same key order and tab indentation as runc writes (the CLI's dumps_indent)
    text = dumps_indent(spec.template(rootless=rootless), "\t")
    assert text == runc_text.replace(json.loads(runc_text)["ociVersion"], "1.3.0", 1)


def test_generated_validator_is_fresh() -> None:
    with open(compile.OUTPUT) as f:
        committed = f.read()
    assert committed == compile.generate(), \
        "pyrunc/spec/_validator.py is stale: run `python -m pyrunc.spec.compile`"


def test_process_schema_is_configs_process() -> None:
    config = load_schema(CONFIG)
    process = load_schema(PROCESS)
    target = process["$ref"].rsplit("/", 1)[1]
    assert process["definitions"][target] == config["definitions"][target]
    assert config["properties"]["process"] == {"$ref": f"#/definitions/{target}"}


def test_schema_dir_holds_only_our_files() -> None:
    assert sorted(os.listdir(SCHEMA_DIR)) == sorted([CONFIG, PROCESS])


def _unsupported(schema: dict[str, Any]) -> None:
    compile.Generator().entry("valid_x", schema, "test")


@pytest.mark.parametrize("schema", [
    {"type": "object", "oneOf": [{"type": "object"}]},
    {"type": ["string", "integer"]},
    {"type": "number"},
    {"properties": {"a": {"type": "string"}}},
    {"type": "string", "minimum": 1},
    {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
    {"type": "object", "additionalProperties": False},
    {"type": "string", "enum": ["a", 1]},
    {"type": "string", "pattern": "RLIMIT_.*"},
    {"type": "string", "pattern": "^(a|b)$"},
    {"$ref": "other.json#/definitions/x"},
    {"$ref": "#/definitions/x", "type": "object", "definitions": {"x": {"type": "object"}}},
])
def test_compiler_refuses_keywords_it_does_not_implement(schema: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _unsupported(schema)
