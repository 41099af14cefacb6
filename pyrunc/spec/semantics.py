"""Checks of a schema-valid config.json that a schema cannot express: the
bundle on disk and rules tying fields together. Each failure is one line
naming the field. (args[0] is looked up inside the rootfs by create.)"""

from __future__ import annotations

import _stat as stat  # stat.py only re-exports it
import posix  # not os: see pyrunc.posixfs

from pyrunc import posixfs
from pyrunc.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_SRC = "config.json"


def _fail(path: str, message: str) -> ConfigError:
    return ConfigError(f"{_SRC}: {path}: {message}")


def _rootfs(cfg: dict[str, Any], bundle: str) -> None:
    rootfs = posixfs.join(bundle, cfg["root"]["path"])  # an absolute root.path stays as is
    try:
        st = posix.stat(rootfs)
    except OSError as e:
        raise _fail("root.path", f"rootfs {rootfs}: {(e.strerror or str(e)).lower()}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise _fail("root.path", f"rootfs {rootfs} is not a directory")


def _process(cfg: dict[str, Any]) -> None:
    proc = cfg.get("process")
    if proc is None:  # optional in the spec until start; create needs it (so does runc)
        raise ConfigError(f"{_SRC}: 'process' is a required property (the spec makes it "
                          "optional, but a container cannot be created without one)")
    if not proc["cwd"].startswith("/"):
        raise _fail("process.cwd", f"{proc['cwd']!r} is not an absolute path")


def _namespaces(cfg: dict[str, Any]) -> None:
    linux = cfg.get("linux", {})
    kinds: dict[str, dict[str, Any]] = {}
    for i, ns in enumerate(linux.get("namespaces", [])):
        if ns["type"] in kinds:
            raise _fail("linux.namespaces", f"duplicate namespace type {ns['type']!r}")
        kinds[ns["type"]] = ns
        if "path" in ns and not ns["path"].startswith("/"):
            raise _fail(f"linux.namespaces[{i}].path", f"{ns['path']!r} is not an absolute path")
    mappings = [k for k in ("uidMappings", "gidMappings") if k in linux]
    user = kinds.get("user")
    if user is None and mappings:
        raise _fail(f"linux.{mappings[0]}", "user namespace mappings specified, but no user "
                    "namespace in linux.namespaces")
    if user is not None and "path" not in user and not mappings:
        raise _fail("linux.namespaces", "user namespace enabled, but no namespace path to join "
                    "nor linux.uidMappings/gidMappings to apply")
    for field in ("hostname", "domainname"):
        if cfg.get(field) and "uts" not in kinds:
            raise _fail(field, f"unable to set {field} without a private UTS namespace")
        if len(cfg.get(field, "").encode()) > _HOST_NAME_MAX:
            raise _fail(field, f"longer than the kernel's limit of {_HOST_NAME_MAX} bytes")


_HOST_NAME_MAX = 64  # also the limit of domainname (__NEW_UTS_LEN)


def nul_bytes(node: Any, source: str = _SRC, path: str = "") -> None:
    """No string can carry a NUL to the kernel: say which field has one."""
    where = f"{source}: {path or '(top)'}"
    if isinstance(node, str):
        if "\0" in node:
            raise ConfigError(f"{where}: contains a NUL byte")
    elif isinstance(node, dict):
        for key, value in node.items():
            if "\0" in key:
                raise ConfigError(f"{where}: key {key!r} contains a NUL byte")
            nul_bytes(value, source, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            nul_bytes(value, source, f"{path}[{i}]")


def _semver_major(v: str) -> int | None:
    """The major version of a SemVer 2.0.0 string, None if it is not one.
    (By hand: the `re` module costs a few ms on every create.)"""
    core, _, build = v.partition("+")
    core, dash, pre = core.partition("-")
    ident = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-"
    for tail, present in ((pre, dash), (build, "+" in v)):
        if present and not all(p and all(c in ident for c in p) for p in tail.split(".")):
            return None
    nums = core.split(".")
    if len(nums) != 3 or not all(n.isdigit() and n.isascii() and (n == "0" or n[0] != "0")
                                 for n in nums):
        return None
    return int(nums[0])


def _oci_version(cfg: dict[str, Any]) -> None:
    """SemVer, as the spec requires (runc does not check; crun refuses all but
    the versions it knows). 1.x of any minor is accepted: minor versions only add."""
    v = cfg["ociVersion"]
    major = _semver_major(v)
    if major is None:
        raise _fail("ociVersion", f"{v!r} is not a SemVer 2.0.0 version")
    if major != 1:
        raise _fail("ociVersion", f"{v!r}: this runtime implements version 1 of the OCI "
                    "runtime spec (up to 1.3.0)")


def check_semantics(cfg: dict[str, Any], bundle: str) -> None:
    """Raise ConfigError for the first rule `cfg` (schema-valid) breaks."""
    nul_bytes(cfg)
    _oci_version(cfg)
    _process(cfg)
    _rootfs(cfg, bundle)
    _namespaces(cfg)
