"""Failures mid-create leave nothing behind; a pyrunc killed mid-way is
cleaned up by `delete -f`; behaviour side by side with Debian's runc."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Runtime, error_lines


def _wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.05)


def test_kill_9_mid_create_then_delete_force(rt: Runtime, tmp_path: Path) -> None:
    marker = tmp_path / "hook.pid"
    b = rt.bundle(**{"process.args": ["sleep", "60"]})
    cfg = rt.config(b)
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": [
        "sh", "-c", f"echo $$ > {marker}; exec sleep 60"]}]}
    rt.write_config(b, cfg)
    cid = rt.new_id()
    proc = subprocess.Popen([*rt.cmd, "--root", str(rt.root), "create", "-b", str(b), cid],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(marker)
    hook_pid = int(marker.read_text())
    st = rt.state(cid)
    assert st["status"] == "creating"
    # the fifo has its final name only once create is done (pyrunc.state)
    assert sorted(os.listdir(rt.root / cid)) == ["exec.fifo.creating", "state.json"]
    init_pid = st["pid"]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    os.kill(hook_pid, signal.SIGKILL)  # the hook was pyrunc's child, now orphaned
    assert rt.state(cid)["status"] == "stopped"
    assert rt("delete", "-f", cid).returncode == 0
    assert not os.path.exists(f"/proc/{init_pid}/cmdline") or \
        Path(f"/proc/{init_pid}/cmdline").read_text() == ""


def test_failing_hook_rolls_back(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["sleep", "60"]})
    cfg = rt.config(b)
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    rt.write_config(b, cfg)
    cid = rt.new_id()
    p = rt("create", "-b", str(b), cid)
    assert p.returncode == 1
    assert error_lines(p.stderr) == ["createRuntime hook #0 (/bin/false): exit status 1"]
    assert rt("state", cid).returncode == 1


RUNC = shutil.which("runc") or "/usr/sbin/runc"


@pytest.mark.skipif(not os.path.exists(RUNC), reason="Debian's runc is not installed")
def test_lifecycle_side_by_side_with_runc(rt: Runtime, tmp_path: Path) -> None:
    """The same bundle and verbs through runc and pyrunc: same statuses, keys,
    exit codes, and the error texts clients match on."""
    runc = Runtime(tmp_path / "runc-side", [RUNC])
    runc.tmp.mkdir()
    b = rt.bundle(**{"process.args": ["sleep", "60"], "ociVersion": "1.0.2"})
    results = {}
    for name, r in (("pyrunc", rt), ("runc", runc)):
        cid = rt.new_id()
        steps = []
        p = r("create", "-b", str(b), cid)
        steps.append(("create", p.returncode, ""))
        st = json.loads(r("state", cid).stdout)
        steps.append(("state", st["status"], sorted(st)))
        p = r("start", cid)
        steps.append(("start", p.returncode, ""))
        p = r("start", cid)
        steps.append(("start-again", p.returncode, error_lines(p.stderr)[-1]))
        p = r("delete", cid)
        steps.append(("delete-running", p.returncode, ""))
        r("kill", cid, "KILL")
        for _ in range(100):
            if json.loads(r("state", cid).stdout)["status"] == "stopped":
                break
            time.sleep(0.05)
        p = r("kill", cid)
        steps.append(("kill-stopped", p.returncode, error_lines(p.stderr)[-1]))
        p = r("delete", cid)
        steps.append(("delete", p.returncode, ""))
        p = r("state", cid)
        steps.append(("state-gone", p.returncode, error_lines(p.stderr)[-1]))
        results[name] = steps
    runc.cleanup()
    assert results["pyrunc"] == results["runc"]


def test_delete_kills_what_outlived_init(rt: Runtime) -> None:
    """Without its own pid namespace a container's processes can outlive its
    init. `delete` of the stopped container kills them and removes its
    cgroups (the leak check after the test would see either left over)."""
    b = rt.bundle(**{"process.args": ["sh", "-c", "sleep 600 & exit 0"]})
    cfg = rt.config(b)
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"]
                                  if ns["type"] != "pid"]
    rt.write_config(b, cfg)
    cid = rt.new_id()
    rt("run", "-d", "-b", str(b), cid, check=True)
    deadline = time.monotonic() + 10
    while rt.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline, "init never exited"
        time.sleep(0.02)
    left = [int(p) for p in os.listdir("/proc") if p.isdigit() and _in_cgroup_of(int(p), cid)]
    assert left, "the background sleep should still be in the container's cgroup"
    p = rt("delete", cid)
    assert p.returncode == 0, p.stderr
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in left):
        assert time.monotonic() < deadline, f"{left} still alive after delete"
        time.sleep(0.02)


def _in_cgroup_of(pid: int, cid: str) -> bool:
    try:
        return f"/{cid}\n" in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
