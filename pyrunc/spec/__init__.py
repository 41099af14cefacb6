"""config.json: loading, validation and the `spec` template.

Validation runs the plain-Python validator generated from schema/*.json
(pyrunc.spec.compile); jsonschema is imported only to explain an invalid
document. Keep this module light: create imports it on every run."""

from __future__ import annotations

from pyrunc.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["check_semantics", "load_config", "read_json", "template", "validate_config",
           "validate_process"]


def read_json(path: str, source: str, missing: str) -> Any:
    from pyrunc import fastjson

    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{source}: {missing}") from None
    except OSError as e:
        raise ConfigError(f"{source}: cannot read {path}: {e.strerror or e}") from None
    try:
        return fastjson.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{source}: invalid JSON: not UTF-8 (byte {e.start})") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid JSON: nested too deeply") from None
    except ValueError as e:  # json.JSONDecodeError
        line, col, msg = getattr(e, "lineno", 0), getattr(e, "colno", 0), getattr(e, "msg", e)
        raise ConfigError(f"{source}: invalid JSON at line {line} column {col}: {msg}") from None


def load_config(bundle: str) -> dict[str, Any]:
    """`<bundle>/config.json`, parsed, schema-validated and checked against
    the bundle; any problem is a one-line ConfigError."""
    cfg = read_json(f"{bundle}/config.json", "config.json",
                     f"no such file in bundle {bundle}")
    validate_config(cfg)
    check_semantics(cfg, bundle)
    result: dict[str, Any] = cfg
    return result


def _validate(doc: Any, schema: str, source: str, valid: bool) -> None:
    if valid:
        return
    from pyrunc.spec.report import first_error

    reason = first_error(doc, schema)
    if reason is not None:  # (None: jsonschema, the reference, accepts it after all)
        raise ConfigError(f"{source}: {reason}")


def validate_config(cfg: Any, source: str = "config.json") -> None:
    """Raise ConfigError unless `cfg` matches schema/config-schema.json."""
    from pyrunc.spec._validator import valid_config

    _validate(cfg, "config-schema.json", source, valid_config(cfg))


def validate_process(p: Any, source: str = "process.json") -> None:
    """Raise ConfigError unless `p` matches schema/process-schema.json
    (config.json's process, as `exec --process` takes it) and has no NUL byte."""
    from pyrunc.spec._validator import valid_process
    from pyrunc.spec.semantics import nul_bytes

    _validate(p, "process-schema.json", source, valid_process(p))
    nul_bytes(p, source)


def check_semantics(cfg: dict[str, Any], bundle: str) -> None:
    """Rules beyond the schema (rootfs, namespaces, cwd, hostname) for create."""
    from pyrunc.spec.semantics import check_semantics as check

    check(cfg, bundle)


def template(rootless: bool = False) -> dict[str, Any]:
    """What `pyrunc spec` writes: runc's template with ociVersion 1.3.0."""
    from pyrunc.spec.spec_template import template as make

    return make(rootless)
