"""Bundles for the benchmarks: one busybox rootfs, several config variants."""

import json
import platform
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BASE_CONFIG = REPO / "bundles" / "busybox" / "config.json"
BUILD_ROOTFS = REPO / "bundles" / "build-rootfs.sh"
# podman's default seccomp profile (package containers-common), the one
# real containers run under; the "seccomp" benchmarks are n/a without it.
PODMAN_SECCOMP = Path("/usr/share/containers/seccomp.json")
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def oci_seccomp(profile: dict[str, Any], caps: set[str]) -> dict[str, Any]:
    """The profile as podman hands it to the runtime: the rules that apply
    to this architecture and these capabilities, in config.json's format."""
    arch = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64"}.get(_ARCH, "")
    arches = [a for m in profile.get("archMap", []) if m["architecture"] == arch
              for a in (m["architecture"], *m.get("subArchitectures", []))]
    rules = []
    for rule in profile["syscalls"]:
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if (inc.get("arches") and _ARCH not in inc["arches"]) or _ARCH in exc.get("arches", []):
            continue
        if not set(inc.get("caps", [])) <= caps or caps & set(exc.get("caps", [])):
            continue
        rules.append({k: rule[k] for k in ("names", "action", "args", "errnoRet")
                      if rule.get(k) not in (None, [])})
    out = {"defaultAction": profile["defaultAction"], "architectures": arches,
           "syscalls": rules}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    return out

VARIANTS: dict[str, list[str]] = {
    "true": ["/bin/true"],
    "sleep": ["/bin/sleep", "3600"],  # long-running target for state/kill/exec
    "exit3": ["/bin/sh", "-c", "exit 3"],  # checks that `run` relays the exit status
}


def build(workdir: Path) -> dict[str, Path]:
    """Build the rootfs once under workdir and one bundle dir per variant."""
    done = subprocess.run(
        [str(BUILD_ROOTFS), str(workdir)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{BUILD_ROOTFS}: {done.stderr.strip() or done.returncode}")
    rootfs = workdir / "rootfs"
    base = json.loads(BASE_CONFIG.read_text())
    # runc 1.1.5 and crun 1.8.1 implement spec 1.0.2; crun rejects a config that
    # says 1.3.0 ("unknown version specified") before reaching anything else.
    base["ociVersion"] = "1.0.2"
    # One read-only rootfs shared by every container: nothing writes to it.
    base["root"] = {"path": str(rootfs), "readonly": True}
    configs = {}
    for name, args in VARIANTS.items():
        config = json.loads(json.dumps(base))
        config["process"]["args"] = args
        configs[name] = config
    if PODMAN_SECCOMP.exists():
        config = json.loads(json.dumps(configs["true"]))
        caps = set(config["process"]["capabilities"]["bounding"])
        profile = json.loads(PODMAN_SECCOMP.read_text())
        config["linux"]["seccomp"] = oci_seccomp(profile, caps)
        configs["seccomp"] = config
    bundles = {}
    for name, config in configs.items():
        bdir = workdir / name
        bdir.mkdir()
        (bdir / "config.json").write_text(json.dumps(config, indent=2))
        bundles[name] = bdir
    return bundles
