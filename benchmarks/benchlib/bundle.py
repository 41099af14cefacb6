"""Bundles for the benchmarks: one busybox rootfs, several config variants."""

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASE_CONFIG = REPO / "bundles" / "busybox" / "config.json"
BUILD_ROOTFS = REPO / "bundles" / "build-rootfs.sh"

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
    bundles = {}
    for name, args in VARIANTS.items():
        bdir = workdir / name
        bdir.mkdir()
        config = json.loads(json.dumps(base))
        config["process"]["args"] = args
        (bdir / "config.json").write_text(json.dumps(config, indent=2))
        bundles[name] = bdir
    return bundles
