"""Bad input, table-driven: one clear line naming the field or argument at
fault, the right exit code, no traceback, and nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime, error_lines, set_path


def _cfg_case(patch: dict[str, Any]) -> Any:
    def make(rt: Runtime) -> Path:
        b = rt.bundle()
        cfg = rt.config(b)
        for k, v in patch.items():
            set_path(cfg, k, v)
        rt.write_config(b, cfg)
        return b
    return make


def _raw_case(text: str) -> Any:
    def make(rt: Runtime) -> Path:
        b = rt.bundle()
        (b / "config.json").write_text(text)
        return b
    return make


def _no_config(rt: Runtime) -> Path:
    b = rt.bundle()
    (b / "config.json").unlink()
    return b


def _dup_ns(rt: Runtime) -> Path:
    b = rt.bundle()
    cfg = rt.config(b)
    cfg["linux"]["namespaces"].append({"type": "pid"})
    rt.write_config(b, cfg)
    return b


def _bad_ns_type(rt: Runtime) -> Path:
    b = rt.bundle()
    cfg = rt.config(b)
    cfg["linux"]["namespaces"][2]["type"] = "pidd"
    rt.write_config(b, cfg)
    return b


CONFIG_CASES = [
    ("broken-json", _raw_case('{"ociVersion": "1.3.0",'), "config.json: invalid JSON"),
    ("not-an-object", _raw_case("[1, 2]"), "config.json"),
    ("no-config", _no_config, "config.json"),
    ("empty-args", _cfg_case({"process.args": []}), "config.json: process.args"),
    ("args-not-list", _cfg_case({"process.args": "sh"}), "config.json: process.args"),
    ("bad-ns-type", _bad_ns_type, "config.json: linux.namespaces[2].type: 'pidd'"),
    ("dup-ns", _dup_ns, "config.json: linux.namespaces"),
    ("uid-string", _cfg_case({"process.user.uid": "root"}), "config.json: process.user.uid"),
    ("no-root", _cfg_case({"root": None}), "config.json"),
    ("missing-rootfs", _cfg_case({"root.path": "nonexistent"}), "nonexistent"),
    ("cwd-relative", _cfg_case({"process.cwd": "relative/dir"}), "config.json: process.cwd"),
    ("exe-not-found", _cfg_case({"process.args": ["nosuchcmd"]}),
     'exec: "nosuchcmd": executable file not found in $PATH'),
    ("bad-mount", _cfg_case({"mounts": [{"destination": "/x", "type": "bind",
                                         "source": "/nonexistent/src", "options": ["bind"]}]}),
     "config.json: mounts[0]"),
    ("bad-capability", _cfg_case({"process.capabilities.bounding": ["CAP_NOPE"]}),
     "CAP_NOPE"),
    ("bad-rlimit", _cfg_case({"process.rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10,
                                                    "hard": 1 << 40}]}),
     "process.rlimits[0]"),
]


@pytest.mark.parametrize("name,make,message", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config(rt: Runtime, name: str, make: Any, message: str) -> None:
    bundle = make(rt)
    for verb in ("create", "run"):
        cid = rt.new_id()
        p = rt(verb, "-b", str(bundle), cid)
        assert p.returncode == 1, (verb, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr
        lines = error_lines(p.stderr)
        assert len(lines) == 1, lines
        assert message in lines[0], lines[0]
        assert rt("state", cid).returncode == 1
    assert not rt.root.exists() or not list(rt.root.iterdir())


@pytest.mark.parametrize("args,message,code", [
    (["create", "-b", "{bundle}", "a/b"], "invalid container ID format", 1),
    (["create", "-b", "{bundle}", ".."], "invalid container ID format", 1),
    (["create", "-b", "{bundle}", "has space"], "invalid container ID format", 1),
    (["create", "--bogus", "x"], "flag provided but not defined: --bogus", 1),
    (["--bogus", "list"], "flag provided but not defined: --bogus", 1),
    (["kill"], '"kill" requires a minimum of 1 argument(s)', 1),
    (["state", "a", "b"], '"state" requires exactly 1 argument(s)', 1),
    (["exec"], '"exec" requires a minimum of 1 argument(s)', 1),  # as runc words it
    (["--root"], "flag needs an argument: --root", 1),
    (["nosuchcommand"], "No help topic for 'nosuchcommand'", 3),
    (["create", "-b", "/nonexistent/bundle", "x"], "/nonexistent/bundle", 1),
    (["create", "--preserve-fds", "-1", "-b", "{bundle}", "x"], "--preserve-fds", 1),
    (["list", "-f", "yaml"], "--format: invalid value 'yaml'", 1),
    (["create", "--preserve-fds", "x", "c"], 'invalid value "x" for flag --preserve-fds', 1),
])
def test_bad_arguments(rt: Runtime, args: list[str], message: str, code: int) -> None:
    bundle = rt.bundle()
    p = rt(*[a.replace("{bundle}", str(bundle)) for a in args])
    assert p.returncode == code, p.stderr
    assert "Traceback" not in p.stderr
    lines = error_lines(p.stderr)
    assert len(lines) == 1, lines
    assert message in lines[0]
    assert not rt.root.exists() or not list(rt.root.iterdir())


def test_json_log_lines(rt: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    b = rt.bundle(**{"process.args": ["nosuchcmd"]})
    p = rt("--log", str(log), "--log-format", "json", "create", "-b", str(b), rt.new_id())
    assert p.returncode == 1
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    errors = [e for e in entries if e["level"] == "error"]
    assert errors and 'executable file not found in $PATH' in errors[-1]["msg"]
    assert set(errors[-1]) >= {"level", "msg", "time"}
    # the plain message also reaches stderr, like runc
    assert 'exec: "nosuchcmd"' in p.stderr


def test_systemd_cgroup_is_a_clear_error(rt: Runtime) -> None:
    b = rt.bundle()
    p = rt("--systemd-cgroup", "run", "-b", str(b), rt.new_id())
    assert p.returncode == 1
    assert "systemd" in p.stderr and "not supported" in p.stderr


def test_version(rt: Runtime) -> None:
    p = rt("--version")
    lines = p.stdout.splitlines()
    assert lines[0].startswith("pyrunc version ")
    assert lines[1] == "spec: 1.3.0"
