"""`pyrunc exec`: the process fields beyond user/caps/rlimits (oomScoreAdj,
scheduler, ioPriority, execCPUAffinity, umask, additionalGids, LSM labels),
process.json defaults like runc's, runc's error wording and exit code 255,
--ignore-paused and --cgroup PATH for every controller."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime, error_lines
from tests.integration import test_exec

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

RUNC = "/usr/sbin/runc"


# the same running container as test_exec.py's tests
running = test_exec.running


def _exec_p(rt: Runtime, cid: str, tmp: Path, proc: dict[str, Any],
            *flags: str) -> subprocess.CompletedProcess[str]:
    pf = tmp / f"process-{time.monotonic_ns()}.json"
    pf.write_text(json.dumps(proc))
    return rt("exec", *flags, "-p", str(pf), cid)


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (ln.partition(":") for ln in lines)}


def _stat(pid: int) -> list[str]:
    data = Path(f"/proc/{pid}/stat").read_text()
    return data[data.rindex(")") + 2:].split()  # fields from 3 (state) on


def test_process_json_fields_applied(running: Any, tmp_path: Path) -> None:
    rt, cid, _ = running
    pidf = tmp_path / "p.pid"
    proc: dict[str, Any] = {"args": ["sleep", "30"], "cwd": "/", "env": ["PATH=/bin"],
                            "user": {"uid": 0, "gid": 0, "umask": 0o077,
                                     "additionalGids": [7, 8]},
                            "oomScoreAdj": 321,
                            "scheduler": {"policy": "SCHED_BATCH", "nice": 7},
                            "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0}}
    if len(os.sched_getaffinity(0)) > 1:
        last = max(os.sched_getaffinity(0))
        proc["execCPUAffinity"] = {"initial": "0", "final": str(last)}
    p = _exec_p(rt, cid, tmp_path, proc, "-d", "--pid-file", str(pidf))
    assert p.returncode == 0, p.stderr
    pid = int(pidf.read_text())
    st = _status(pid)
    assert st["Umask"] == "0077"
    assert st["Groups"].split() == ["7", "8"]
    assert Path(f"/proc/{pid}/oom_score_adj").read_text().strip() == "321"
    fields = _stat(pid)
    assert fields[16] == "7"  # nice (field 19)
    assert fields[38] == "3"  # policy (field 41): SCHED_BATCH
    io = subprocess.run(["ionice", "-p", str(pid)], capture_output=True, text=True, check=True)
    assert io.stdout.strip() == "idle"
    if "execCPUAffinity" in proc:
        assert st["Cpus_allowed_list"] == proc["execCPUAffinity"]["final"]


def test_config_fields_inherited_without_process_json(rt: Runtime, tmp_path: Path) -> None:
    """Without -p, exec takes the container's process (its oomScoreAdj, umask...)."""
    over: dict[str, Any] = {"process.args": ["sleep", "600"], "process.oomScoreAdj": 222,
                            "process.user.umask": 0o027,
                            "process.scheduler": {"policy": "SCHED_BATCH", "nice": 3}}
    b = rt.bundle(**over)
    cid = rt.new_id()
    rt("run", "-d", "-b", str(b), cid, check=True)
    try:
        p = rt("exec", cid, "sh", "-c", "cat /proc/self/oom_score_adj; umask; "
               "cut -d' ' -f19 /proc/self/stat")
        assert p.returncode == 0, p.stderr
        assert p.stdout.split() == ["222", "0027", "3"]
    finally:
        rt("delete", "-f", cid)


def test_process_field_errors_name_the_field(running: Any, tmp_path: Path) -> None:
    rt, cid, _ = running
    base: dict[str, Any] = {"args": ["true"], "cwd": "/", "env": ["PATH=/bin"]}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"execCPUAffinity": {"final": "4095"}}, "process.json: execCPUAffinity.final: "),
        ({"scheduler": {"policy": "SCHED_NOPE"}}, "process.json: scheduler.policy: "),
        ({"oomScoreAdj": -999}, "process.json: oomScoreAdj: cannot set -999")]
    if os.path.exists("/proc/self/oom_score_adj") and _can_lower_oom():
        cases.pop()
    for extra, want in cases:
        p = _exec_p(rt, cid, tmp_path, {**base, **extra})
        assert p.returncode == 255, (extra, p.stderr)
        lines = error_lines(p.stderr)
        assert len(lines) == 1 and lines[0].startswith(want), (extra, lines)


def _can_lower_oom() -> bool:
    """CAP_SYS_RESOURCE (absent on some test machines) lets root lower the score."""
    caps = int(_status(os.getpid())["CapEff"], 16)
    return bool(caps & (1 << 24))


def test_process_json_missing_fields_like_runc(running: Any, tmp_path: Path) -> None:
    rt, cid, b = running
    # user.uid/gid default to 0 (Go's zero values in runc)
    p = _exec_p(rt, cid, tmp_path, {"args": ["/usr/bin/id"], "cwd": "/", "user": {"uid": 5}})
    assert (p.returncode, p.stdout.split()[:2]) == (0, ["uid=5", "gid=0(root)"]), p.stderr
    p = _exec_p(rt, cid, tmp_path, {"args": ["/usr/bin/id"], "cwd": "/", "user": {"gid": 5}})
    assert p.stdout.split()[:2] == ["uid=0(root)", "gid=5(tty)"], p.stderr
    # no env: no PATH, so a bare name is not found (runc: the same)
    p = _exec_p(rt, cid, tmp_path, {"args": ["id"], "cwd": "/"})
    assert p.returncode == 255
    assert error_lines(p.stderr) == ['exec: "id": executable file not found in $PATH']
    # no capabilities: the container's (runc falls back to them too)
    p = _exec_p(rt, cid, tmp_path, {"args": ["/bin/grep", "CapEff", "/proc/self/status"],
                                    "cwd": "/"})
    want = int(_status(int(rt.state(cid)["pid"]))["CapEff"], 16)
    assert int(p.stdout.split()[1], 16) == want != 0, p.stderr
    # cwd and args stay required, as in runc ("Cwd property must not be empty")
    p = _exec_p(rt, cid, tmp_path, {"args": ["/bin/true"]})
    assert p.returncode == 255 and "cwd" in error_lines(p.stderr)[0]
    p = _exec_p(rt, cid, tmp_path, {"cwd": "/"})
    assert p.returncode == 255 and "args" in error_lines(p.stderr)[0]


