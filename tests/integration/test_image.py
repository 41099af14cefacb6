"""pyrunc.image: the commands on every container's path take pyrunc's
modules from the images scripts/setup.sh builds, and work the same without
them."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import Runtime
from tests.integration.test_lifecycle import imported, wait_status

# create's and exec's early child, forked before the command's image loads;
# pyrunc, pyrunc.image and pyrunc.__main__ come from the launcher's image
BOOT = {"pyrunc.early"}


def _ours(mods: set[str]) -> set[str]:
    """pyrunc's modules, and what image_build.ALONG brings along."""
    return {m for m in mods if m == "pyrunc" or m.startswith("pyrunc.") or m == "__future__"}


def test_container_path_commands_import_pyrunc_only_from_images(rt: Runtime,
                                                                busybox: Path) -> None:
    """-X importtime lists what the import system loads, not what an image
    does: besides pyrunc.early, nothing of pyrunc's, in the commands and
    their early children. A module new on these paths belongs in
    pyrunc.image_build.PROFILES (left out, it costs ~50 us a call)."""
    cid = rt.new_id()
    for args in (["create", "-b", str(busybox), cid], ["state", cid], ["kill", cid, "CONT"],
                 ["exec", cid, "true"], ["start", cid]):
        assert _ours(imported(rt, *args)) <= BOOT, args
    wait_status(rt, cid, "stopped")
    assert _ours(imported(rt, "delete", cid)) <= BOOT
    assert _ours(imported(rt, "run", "-b", str(busybox), rt.new_id())) <= BOOT
    assert not os.listdir(rt.root)


def test_lifecycle_without_images(rt: Runtime, busybox: Path) -> None:
    """PYRUNC_NO_IMAGES turns them off: every module imports as usual, and
    the lifecycle is the same (an image only ever saves time)."""
    env = {**os.environ, "PYRUNC_NO_IMAGES": "1"}
    cid = rt.new_id()
    mods = imported(rt, "create", "-b", str(busybox), cid, env=env)
    assert {"pyrunc.launch", "pyrunc.cgroups", "pyrunc.init.main", "pyrunc.init.rootfs"} <= mods
    assert {"pyrunc.clicore", "pyrunc.state"} <= imported(rt, "state", cid, env=env)
    p = rt("exec", cid, "echo", "hi", env=env)
    assert (p.returncode, p.stdout) == (0, "hi\n"), p.stderr
    rt("kill", cid, "CONT", check=True, env=env)
    rt("start", cid, check=True, env=env)
    assert wait_status(rt, cid, "stopped")["status"] == "stopped"
    rt("delete", cid, check=True, env=env)
    p = rt("run", "-b", str(busybox), rt.new_id(), env=env)
    assert p.returncode == 0 and "hello from pyrunc" in p.stdout, p.stderr
    assert not os.listdir(rt.root)
