"""config.json: loading, validation and the `spec` template.

The create path validates with hand-written checks of the fields pyrunc
relies on (fast: no jsonschema import). The project's JSON schema,
schema/config-schema.json, is the full contract; tests prove that whatever
these checks refuse, the schema refuses too, on the spec's corpus and on
mutated configs (tests/unit/test_spec_schema.py)."""

from __future__ import annotations

import os

from pyrunc.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAMESPACES = ("cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts")


def load_config(bundle: str) -> dict[str, Any]:
    from pyrunc import fastjson

    path = os.path.join(bundle, "config.json")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"config.json: no such file in bundle {bundle}") from None
    except OSError as e:
        raise ConfigError(f"config.json: cannot read: {e.strerror}") from None
    try:
        cfg = fastjson.loads(text)
    except ValueError as e:
        raise ConfigError(f"config.json: invalid JSON: {e}") from None
    validate_config(cfg)
    check_semantics(cfg, bundle)
    return cfg


def _fail(source: str, path: str, msg: str) -> ConfigError:
    return ConfigError(f"{source}: {path}: {msg}" if path else f"{source}: {msg}")


def _type(source: str, path: str, value: Any, kind: type | tuple[type, ...], name: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _fail(source, path, f"{value!r} is not of type '{name}'")


def validate_process(p: Any, source: str = "process.json", base: str = "") -> None:
    pre = f"{base}." if base else ""
    _type(source, base or "process", p, dict, "object")
    args = p.get("args")
    if args is None:
        raise _fail(source, f"{pre}args".lstrip("."), "'args' is a required property")
    _type(source, f"{pre}args", args, list, "array")
    if not args:
        raise _fail(source, f"{pre}args", "[] should be non-empty")
    for i, a in enumerate(args):
        _type(source, f"{pre}args[{i}]", a, str, "string")
    if "cwd" not in p:
        raise _fail(source, base or "process", "'cwd' is a required property")
    _type(source, f"{pre}cwd", p["cwd"], str, "string")
    for i, e in enumerate(p.get("env", [])):
        _type(source, f"{pre}env[{i}]", e, str, "string")
    user = p.get("user", {})
    _type(source, f"{pre}user", user, dict, "object")
    for k in ("uid", "gid", "umask"):
        if k in user:
            _type(source, f"{pre}user.{k}", user[k], int, "integer")
    for i, g in enumerate(user.get("additionalGids", [])):
        _type(source, f"{pre}user.additionalGids[{i}]", g, int, "integer")
    if "terminal" in p:
        _type(source, f"{pre}terminal", p["terminal"], bool, "boolean")
    for i, rl in enumerate(p.get("rlimits", [])):
        for k in ("type", "soft", "hard"):
            if k not in rl:
                raise _fail(source, f"{pre}rlimits[{i}]", f"'{k}' is a required property")
        _type(source, f"{pre}rlimits[{i}].type", rl["type"], str, "string")
    for k, caps in (p.get("capabilities") or {}).items():
        _type(source, f"{pre}capabilities.{k}", caps, list, "array")


def validate_config(cfg: Any, source: str = "config.json") -> None:
    _type(source, "", cfg, dict, "object")
    if "ociVersion" not in cfg:
        raise _fail(source, "", "'ociVersion' is a required property")
    _type(source, "ociVersion", cfg["ociVersion"], str, "string")
    root = cfg.get("root")
    if root is None:
        raise _fail(source, "", "'root' is a required property")
    _type(source, "root", root, dict, "object")
    if "path" not in root:
        raise _fail(source, "root", "'path' is a required property")
    _type(source, "root.path", root["path"], str, "string")
    if "process" in cfg:  # optional in the spec; check_semantics requires it
        validate_process(cfg["process"], source, "process")
    for i, m in enumerate(cfg.get("mounts", [])):
        if "destination" not in m:
            raise _fail(source, f"mounts[{i}]", "'destination' is a required property")
        _type(source, f"mounts[{i}].destination", m["destination"], str, "string")
    linux = cfg.get("linux", {})
    _type(source, "linux", linux, dict, "object")
    for i, ns in enumerate(linux.get("namespaces", [])):
        t = ns.get("type")
        if t not in NAMESPACES:
            raise _fail(source, f"linux.namespaces[{i}].type",
                        f"{t!r} is not one of {list(NAMESPACES)}")
    for key in ("uidMappings", "gidMappings"):
        for i, mp in enumerate(linux.get(key, [])):
            for k in ("containerID", "hostID", "size"):
                if k not in mp:
                    raise _fail(source, f"linux.{key}[{i}]", f"'{k}' is a required property")
                _type(source, f"linux.{key}[{i}].{k}", mp[k], int, "integer")


def check_semantics(cfg: dict[str, Any], bundle: str) -> None:
    if "process" not in cfg:
        raise ConfigError("config.json: 'process' is a required property (the spec makes it "
                          "optional, but a container cannot be created without one)")
    rootfs = os.path.join(bundle, cfg["root"]["path"])
    if not os.path.isdir(rootfs):
        raise ConfigError(f"config.json: root.path: rootfs {rootfs!r} does not exist or is not "
                          "a directory")
    seen: set[str] = set()
    linux = cfg.get("linux", {})
    for ns in linux.get("namespaces", []):
        if ns["type"] in seen:
            raise ConfigError(f"config.json: linux.namespaces: duplicate namespace type "
                              f"{ns['type']!r}")
        seen.add(ns["type"])
    if not cfg["process"]["cwd"].startswith("/"):
        raise ConfigError(f"config.json: process.cwd: {cfg['process']['cwd']!r} is not an "
                          "absolute path")
    if (linux.get("uidMappings") or linux.get("gidMappings")) and "user" not in seen:
        raise ConfigError("config.json: linux.uidMappings: user namespace mappings need a user "
                          "namespace in linux.namespaces")
    if cfg.get("hostname") and "uts" not in seen:
        raise ConfigError("config.json: hostname: unable to set hostname without a private UTS "
                          "namespace")


_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def template(rootless: bool = False) -> dict[str, Any]:
    """runc's `spec` output (ociVersion 1.3.0); --rootless like runc's."""
    devpts = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    if not rootless:
        devpts.append("gid=5")
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": devpts},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "none", "source": "/sys",
         "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]} if rootless else
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]
    linux: dict[str, Any] = {}
    if rootless:
        linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
        namespaces = ["pid", "ipc", "uts", "mount", "user"]
    else:
        linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
        namespaces = ["pid", "network", "ipc", "uts", "mount"]
    linux["namespaces"] = [{"type": t} for t in namespaces]
    linux["maskedPaths"] = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"]
    linux["readonlyPaths"] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"]
    return {
        "ociVersion": "1.3.0",
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(_CAPS) for k in
                             ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc" if not rootless else "runc",
        "mounts": mounts,
        "linux": linux,
    }