def test_lsm_labels_refused_when_disabled(running: Any, tmp_path: Path) -> None:
    from pyrunc.init import lsm

    rt, cid, _ = running
    if lsm.apparmor_enabled() or lsm.selinux_enabled():
        pytest.skip("an LSM is enabled here")
    p = _exec_p(rt, cid, tmp_path, {"args": ["/bin/true"], "cwd": "/",
                                    "apparmorProfile": "foo"})
    assert p.returncode == 255
    assert error_lines(p.stderr) == ["process.json: apparmorProfile: apparmor is not enabled "
                                     "on this host"]
    p = rt("exec", "--apparmor", "foo", cid, "true")
    assert p.returncode == 255
    assert error_lines(p.stderr) == ["exec: process.apparmorProfile: apparmor is not enabled "
                                     "on this host"]
    why = "selinux label is specified in config, but selinux is disabled or not supported"
    p = _exec_p(rt, cid, tmp_path, {"args": ["/bin/true"], "cwd": "/",
                                    "selinuxLabel": "system_u:system_r:container_t:s0"})
    assert (p.returncode, error_lines(p.stderr)) == (255, [f"process.json: selinuxLabel: {why}"])
    p = rt("exec", "--process-label", "system_u:system_r:container_t:s0", cid, "true")
    assert (p.returncode, error_lines(p.stderr)) == (
        255, [f"exec: process.selinuxLabel: {why}"])


@pytest.mark.skipif(not os.access(RUNC, os.X_OK), reason="runc is not installed")
def test_error_wording_matches_runc(running: Any, tmp_path: Path) -> None:
    """Same message (minus runc's "exec failed: unable to start container
    process: " prefix) and exit code 255 for what clients parse."""
    rt, cid, b = running
    (b / "rootfs" / "noexec.sh").write_text("#!/bin/sh\n")
    runc_root = tmp_path / "runc-state"
    rcid = f"{cid}-runc"
    # a file, not a pipe: the detached container holds it open
    with open(tmp_path / "runc-run.err", "w+") as err:
        r = subprocess.run([RUNC, "--root", str(runc_root), "run", "-d", "-b", str(b), rcid],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                           timeout=60)
        err.seek(0)
        run_err = err.read()
    try:
        assert r.returncode == 0, run_err
        cases = [["nosuchbinary"], ["/nosuch"], ["/noexec.sh"], ["/etc"],
                 ["--cwd", "/nonexistent", "true"], ["--cwd", "/etc/passwd", "true"]]
        for case in cases:
            *flags, arg = case
            theirs = subprocess.run([RUNC, "--root", str(runc_root), "exec", *flags, rcid,
                                     arg], stdin=subprocess.DEVNULL, capture_output=True,
                                    text=True, timeout=60)
            ours = rt("exec", *flags, cid, arg)
            assert ours.returncode == theirs.returncode == 255, case
            msg = error_lines(theirs.stderr)[-1]
            msg = msg.removeprefix("exec failed: ").removeprefix(
                "unable to start container process: ")
            assert error_lines(ours.stderr) == [msg], case
        for stopped in ("nosuch-container",):
            theirs = subprocess.run([RUNC, "--root", str(runc_root), "exec", stopped, "true"],
                                    capture_output=True, text=True, timeout=60)
            ours = rt("exec", stopped, "true")
            assert ours.returncode == theirs.returncode == 255
            assert error_lines(ours.stderr) == [error_lines(theirs.stderr)[-1]
                                                .removeprefix("exec failed: ")]
    finally:
        subprocess.run([RUNC, "--root", str(runc_root), "delete", "-f", rcid],
                       capture_output=True, timeout=60)


def test_paused_exit_code_and_ignore_paused(running: Any, tmp_path: Path) -> None:
    rt, cid, b = running
    if rt("pause", cid).returncode != 0:
        pytest.skip("pause not available")
    proc = None
    try:
        p = rt("exec", cid, "true")
        assert p.returncode == 255
        assert error_lines(p.stderr) == ["cannot exec in a paused container (use "
                                         "--ignore-paused to override)"]
        # --ignore-paused: the process joins the frozen cgroup and runs once
        # the container is resumed (runc behaves the same).
        proc = subprocess.Popen([*rt.cmd, "--root", str(rt.root), "exec", "--ignore-paused",
                                 cid, "sh", "-c", "echo ran > /tmp/ignored-pause"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.5)
        assert proc.poll() is None, "exec finished inside a frozen container"
        assert not (b / "rootfs" / "tmp" / "ignored-pause").exists()
    finally:
        rt("resume", cid)
        if proc is not None:
            assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
            if proc.stderr:
                proc.stderr.close()
    assert (b / "rootfs" / "tmp" / "ignored-pause").read_text() == "ran\n"
