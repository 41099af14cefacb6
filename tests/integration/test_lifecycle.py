"""Lifecycle through the CLI: run, create/start/state/kill/delete, list, errors
that clients match on, exit statuses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import SHARED, Runtime


def wait_status(rt: Runtime, cid: str, want: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = rt.state(cid)
        if st["status"] == want or time.monotonic() > deadline:
            return st
        time.sleep(0.05)


def test_run_prints_from_inside(rt: Runtime, busybox: Path) -> None:
    p = rt("run", "-b", str(busybox), rt.new_id())
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["hello from pyrunc", "uid=0(root) gid=0(root)"]


@pytest.mark.parametrize("script,code", [("exit 0", 0), ("exit 3", 3), ("exit 255", 255)])
def test_run_relays_exit_status(rt: Runtime, script: str, code: int) -> None:
    b = rt.bundle(**{"process.args": ["sh", "-c", script]})
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == code, p.stderr


@pytest.mark.parametrize("sig,code", [("KILL", 137), ("9", 137)])
def test_run_relays_death_by_signal(rt: Runtime, sig: str, code: int) -> None:
    # PID 1 ignores signals it has no handler for, except from outside its namespace.
    b = rt.bundle(**{"process.args": ["sleep", "60"]})
    cid = rt.new_id()
    proc = subprocess.Popen([*rt.cmd, "--root", str(rt.root), "run", "-b", str(b), cid],
                            stdin=subprocess.DEVNULL)
    wait_status(rt, cid, "running") if _exists(rt, cid) else None
    assert rt("kill", cid, sig).returncode == 0
    assert proc.wait(timeout=20) == code


def _exists(rt: Runtime, cid: str) -> bool:
    for _ in range(200):
        if rt("state", cid).returncode == 0 and rt.state(cid)["status"] == "running":
            return True
        time.sleep(0.05)
    return False


def test_run_passes_stdin_through(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["sh", "-c", "read line; echo got:$line"]})
    p = rt("run", "-b", str(b), rt.new_id(), input="ping\n")
    assert p.stdout.strip() == "got:ping"


def test_run_forwards_signals(rt: Runtime, tmp_path: Path) -> None:
    b = rt.bundle(**{"process.args": ["sh", "-c",
                                      "trap 'echo trapped; exit 7' TERM; echo ready; "
                                      "while true; do sleep 0.1; done"]})
    proc = subprocess.Popen([*rt.cmd, "--root", str(rt.root), "run", "-b", str(b),
                             rt.new_id()], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert "trapped" in out
    assert proc.returncode == 7


def test_create_start_state_delete(rt: Runtime, tmp_path: Path) -> None:
    b = rt.bundle(**{"process.args": ["sleep", "60"]})
    cid = rt.new_id()
    pidfile = tmp_path / "pid"
    p = rt("create", "-b", str(b), "--pid-file", str(pidfile), cid)
    assert p.returncode == 0, p.stderr
    st = rt.state(cid)
    assert st["status"] == "created"
    assert st["id"] == cid and st["bundle"] == str(b)
    assert int(pidfile.read_text()) == st["pid"] > 0
    # runc's layout: the exec fifo exists from the end of create to start
    assert sorted(os.listdir(rt.root / cid)) == ["exec.fifo", "state.json"]
    # The init waits in the container: PID 1 of a new pid namespace.
    with open(f"/proc/{st['pid']}/status") as f:
        nspid = [line for line in f if line.startswith("NSpid:")][0].split()
    assert nspid[-1] == "1"
    assert rt("start", cid).returncode == 0
    st = rt.state(cid)
    assert st["status"] == "running"
    assert os.listdir(rt.root / cid) == ["state.json"]
    with open(f"/proc/{st['pid']}/cmdline") as f:
        assert f.read().split("\0")[0] == "sleep"
    p = rt("start", cid)
    assert p.returncode == 1 and "cannot start an already running container" in p.stderr
    p = rt("delete", cid)
    assert p.returncode == 1 and "not stopped" in p.stderr
    assert rt("kill", cid, "KILL").returncode == 0
    assert wait_status(rt, cid, "stopped")["status"] == "stopped"
    p = rt("kill", cid)
    assert p.returncode == 1 and "container not running" in p.stderr
    p = rt("start", cid)
    assert p.returncode == 1 and "cannot start a container that has stopped" in p.stderr
    assert rt("delete", cid).returncode == 0
    p = rt("state", cid)
    assert p.returncode == 1 and "container does not exist" in p.stderr


def test_state_matches_spec_schema(rt: Runtime) -> None:
    pytest.importorskip("jsonschema")
    schema_file = SHARED / "oci-runtime-spec" / "schema" / "state-schema.json"
    if not schema_file.exists():
        pytest.skip("../shared/oci-runtime-spec is not beside the repo")
    b = rt.bundle(**{"process.args": ["sleep", "60"]})
    cid = rt.new_id()
    rt("create", "-b", str(b), cid, check=True)
    validator = spec_validator(schema_file)
    for _ in ("created", "running"):
        validator.validate(rt.state(cid))
        if _ == "created":
            rt("start", cid, check=True)
    rt("delete", "-f", cid, check=True)


def spec_validator(schema_file: Path):  # type: ignore[no-untyped-def]
    """A validator for one of the spec's schema files, its $refs resolved beside it."""
    import jsonschema
    import referencing

    base = "https://opencontainers.org/schema/"
    resources = []
    for f in schema_file.parent.glob("*.json"):
        doc = json.loads(f.read_text())
        resources.append((base + f.name, referencing.Resource.from_contents(
            doc, default_specification=referencing.jsonschema.DRAFT4)))
    registry = referencing.Registry().with_resources(resources)
    schema = json.loads(schema_file.read_text())
    schema.setdefault("id", base + schema_file.name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=registry)


