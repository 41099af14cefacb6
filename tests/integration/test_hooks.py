"""OCI hooks: order, the state on stdin, namespaces, args/env/timeout, and
failure semantics (fatal before start, warnings after)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from tests.conftest import Runtime, error_lines


def _hook(log: str, kind: str) -> dict[str, Any]:
    # Each hook records its kind, its stdin (the state) and its uts namespace.
    script = (f"read -r state; echo \"{kind} $(readlink /proc/self/ns/mnt) $state\" >> {log}")
    return {"path": "/bin/sh", "args": ["sh", "-c", script]}


def _bundle_with_hooks(rt: Runtime, tmp: Path, args: list[str]) -> tuple[Path, Path]:
    shared = tmp / "shared"
    shared.mkdir()
    log = shared / "log"
    b = rt.bundle(**{"process.args": args})
    cfg = rt.config(b)
    cfg["mounts"].append({"destination": "/hooks", "type": "bind", "source": str(shared),
                          "options": ["rbind"]})
    cfg["hooks"] = {
        "prestart": [_hook(str(log), "prestart")],
        "createRuntime": [_hook(str(log), "createRuntime")],
        "createContainer": [_hook(str(log), "createContainer")],
        # resolved and run inside the container, after pivot_root
        "startContainer": [_hook("/hooks/log", "startContainer")],
        "poststart": [_hook(str(log), "poststart")],
        "poststop": [_hook(str(log), "poststop")],
    }
    rt.write_config(b, cfg)
    return b, log


def _entries(log: Path) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for line in log.read_text().splitlines():
        kind, mnt, state = line.split(" ", 2)
        out.append((kind, mnt, json.loads(state)))
    return out


def test_hooks_order_state_and_namespaces(rt: Runtime, tmp_path: Path) -> None:
    b, log = _bundle_with_hooks(rt, tmp_path, ["sleep", "60"])
    cid = rt.new_id()
    rt("create", "-b", str(b), cid, check=True)
    assert [e[0] for e in _entries(log)] == ["prestart", "createRuntime", "createContainer"]
    rt("start", cid, check=True)
    rt("delete", "-f", cid, check=True)
    entries = _entries(log)
    kinds = [e[0] for e in entries]
    assert kinds == ["prestart", "createRuntime", "createContainer", "startContainer",
                     "poststart", "poststop"]
    host_mnt = os.readlink("/proc/self/ns/mnt")
    mnt = {k: m for k, m, _ in entries}
    assert mnt["prestart"] == mnt["createRuntime"] == mnt["poststart"] == host_mnt
    assert mnt["createContainer"] != host_mnt and mnt["startContainer"] != host_mnt
    for _, _, state in entries:
        assert state["id"] == cid and state["bundle"] == str(b)
        assert state["ociVersion"]
    by_kind = {k: s for k, _, s in entries}
    assert by_kind["createRuntime"]["status"] == "creating"
    assert by_kind["createRuntime"]["pid"] > 0
    assert by_kind["poststart"]["status"] == "running"
    assert by_kind["poststop"]["status"] == "stopped"


def test_run_runs_every_hook(rt: Runtime, tmp_path: Path) -> None:
    b, log = _bundle_with_hooks(rt, tmp_path, ["true"])
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    assert [e[0] for e in _entries(log)] == ["prestart", "createRuntime", "createContainer",
                                             "startContainer", "poststart", "poststop"]


def test_hook_args_and_env(rt: Runtime, tmp_path: Path) -> None:
    out = tmp_path / "out"
    b = rt.bundle(**{"process.args": ["true"]})
    cfg = rt.config(b)
    cfg["hooks"] = {"createRuntime": [{
        "path": "/bin/sh",
        "args": ["myname", "-c", f'echo "$0 $1 $GREETING" > {out}', "zero", "one"],
        "env": ["GREETING=hello"]}]}
    rt.write_config(b, cfg)
    assert rt("run", "-b", str(b), rt.new_id()).returncode == 0
    assert out.read_text().strip() == "zero one hello"


def test_hook_timeout_kills_it(rt: Runtime, tmp_path: Path) -> None:
    b = rt.bundle(**{"process.args": ["true"]})
    cfg = rt.config(b)
    cfg["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}
    rt.write_config(b, cfg)
    t0 = time.monotonic()
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 1
    assert time.monotonic() - t0 < 25
    assert error_lines(p.stderr) == ["prestart hook #0 (/bin/sleep): timed out after 1s and "
                                     "was killed"]


def test_failing_create_container_hook_cleans_up(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["true"]})
    cfg = rt.config(b)
    cfg["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": [
        "sh", "-c", "echo broken >&2; exit 4"]}]}
    rt.write_config(b, cfg)
    cid = rt.new_id()
    p = rt("create", "-b", str(b), cid)
    assert p.returncode == 1
    assert error_lines(p.stderr) == ["createContainer hook #0 (/bin/sh): exit status 4: broken"]
    assert rt("state", cid).returncode == 1


def test_failing_poststop_hooks_are_warnings_and_all_run(rt: Runtime, tmp_path: Path) -> None:
    out = tmp_path / "ran"
    b = rt.bundle(**{"process.args": ["true"]})
    cfg = rt.config(b)
    cfg["hooks"] = {"poststop": [{"path": "/bin/false"},
                                 {"path": "/bin/sh", "args": ["sh", "-c", f"echo 2 >> {out}"]}]}
    rt.write_config(b, cfg)
    logf = tmp_path / "log.json"
    p = rt("--log", str(logf), "--log-format", "json", "run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    levels = [json.loads(line)["level"] for line in logf.read_text().splitlines()]
    assert levels == ["warning"]
    assert out.read_text() == "2\n"


def test_failing_poststart_hook_stops_the_container(rt: Runtime, tmp_path: Path) -> None:
    # runtime.md lifecycle 9: error, stop the container, go on with 12-13 (poststop).
    out = tmp_path / "poststop"
    b = rt.bundle(**{"process.args": ["sleep", "60"]})
    cfg = rt.config(b)
    cfg["hooks"] = {"poststart": [{"path": "/bin/false"}],
                    "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo ran > {out}"]}]}
    rt.write_config(b, cfg)
    cid = rt.new_id()
    rt("create", "-b", str(b), cid, check=True)
    p = rt("start", cid)
    assert p.returncode == 1
    assert error_lines(p.stderr) == ["poststart hook #0 (/bin/false): exit status 1"]
    assert rt.state(cid)["status"] == "stopped"
    rt("delete", cid, check=True)
    assert out.read_text() == "ran\n"


def test_failing_prestart_hook_runs_poststop(rt: Runtime, tmp_path: Path) -> None:
    out = tmp_path / "poststop"
    b = rt.bundle(**{"process.args": ["true"]})
    cfg = rt.config(b)
    cfg["hooks"] = {"prestart": [{"path": "/bin/false"}],
                    "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo ran > {out}"]}]}
    rt.write_config(b, cfg)
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 1
    assert out.read_text() == "ran\n"


def test_failing_start_container_hook_fails_start(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["sleep", "60"]})
    cfg = rt.config(b)
    cfg["hooks"] = {"startContainer": [{"path": "/bin/false"}]}
    rt.write_config(b, cfg)
    cid = rt.new_id()
    rt("create", "-b", str(b), cid, check=True)
    p = rt("start", cid)
    assert p.returncode == 1
    assert error_lines(p.stderr) == ["startContainer hook #0 (/bin/false): exit status 1"]
    assert rt.state(cid)["status"] == "stopped"
    rt("delete", cid, check=True)
