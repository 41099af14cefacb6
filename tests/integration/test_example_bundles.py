"""The example bundles in bundles/ run and show what they are for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import REPO, Runtime, _ensure_rootfs


def copy_bundle(rt: Runtime, name: str) -> Path:
    b = rt.tmp / name
    b.mkdir()
    shutil.copytree(_ensure_rootfs(), b / "rootfs", symlinks=True)
    shutil.copy(REPO / "bundles" / name / "config.json", b / "config.json")
    return b


def test_hardened_bundle(rt: Runtime) -> None:
    p = rt("run", "-b", str(copy_bundle(rt, "hardened")), rt.new_id())
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.startswith("uid=1000 gid=1000 groups=100")
    assert "CapEff:\t0000000000000000" in out
    assert "NoNewPrivs:\t1" in out and "Seccomp:\t2" in out
    assert "rootfs read-only" in out and "unshare denied" in out
    assert out.rstrip().endswith("ok")


def test_hooks_bundle(rt: Runtime) -> None:
    b = copy_bundle(rt, "hooks")
    log = rt.tmp / "hooks.log"
    cfg = json.loads((b / "config.json").read_text())
    for hooks in cfg["hooks"].values():
        for h in hooks:
            h["args"][-1] = h["args"][-1].replace("/tmp/pyrunc-hooks-example.log", str(log))
    (b / "config.json").write_text(json.dumps(cfg))
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "container ran as hooks"
    kinds = [line.split(":")[0] for line in log.read_text().splitlines()]
    assert kinds == ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]
    state = json.loads(log.read_text().splitlines()[0].split(": ", 1)[1])
    assert state["annotations"] == {"org.example.purpose": "shows every hook"}