def test_delete_force_kills_running(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["sleep", "60"]})
    cid = rt.new_id()
    rt("run", "-d", "-b", str(b), cid, check=True)
    pid = rt.state(cid)["pid"]
    assert rt("delete", "-f", cid).returncode == 0
    for _ in range(100):
        if not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}/cmdline") or \
        open(f"/proc/{pid}/cmdline").read() == ""


def test_delete_created_container_without_force(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["sleep", "60"]})
    cid = rt.new_id()
    rt("create", "-b", str(b), cid, check=True)
    assert rt("delete", cid).returncode == 0


def test_kill_signal_forms(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["sleep", "60"]})
    for sig in ("KILL", "SIGKILL", "9"):
        cid = rt.new_id()
        rt("run", "-d", "-b", str(b), cid, check=True)
        assert rt("kill", cid, sig).returncode == 0
        assert wait_status(rt, cid, "stopped")["status"] == "stopped"
        rt("delete", cid, check=True)
    cid = rt.new_id()
    rt("run", "-d", "-b", str(b), cid, check=True)
    p = rt("kill", cid, "NOSUCH")
    assert p.returncode == 1 and "unknown signal" in p.stderr
    rt("delete", "-f", cid, check=True)


def test_list_formats(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["sleep", "60"]})
    a, c = rt.new_id(), rt.new_id()
    rt("create", "-b", str(b), a, check=True)
    rt("run", "-d", "-b", str(b), c, check=True)
    assert rt("list", "-q").stdout.split() == sorted([a, c])
    rows = json.loads(rt("list", "-f", "json").stdout)
    assert {r["id"]: r["status"] for r in rows} == {a: "created", c: "running"}
    assert all(r["owner"] == "root" for r in rows)
    table = rt("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[0].index("PID") == max(12, len(a) + 3)
    rt("delete", "-f", a, check=True)
    rt("delete", "-f", c, check=True)
    assert rt("list", "-f", "json").stdout.strip() == "null"


def test_id_in_use(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["sleep", "60"]})
    cid = rt.new_id()
    rt("create", "-b", str(b), cid, check=True)
    p = rt("create", "-b", str(b), cid)
    assert p.returncode == 1 and f"container with id exists: {cid}" in p.stderr
    assert rt.state(cid)["status"] == "created"  # the first one is untouched
    rt("delete", cid, check=True)


def test_missing_container_messages(rt: Runtime) -> None:
    for verb in (["state"], ["start"], ["kill"], ["delete"]):
        p = rt(*verb, "nosuch")
        assert p.returncode == 1
        assert "container does not exist" in p.stderr
    assert rt("delete", "-f", "nosuch").returncode == 0  # like runc: -f is idempotent


def test_run_detach_then_exit_is_stopped(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["true"]})
    cid = rt.new_id()
    rt("run", "-d", "-b", str(b), cid, check=True)
    assert wait_status(rt, cid, "stopped")["status"] == "stopped"
    assert rt.state(cid)["pid"] == 0
    rt("delete", cid, check=True)


def test_run_keep_leaves_stopped_container(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["true"]})
    cid = rt.new_id()
    assert rt("run", "--keep", "-b", str(b), cid).returncode == 0
    assert rt.state(cid)["status"] == "stopped"
    rt("delete", cid, check=True)


