"""load_config and validate_process: every failure is ONE line naming the
file, the field (JSON path) and the rule, exactly as asserted here."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyrunc import spec
from pyrunc.errors import ConfigError
from pyrunc.spec.report import json_path

REPO = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = json.loads((REPO / "bundles" / "busybox" / "config.json").read_text())


def bundle(tmp: Path, cfg: Any = None, raw: bytes | None = None) -> str:
    (tmp / "rootfs").mkdir(exist_ok=True)
    if raw is None:
        raw = json.dumps(BASE if cfg is None else cfg).encode()
    (tmp / "config.json").write_bytes(raw)
    return str(tmp)


def edit(fn: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    cfg = copy.deepcopy(BASE)
    fn(cfg)
    return cfg


def test_busybox_config_loads(tmp_path: Path) -> None:
    assert spec.load_config(bundle(tmp_path)) == BASE


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        spec.load_config(str(tmp_path))
    assert str(e.value) == f"config.json: no such file in bundle {tmp_path}"


def test_unreadable_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()
    with pytest.raises(ConfigError) as e:
        spec.load_config(str(tmp_path))
    assert str(e.value) == f"config.json: cannot read {tmp_path}/config.json: Is a directory"


@pytest.mark.parametrize(("raw", "line"), [
    (b'{"ociVersion": "1.3.0",', "config.json: invalid JSON at line 1 column 24: "
                                 "Expecting property name enclosed in double quotes"),
    (b'{\n  "a": 1\n  "b": 2}', "config.json: invalid JSON at line 3 column 3: "
                               "Expecting ',' delimiter"),
    (b"", "config.json: invalid JSON at line 1 column 1: Expecting value"),
    (b'{"a": 1} x', "config.json: invalid JSON at line 1 column 10: Extra data"),
    (b'{"a": "\xff"}', "config.json: invalid JSON: not UTF-8 (byte 7)"),
])
def test_broken_json(tmp_path: Path, raw: bytes, line: str) -> None:
    with pytest.raises(ConfigError) as e:
        spec.load_config(bundle(tmp_path, raw=raw))
    assert str(e.value) == line


NS_ENUM = "['cgroup', 'ipc', 'mount', 'network', 'pid', 'time', 'user', 'uts']"
SCHEMA_CASES: list[tuple[str, Any, str]] = [
    ("not-an-object", [1, 2], "[1, 2] is not of type 'object'"),
    ("no-ociVersion", edit(lambda c: c.pop("ociVersion")), "'ociVersion' is a required property"),
    ("no-root", edit(lambda c: c.pop("root")), "'root' is a required property"),
    ("root-null", edit(lambda c: c.update(root=None)), "root: None is not of type 'object'"),
    ("root-path-int", edit(lambda c: c["root"].update(path=1)),
     "root.path: 1 is not of type 'string'"),
    ("empty-args", edit(lambda c: c["process"].update(args=[])),
     "process.args: [] should be non-empty"),
    ("args-string", edit(lambda c: c["process"].update(args="sh")),
     "process.args: 'sh' is not of type 'array'"),
    ("args-item", edit(lambda c: c["process"].update(args=["sh", 1])),
     "process.args[1]: 1 is not of type 'string'"),
    ("no-cwd", edit(lambda c: c["process"].pop("cwd")),
     "process: 'cwd' is a required property"),
    ("ns-type", edit(lambda c: c["linux"]["namespaces"][2].update(type="pidd")),
     f"linux.namespaces[2].type: 'pidd' is not one of {NS_ENUM}"),
    ("uid-string", edit(lambda c: c["process"]["user"].update(uid="root")),
     "process.user.uid: 'root' is not of type 'integer'"),
    ("uid-float", edit(lambda c: c["process"]["user"].update(uid=1.0)),
     "process.user.uid: 1.0 is not of type 'integer'"),
    ("uid-bool", edit(lambda c: c["process"]["user"].update(uid=True)),
     "process.user.uid: True is not of type 'integer'"),
    ("uid-too-big", edit(lambda c: c["process"]["user"].update(uid=2**32)),
     "process.user.uid: 4294967296 is greater than the maximum of 4294967295"),
    ("gid-missing", edit(lambda c: c["process"]["user"].pop("gid")),
     "process.user: 'gid' is a required property"),
    ("rlimit-type", edit(lambda c: c["process"]["rlimits"][0].update(type="nofile")),
     "process.rlimits[0].type: 'nofile' does not match '^RLIMIT_[A-Z]+$'"),
    ("rlimit-negative", edit(lambda c: c["process"]["rlimits"][0].update(soft=-1)),
     "process.rlimits[0].soft: -1 is less than the minimum of 0"),
    ("terminal-string", edit(lambda c: c["process"].update(terminal="yes")),
     "process.terminal: 'yes' is not of type 'boolean'"),
    ("mount-destination", edit(lambda c: c["mounts"][1].pop("destination")),
     "mounts[1]: 'destination' is a required property"),
    ("hook-timeout", edit(lambda c: c.update(hooks={"poststop": [{"path": "/x", "timeout": 0}]})),
     "hooks.poststop[0].timeout: 0 is less than the minimum of 1"),
    ("annotation", edit(lambda c: c.update(annotations={"org.example.key": 1})),
     "annotations['org.example.key']: 1 is not of type 'string'"),
    ("device-type", edit(lambda c: c["linux"].update(devices=[{"type": "x", "path": "/dev/x"}])),
     "linux.devices[0].type: 'x' does not match '^[bcpu]$'"),
    ("seccomp-names", edit(lambda c: c["linux"].update(seccomp={
        "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_LOG"}]})),
     "linux.seccomp.syscalls[0].names: [] should be non-empty"),
    ("linux-list", edit(lambda c: c.update(linux=[c["linux"]])),
     "linux: [...] is not of type 'object'"),
    ("long-string", edit(lambda c: c["linux"].update(rootfsPropagation="x" * 100)),
     "linux.rootfsPropagation: '" + "x" * 50 + "...' is not one of "
     "['private', 'shared', 'slave', 'unbindable', 'rprivate', 'rshared', 'rslave', "
     "'runbindable']"),
]


@pytest.mark.parametrize(("cfg", "line"), [c[1:] for c in SCHEMA_CASES],
                         ids=[c[0] for c in SCHEMA_CASES])
def test_schema_violation_is_one_exact_line(tmp_path: Path, cfg: Any, line: str) -> None:
    with pytest.raises(ConfigError) as e:
        spec.load_config(bundle(tmp_path, cfg))
    assert str(e.value) == f"config.json: {line}"
    with pytest.raises(ConfigError) as e:
        spec.validate_config(cfg, source="x/config.json")
    assert str(e.value) == f"x/config.json: {line}"


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    cfg = edit(lambda c: c.update({"x-new": {"a": [1]}, "linux": {**c["linux"], "zz": 1}}))
    cfg["process"]["user"]["nickname"] = 3
    assert spec.load_config(bundle(tmp_path, cfg)) == cfg


def _ns(*entries: dict[str, str]) -> Callable[[dict[str, Any]], object]:
    return lambda c: c["linux"].update(namespaces=[*c["linux"]["namespaces"], *entries])


SEMANTIC_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("no-process", edit(lambda c: c.pop("process")),
     "'process' is a required property (the spec makes it optional, but a container cannot "
     "be created without one)"),
    ("cwd-relative", edit(lambda c: c["process"].update(cwd="relative/dir")),
     "process.cwd: 'relative/dir' is not an absolute path"),
    ("dup-ns", edit(_ns({"type": "pid"})),
     "linux.namespaces: duplicate namespace type 'pid'"),
    ("ns-path-relative", edit(_ns({"type": "cgroup", "path": "proc/1/ns/cgroup"})),
     "linux.namespaces[5].path: 'proc/1/ns/cgroup' is not an absolute path"),
    ("maps-without-userns", edit(lambda c: c["linux"].update(
        uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])),
     "linux.uidMappings: user namespace mappings specified, but no user namespace in "
     "linux.namespaces"),
    ("userns-without-maps", edit(_ns({"type": "user"})),
     "linux.namespaces: user namespace enabled, but no namespace path to join nor "
     "linux.uidMappings/gidMappings to apply"),
    ("hostname-without-uts", edit(lambda c: c["linux"].update(
        namespaces=[n for n in c["linux"]["namespaces"] if n["type"] != "uts"])),
     "hostname: unable to set hostname without a private UTS namespace"),
    ("domainname-without-uts", edit(lambda c: (c.pop("hostname"), c.update(domainname="d"),
                                               c["linux"].update(namespaces=[{"type": "pid"}]))),
     "domainname: unable to set domainname without a private UTS namespace"),
    ("ociversion-not-semver", edit(lambda c: c.update(ociVersion="1.0")),
     "ociVersion: '1.0' is not a SemVer 2.0.0 version"),
    ("ociversion-major-2", edit(lambda c: c.update(ociVersion="2.0.0")),
     "ociVersion: '2.0.0': this runtime implements version 1 of the OCI runtime spec "
     "(up to 1.3.0)"),
    ("hostname-too-long", edit(lambda c: c.update(hostname="h" * 65)),
     "hostname: longer than the kernel's limit of 64 bytes"),
    ("nul-in-args", edit(lambda c: c["process"].update(args=["sh", "-c", "tr\0ue"])),
     "process.args[2]: contains a NUL byte"),
    ("nul-in-annotation-key", edit(lambda c: c.update(annotations={"a\0b": "x"})),
     "annotations: key 'a\\x00b' contains a NUL byte"),
]


@pytest.mark.parametrize(("cfg", "line"), [c[1:] for c in SEMANTIC_CASES],
                         ids=[c[0] for c in SEMANTIC_CASES])
def test_semantic_violation_is_one_exact_line(tmp_path: Path, cfg: Any, line: str) -> None:
    spec.validate_config(cfg)  # schema-valid: only the semantic check refuses it
    with pytest.raises(ConfigError) as e:
        spec.load_config(bundle(tmp_path, cfg))
    assert str(e.value) == f"config.json: {line}"


def test_semantics_allow_any_semver_1x(tmp_path: Path) -> None:
    for v in ("1.0.0", "1.0.2-dev", "1.2.0-rc.1+build.5", "1.9.0"):
        spec.load_config(bundle(tmp_path, edit(lambda c, v=v: c.update(ociVersion=v))))


def test_semantics_allow_joined_user_namespace_and_hostless_config(tmp_path: Path) -> None:
    cfg = edit(_ns({"type": "user", "path": "/proc/1/ns/user"}))
    spec.load_config(bundle(tmp_path, cfg))
    cfg = edit(lambda c: (c.pop("hostname"), c["linux"].update(namespaces=[])))
    spec.load_config(bundle(tmp_path, cfg))
    cfg = edit(lambda c: (c["linux"]["namespaces"].append({"type": "user"}), c["linux"].update(
        uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}],
        gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])))
    spec.load_config(bundle(tmp_path, cfg))


def test_rootfs_missing_or_not_a_directory(tmp_path: Path) -> None:
    cfg = edit(lambda c: c["root"].update(path="nonexistent"))
    with pytest.raises(ConfigError) as e:
        spec.load_config(bundle(tmp_path, cfg))
    assert str(e.value) == (f"config.json: root.path: rootfs {tmp_path}/nonexistent: "
                            "no such file or directory")
    (tmp_path / "file").write_text("")
    cfg = edit(lambda c: c["root"].update(path="file"))
    with pytest.raises(ConfigError) as e:
        spec.load_config(bundle(tmp_path, cfg))
    assert str(e.value) == f"config.json: root.path: rootfs {tmp_path}/file is not a directory"
    # an absolute root.path is used as is
    cfg = edit(lambda c: c["root"].update(path=str(tmp_path / "rootfs")))
    spec.load_config(bundle(tmp_path / "rootfs", cfg))


PROCESS = BASE["process"]


@pytest.mark.parametrize(("proc", "line"), [
    ({**PROCESS, "args": []}, "args: [] should be non-empty"),
    ({k: v for k, v in PROCESS.items() if k != "args"}, "'args' is a required property"),
    ({**PROCESS, "env": "A=b"}, "env: 'A=b' is not of type 'array'"),
    ({**PROCESS, "user": {"uid": -1, "gid": 0}}, "user.uid: -1 is less than the minimum of 0"),
    ({**PROCESS, "capabilities": {"bounding": "CAP_KILL"}},
     "capabilities.bounding: 'CAP_KILL' is not of type 'array'"),
    ([PROCESS], "[...] is not of type 'object'"),
])
def test_process_violation_is_one_exact_line(proc: Any, line: str) -> None:
    with pytest.raises(ConfigError) as e:
        spec.validate_process(proc)
    assert str(e.value) == f"process.json: {line}"


def test_valid_process() -> None:
    spec.validate_process(PROCESS)
    spec.validate_process({"cwd": "/", "args": ["true"]})


@pytest.mark.parametrize(("parts", "dotted"), [
    ([], ""), (["process", "args", 0], "process.args[0]"),
    (["linux", "sysctl", "net.ipv4.ip_forward"], "linux.sysctl['net.ipv4.ip_forward']"),
    (["linux", "netDevices", "eth_0"], "linux.netDevices.eth_0"), ([3, "a"], "[3].a"),
])
def test_json_path(parts: list[str | int], dotted: str) -> None:
    assert json_path(parts) == dotted


def test_load_stays_light(tmp_path: Path) -> None:
    """A valid config loads without jsonschema (~90 ms) or re (~5 ms)."""
    code = ("import sys, pyrunc.spec as s; s.load_config(sys.argv[1]); "
            "print(' '.join(m for m in sys.modules if m.split('.')[0] in "
            "('jsonschema', 're', 'json')))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code, bundle(tmp_path)], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == []
