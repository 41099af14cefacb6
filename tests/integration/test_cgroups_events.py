"""`pyrunc events`: stats in runc's format with real numbers, the interval
stream, and an OOM notification when the container hits its memory limit."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Runtime, error_lines
from tests.integration.test_cgroups_cli import cgroup_dir, start

MiB = 1 << 20


def test_stats_numbers(rt: Runtime) -> None:
    cid, pid = start(rt, "sleep 600 & sleep 601 & wait", **{"linux.resources": {
        "memory": {"limit": 64 * MiB}, "pids": {"limit": 40}}})
    time.sleep(0.2)
    p = rt("events", "--stats", cid)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == 1  # one compact JSON line
    ev = json.loads(p.stdout)
    assert list(ev) == ["type", "id", "data"] and ev["type"] == "stats" and ev["id"] == cid
    d = ev["data"]
    assert list(d) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                       "network_interfaces"]
    assert d["pids"] == {"current": 3, "limit": 40}
    assert d["memory"]["usage"]["limit"] == 64 * MiB
    assert 0 < d["memory"]["usage"]["usage"] <= d["memory"]["usage"]["max"]
    assert d["memory"]["raw"]  # memory.stat
    assert d["cpu"]["usage"]["total"] > 0
    if "percpu" in d["cpu"]["usage"]:  # v1's cpuacct
        assert sum(d["cpu"]["usage"]["percpu"]) == d["cpu"]["usage"]["total"]
    rt("delete", "-f", cid, check=True)


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_stats_have_runc_shape(rt: Runtime) -> None:
    """Same bundle under runc and pyrunc: the same keys, in the same order."""
    b = rt.bundle(**{"process.args": ["sleep", "600"],
                     "linux.resources": {"memory": {"limit": 64 * MiB}}})
    runc_root = str(rt.tmp / "runc-state")
    rid = rt.new_id() + "-runc"
    subprocess.run(["runc", "--root", runc_root, "run", "-d", "-b", str(b), rid], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        theirs = json.loads(subprocess.run(["runc", "--root", runc_root, "events", "--stats",
                                            rid], capture_output=True, text=True,
                                           check=True).stdout)
    finally:
        subprocess.run(["runc", "--root", runc_root, "delete", "-f", rid], check=True)
    cid = rt.new_id()
    rt("run", "-d", "-b", str(b), cid, check=True)
    ours = json.loads(rt("events", "--stats", cid, check=True).stdout)
    rt("delete", "-f", cid, check=True)

    mine, runcs = ours["data"], theirs["data"]
    assert list(mine) == list(runcs)
    for a, b in ((mine, runcs), (mine["memory"], runcs["memory"]),
                 (mine["memory"]["usage"], runcs["memory"]["usage"]),
                 (mine["cpuset"], runcs["cpuset"]), (mine["pids"], runcs["pids"])):
        assert list(a) == list(b)
    assert sorted(mine["memory"]["raw"]) == sorted(runcs["memory"]["raw"])
    assert mine["intel_rdt"] == runcs["intel_rdt"] == {}
    assert mine["network_interfaces"] is runcs["network_interfaces"] is None


def test_events_stream_and_oom(rt: Runtime) -> None:
    # The process waits for /go, then eats memory past the limit (no swap).
    script = "while [ ! -e /go ]; do sleep 0.05; done; tail /dev/zero; sleep 600"
    cid, pid = start(rt, script, **{"linux.resources": {
        "memory": {"limit": 16 * MiB, "swap": 16 * MiB}}})
    ev = subprocess.Popen([*rt.cmd, "--root", str(rt.root), "events", "--interval", "300ms",
                           cid], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert ev.stdout is not None
        first = json.loads(ev.stdout.readline())  # registered by now: stats flow
        assert first["type"] == "stats" and first["id"] == cid
        Path(rt.state(cid)["bundle"], "rootfs", "go").touch()
        seen = []
        for _ in range(200):
            line = json.loads(ev.stdout.readline())
            seen.append(line["type"])
            if line["type"] == "oom":
                assert line == {"type": "oom", "id": cid}  # no data, like runc
                break
        assert "oom" in seen, seen
        mem = cgroup_dir(pid, "memory") if Path("/sys/fs/cgroup/memory").is_dir() else None
        if mem is not None:  # the notice comes as the OOM starts; the kill follows
            for _ in range(100):
                if "oom_kill 0" not in (mem / "memory.oom_control").read_text().splitlines():
                    break
                time.sleep(0.05)
            assert "oom_kill 0" not in (mem / "memory.oom_control").read_text().splitlines()
    finally:
        ev.kill()
        ev.wait()
        assert ev.stderr is not None
        ev.stderr.close()
        if ev.stdout:
            ev.stdout.close()
    rt("delete", "-f", cid, check=True)


def test_events_ends_when_the_container_stops(rt: Runtime) -> None:
    cid, pid = start(rt, "while [ ! -e /stop ]; do sleep 0.05; done")
    ev = subprocess.Popen([*rt.cmd, "--root", str(rt.root), "events", "--interval", "1h", cid],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    Path(rt.state(cid)["bundle"], "rootfs", "stop").touch()
    out, err = ev.communicate(timeout=30)
    assert ev.returncode == 0 and out == "", err
    p = rt("events", cid)
    assert p.returncode == 1
    assert error_lines(p.stderr)[-1] == f"container with id {cid} is not running"
    rt("delete", cid, check=True)


def test_events_bad_interval(rt: Runtime) -> None:
    cid, pid = start(rt)
    for bad in ("0s", "fast"):
        p = rt("events", "--interval", bad, cid)
        assert p.returncode != 0 and "interval" in error_lines(p.stderr)[-1]
    rt("delete", "-f", cid, check=True)