def test_preserve_fds(rt: Runtime, tmp_path: Path) -> None:
    b = rt.bundle(**{"process.args": ["sh", "-c", "cat <&3; ls /proc/$$/fd; true"]})
    f = tmp_path / "data"
    f.write_text("from fd 3\n")
    # fd 3 is asked for; fd 9 is a stray that must not reach the container.
    cmd = " ".join([*rt.cmd, "--root", str(rt.root), "run", "--preserve-fds", "1", "-b", str(b),
                    rt.new_id()])
    p = subprocess.run(["sh", "-c", f"exec 3<{f} 9</dev/null; exec {cmd}"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "from fd 3"
    assert sorted(lines[1:], key=int) == ["0", "1", "2", "3"]


def test_features_validates_against_spec_schema(rt: Runtime) -> None:
    schema_file = SHARED / "oci-runtime-spec" / "schema" / "features-schema.json"
    if not schema_file.exists():
        pytest.skip("../shared/oci-runtime-spec is not beside the repo")
    p = rt("features")
    assert p.returncode == 0, p.stderr
    feats = json.loads(p.stdout)
    spec_validator(schema_file).validate(feats)
    assert feats["ociVersionMax"] == "1.3.0"
    assert "time" in feats["linux"]["namespaces"]
    assert "rro" in feats["mountOptions"] and "tmpcopyup" in feats["mountOptions"]


def imported(rt: Runtime, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules one pyrunc command, and its early child, import through
    the import system (python -X importtime): not those pyrunc.image preloads."""
    if len(rt.cmd) != 1:
        pytest.skip("needs the installed console script")
    # a file, not a pipe: a created container's init holds our stderr
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.run([sys.executable, "-X", "importtime", "-I", "-S", rt.cmd[0],
                            "--root", str(rt.root), *args], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=err, text=True, timeout=60,
                           env=env)
        err.seek(0)
        text = err.read()
    assert p.returncode == 0, text
    return {line.split("|")[2].strip() for line in text.splitlines()
            if line.startswith("import time:") and "|" in line}


def test_one_shot_commands_stay_off_os(rt: Runtime, busybox: Path) -> None:
    """state, kill, start, delete and list start a fresh interpreter each;
    `import os` would be a tenth of their time (pyrunc.posixfs), and the
    full command table (pyrunc.cli) another (pyrunc.clicore runs the four
    a shim calls around every container)."""
    cid = rt.new_id()
    rt("create", "-b", str(busybox), cid, check=True)
    for args in (["state", cid], ["kill", cid, "CONT"], ["list"],
                 ["--log-format", "json", "start", cid]):
        mods = imported(rt, *args)
        assert "encodings" in mods, args  # the listing works
        assert "os" not in mods, args
        assert ("pyrunc.cli" in mods) == (args == ["list"]), args
    wait_status(rt, cid, "stopped")
    made = json.loads((rt.root / cid / "state.json").read_text())["cgroup"]["created"]
    assert made and all(os.path.isdir(d) for d in made)
    mods = imported(rt, "delete", cid)
    # a stopped container's cgroups are empty: removed without the manager
    assert "pyrunc.cgroups" not in mods and "os" not in mods and "pyrunc.cli" not in mods
    assert rt("state", cid).returncode != 0
    assert not any(os.path.exists(d) for d in made)


def test_running_state_reads_the_freezer_without_the_cgroup_manager(rt: Runtime) -> None:
    """`state` and `kill` of a running container ask the freezer whether it
    is paused; pyrunc.cgroups would cost them ~0.3 ms to import."""
    cid = rt.new_id()
    rt("run", "-d", "-b", str(rt.bundle(**{"process.args": ["sleep", "60"]})), cid, check=True)
    for args in (["state", cid], ["kill", cid, "CONT"]):
        assert "pyrunc.cgroups" not in imported(rt, *args), args
    assert rt("pause", cid).returncode == 0
    assert rt.state(cid)["status"] == "paused"
    assert rt("resume", cid).returncode == 0
    assert rt.state(cid)["status"] == "running"
    assert rt("delete", "-f", cid).returncode == 0


_ORPHANS = """
import os, subprocess, sys, prctl
prctl.set_child_subreaper(1)  # what pyrunc leaves unreaped becomes ours
p = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, capture_output=True)
orphans = 0
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
    orphans += 1
print(p.returncode, orphans)
"""


@pytest.mark.parametrize("args", [["create"], ["exec", "--help"], ["run", "--bundle"]])
def test_unused_early_child_is_reaped(rt: Runtime, args: list[str]) -> None:
    """create/run/exec fork their child before the arguments are parsed; a
    command that ends before taking it reaps it itself."""
    p = subprocess.run([sys.executable, "-c", _ORPHANS, *rt.cmd, "--root", str(rt.root), *args],
                       capture_output=True, text=True, timeout=60, check=True)
    assert p.stdout.split() == ["0" if "--help" in args else "1", "0"]
