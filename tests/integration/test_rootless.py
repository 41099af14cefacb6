"""Rootless: an unprivileged user runs `pyrunc spec --rootless` then
`pyrunc run`, with state under $XDG_RUNTIME_DIR/pyrunc."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Runtime, _ensure_rootfs


@pytest.fixture
def user() -> Iterator[pwd.struct_passwd]:
    name = f"pyrl{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", name], check=True)


def test_rootless_spec_then_run(rt: Runtime, user: pwd.struct_passwd, tmp_path: Path) -> None:
    if rt.cmd[0].startswith("/root/") or not os.access(rt.cmd[0], os.X_OK):
        pytest.skip("pyrunc's interpreter is not reachable by other users here")
    bundle = tmp_path / "rl"
    bundle.mkdir()
    shutil.copytree(_ensure_rootfs(), bundle / "rootfs", symlinks=True)
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    for p in (bundle, *(q for q in bundle.rglob("*")), xdg):
        os.lchown(p, user.pw_uid, user.pw_gid)
    for d in bundle.parents:  # let the user reach its bundle
        if d == Path("/tmp"):
            break
        d.chmod(d.stat().st_mode | 0o011)
    env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(xdg), "HOME": str(bundle)}

    def as_user(*args: str) -> subprocess.CompletedProcess[str]:
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return subprocess.run([runuser, "-u", user.pw_name, "--", *rt.cmd, *args],
                              cwd=bundle, env=env, capture_output=True, text=True, timeout=60)

    p = as_user("spec", "--rootless")
    assert p.returncode == 0, p.stderr
    cfg = json.loads((bundle / "config.json").read_text())
    assert cfg["linux"]["uidMappings"][0]["hostID"] == user.pw_uid
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map; hostname"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    p = as_user("run", "rl1")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(user.pw_uid), "1"]
    assert not (xdg / "pyrunc" / "rl1").exists()
    p = as_user("run", "-d", "rl2")
    assert p.returncode == 0, p.stderr
    assert (xdg / "pyrunc" / "rl2" / "state.json").exists()
    assert as_user("delete", "-f", "rl2").returncode == 0
