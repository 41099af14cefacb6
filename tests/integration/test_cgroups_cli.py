"""The cgroup commands through the CLI on a running container: pause/resume,
ps, update, events, kill --all, delete -f with several processes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.conftest import Runtime, error_lines


def start(rt: Runtime, script: str = "sleep 600", **overrides: object) -> tuple[str, int]:
    b = rt.bundle(**{"process.args": ["sh", "-c", script], **overrides})
    cid = rt.new_id()
    rt("run", "-d", "-b", str(b), cid, check=True)
    return cid, rt.state(cid)["pid"]


def cgroup_dir(pid: int, controller: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return Path("/sys/fs/cgroup") / controller / path.lstrip("/")
    raise AssertionError(f"no {controller} cgroup for {pid}")


def proc_state(pid: int) -> str:
    data = Path(f"/proc/{pid}/stat").read_text()
    return data[data.rindex(")") + 2]


def test_pause_and_resume(rt: Runtime) -> None:
    cid, pid = start(rt)
    assert rt("pause", cid).returncode == 0
    assert rt.state(cid)["status"] == "paused"
    assert proc_state(pid) == "D"  # frozen
    p = rt("exec", cid, "true")
    assert p.returncode != 0
    p = rt("pause", cid)
    assert p.returncode == 1
    assert rt("resume", cid).returncode == 0
    assert rt.state(cid)["status"] == "running"
    assert proc_state(pid) == "S"
    p = rt("resume", cid)
    assert p.returncode == 1 and "container not paused" in error_lines(p.stderr)[0]
    rt("delete", "-f", cid, check=True)


def test_delete_force_of_a_paused_container(rt: Runtime) -> None:
    cid, pid = start(rt)
    rt("pause", cid, check=True)
    assert rt("delete", "-f", cid).returncode == 0
    assert rt("state", cid).returncode == 1


def test_ps(rt: Runtime) -> None:
    cid, pid = start(rt, "sleep 600 & sleep 601 & wait")
    for _ in range(50):
        pids = json.loads(rt("ps", "-f", "json", cid).stdout)
        if len(pids) == 3:
            break
        time.sleep(0.1)
    assert pid in pids and len(pids) == 3
    table = rt("ps", cid).stdout.splitlines()
    assert "PID" in table[0].split()
    assert sum(line.endswith(("sleep 600", "sleep 601")) for line in table) == 2
    table = rt("ps", cid, "-o", "pid,comm").stdout.splitlines()
    assert table[0].split() == ["PID", "COMMAND"] and len(table) == 4
    rt("delete", "-f", cid, check=True)


def test_update_flags_and_resources_json(rt: Runtime) -> None:
    cid, pid = start(rt)
    mem = cgroup_dir(pid, "memory")
    assert rt("update", "--memory", "64m", "--pids-limit", "50", cid).returncode == 0
    assert (mem / "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
    assert (cgroup_dir(pid, "pids") / "pids.max").read_text().strip() == "50"
    p = rt("update", "-r", "-", cid, input=json.dumps({"pids": {"limit": 70},
                                                       "cpu": {"shares": 512}}))
    assert p.returncode == 0, p.stderr
    assert (cgroup_dir(pid, "pids") / "pids.max").read_text().strip() == "70"
    assert (cgroup_dir(pid, "cpu") / "cpu.shares").read_text().strip() == "512"
    rt("delete", "-f", cid, check=True)


def test_events_stats(rt: Runtime) -> None:
    cid, pid = start(rt)
    p = rt("events", "--stats", cid)
    assert p.returncode == 0, p.stderr
    ev = json.loads(p.stdout)
    assert ev["type"] == "stats" and ev["id"] == cid
    assert ev["data"]["pids"]["current"] >= 1
    assert ev["data"]["memory"]["usage"]["usage"] > 0
    assert ev["data"]["cpu"]["usage"]["total"] > 0
    rt("delete", "-f", cid, check=True)


def test_kill_all_and_delete_force_with_several_processes(rt: Runtime) -> None:
    cid, pid = start(rt, "trap '' TERM; sleep 600 & sleep 601 & wait")
    time.sleep(0.3)
    pids = json.loads(rt("ps", "-f", "json", cid).stdout)
    assert rt("kill", "--all", cid, "KILL").returncode == 0
    for _ in range(100):
        if not any(os.path.exists(f"/proc/{p}/cmdline") and
                   Path(f"/proc/{p}/cmdline").read_bytes() for p in pids):
            break
        time.sleep(0.05)
    assert rt.state(cid)["status"] == "stopped"
    rt("delete", cid, check=True)
    cid, pid = start(rt, "sleep 600 & sleep 601 & wait")
    time.sleep(0.3)
    pids = json.loads(rt("ps", "-f", "json", cid).stdout)
    assert rt("delete", "-f", cid).returncode == 0
    time.sleep(0.2)
    assert not any(Path(f"/proc/{p}/cmdline").exists() and
                   Path(f"/proc/{p}/cmdline").read_bytes() for p in pids)


def test_resources_applied_at_create(rt: Runtime) -> None:
    cid, pid = start(rt, **{"linux.resources": {
        "devices": [{"allow": False, "access": "rwm"}],
        "memory": {"limit": 48 << 20}, "pids": {"limit": 33},
        "cpu": {"shares": 256, "quota": 20000, "period": 100000}}})
    assert (cgroup_dir(pid, "memory") / "memory.limit_in_bytes").read_text().strip() == \
        str(48 << 20)
    assert (cgroup_dir(pid, "pids") / "pids.max").read_text().strip() == "33"
    cpu = cgroup_dir(pid, "cpu")
    assert (cpu / "cpu.shares").read_text().strip() == "256"
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "20000"
    rt("delete", "-f", cid, check=True)


def test_denied_device_cannot_be_opened(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["sh", "-c",
                                      "cat /dev/mynull && echo allowed; "
                                      "cat /dev/mydenied 2>&1 || echo denied"]})
    cfg = rt.config(b)
    cfg["linux"]["devices"] = [
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3},
        {"path": "/dev/mydenied", "type": "c", "major": 240, "minor": 0}]
    cfg["linux"]["resources"]["devices"] = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    rt.write_config(b, cfg)
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    assert "allowed" in p.stdout
    # allowed, 240:0 would say "No such device or address"; denied, it is EPERM
    assert "Operation not permitted" in p.stdout and "denied" in p.stdout


def test_zero_values_mean_unset(rt: Runtime) -> None:
    # docker always sends these zeros; like runc they leave the kernel defaults
    cid, pid = start(rt, **{"linux.resources": {
        "devices": [{"allow": False, "access": "rwm"}],
        "memory": {"limit": 0, "reservation": 0, "swap": 0},
        "cpu": {"shares": 0, "quota": 0, "period": 0}, "blockIO": {"weight": 0},
        "pids": {"limit": 0}}})
    assert (cgroup_dir(pid, "cpu") / "cpu.shares").read_text().strip() == "1024"
    assert (cgroup_dir(pid, "pids") / "pids.max").read_text().strip() == "max"
    p = rt("update", "-r", "-", cid, input=json.dumps(
        {"memory": {"limit": 64 << 20, "reservation": 0, "swap": 128 << 20, "kernel": 0},
         "cpu": {"shares": 0, "quota": 50000, "period": 0}, "blockIO": {"weight": 0}}))
    assert p.returncode == 0, p.stderr
    mem = cgroup_dir(pid, "memory")
    assert (mem / "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
    assert (mem / "memory.memsw.limit_in_bytes").read_text().strip() == str(128 << 20)
    assert (cgroup_dir(pid, "cpu") / "cpu.cfs_quota_us").read_text().strip() == "50000"
    rt("delete", "-f", cid, check=True)
