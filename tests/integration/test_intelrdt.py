"""linux.intelRdt through the CLI. Where resctrl is not mounted (this VM: no
RDT hardware, no resctrl in the kernel) every intelRdt is refused with one
line, as config-linux.md requires ("If no mounted resctrl pseudo-filesystem
is available ... the runtime MUST generate an error") and runc >= 1.4 does.
Debian's runc 1.1 refuses only a schema ("...but Intel RDT/CAT is not
enabled") and silently ignores a bare closID. The group logic itself is
tested in tests/unit/test_intelrdt.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from pyrunc import intelrdt
from tests.conftest import REPO, Runtime, error_lines
from tests.integration.test_cgroups_cli import cgroup_dir
from tests.unit.test_intelrdt import ROOT_FILES, make_root

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

REFUSAL = ("config.json: linux.intelRdt: Intel RDT is not available on this host "
           "(resctrl is not mounted)")


@pytest.mark.skipif(intelrdt.find_root() is not None,
                    reason="resctrl is mounted here: the refusal cannot be tested")
@pytest.mark.parametrize("rdt", [
    {"closID": "x", "l3CacheSchema": "L3:0=f"},
    {"closID": "x"},
    {"memBwSchema": "MB:0=20", "enableMonitoring": True},
    {},
])
def test_refused_without_resctrl(rt: Runtime, rdt: dict[str, Any]) -> None:
    b = rt.bundle(**{"linux.intelRdt": rdt})
    cid = rt.new_id()
    p = rt("create", "-b", str(b), cid)
    assert p.returncode == 1
    assert error_lines(p.stderr) == [REFUSAL]
    assert rt("state", cid).returncode == 1  # nothing left behind


# ---- the CLI's wiring, on a stand-in resctrl ----------------------------------------
# With no resctrl in this kernel, pyrunc runs here with find_root() pointing at
# a directory laid out like /sys/fs/resctrl, and the unit tests' FakeKernel
# doing what the kernel does on mkdir/rmdir. Everything else is real: create,
# init's join after the cgroup's, exec's join, state.json, delete, rollback.
_WRAPPER = """
import sys
sys.path[:] = [p for p in sys.path if p] + [{repo!r}]  # the installed pyrunc, and tests/
from pyrunc import intelrdt
from tests.unit.test_intelrdt import FakeKernel
intelrdt.Resctrl = FakeKernel
intelrdt.find_root = lambda mountinfo=None: {root!r}
from pyrunc.cli import main
main()
"""


@pytest.fixture
def fake_rt(rt: Runtime, tmp_path: Path) -> tuple[Runtime, Path]:

    root = make_root(tmp_path)
    rt.cmd = [sys.executable, "-c", _WRAPPER.format(repo=str(REPO), root=str(root))]
    return rt, root


def test_group_lifecycle_on_stand_in_resctrl(fake_rt: tuple[Runtime, Path],
                                             tmp_path: Path) -> None:
    rt, root = fake_rt
    b = rt.bundle(**{"process.args": ["sleep", "600"],
                     "linux.intelRdt": {"l3CacheSchema": "L3:0=f0", "memBwSchema": "MB:0=20",
                                        "enableMonitoring": True}})
    cid = rt.new_id()
    rt("create", "-b", str(b), cid, check=True)
    group = root / cid
    mon = group / "mon_groups" / cid
    try:
        pid = rt.state(cid)["pid"]
        assert (group / "schemata").read_text() == "L3:0=f0\nMB:0=20\n"
        assert (group / "tasks").read_text() == str(pid)
        assert (mon / "tasks").read_text() == str(pid)
        pidf = tmp_path / "exec.pid"
        rt("exec", "--pid-file", str(pidf), cid, "true", check=True)
        assert (group / "tasks").read_text() == pidf.read_text()
        assert (mon / "tasks").read_text() == pidf.read_text()
        ev = rt("events", "--stats", cid, check=True)
        data = json.loads(ev.stdout)["data"]
        assert data["intel_rdt"]["schemata"] == ["L3:0=f0", "MB:0=20"]
        assert data["intel_rdt"]["mem_bw_schema"] == "MB:0=20"
        assert "memory" in data  # the cgroup's stats as before
    finally:
        rt("delete", "-f", cid)
    assert not group.exists()  # made by pyrunc for a container without closID


def test_closid_group_is_kept_on_delete(fake_rt: tuple[Runtime, Path]) -> None:
    rt, root = fake_rt
    b = rt.bundle(**{"process.args": ["true"],
                     "linux.intelRdt": {"closID": "gold", "schemata": ["L3:1=3"]}})
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    assert (root / "gold" / "schemata").read_text() == "L3:1=3\n"
    assert (root / "gold" / "tasks").read_text().isdigit()


def test_failed_create_removes_the_group(fake_rt: tuple[Runtime, Path]) -> None:
    rt, root = fake_rt
    b = rt.bundle(**{"process.args": ["/no/such/binary"],
                     "linux.intelRdt": {"l3CacheSchema": "L3:0=f", "enableMonitoring": True}})
    cid = rt.new_id()
    p = rt("create", "-b", str(b), cid)
    assert p.returncode == 1
    assert sorted(x.name for x in root.iterdir()) == ROOT_FILES


def test_existing_closid_with_other_schema_is_refused(fake_rt: tuple[Runtime, Path]) -> None:
    rt, root = fake_rt
    (root / "gold").mkdir()
    (root / "gold" / "schemata").write_text("L3:0=ff;1=ff\n")
    (root / "gold" / "tasks").write_text("")
    b = rt.bundle(**{"linux.intelRdt": {"closID": "gold", "l3CacheSchema": "L3:0=f"}})
    cid = rt.new_id()
    p = rt("create", "-b", str(b), cid)
    assert p.returncode == 1
    assert error_lines(p.stderr) == [
        "config.json: linux.intelRdt.l3CacheSchema: 'L3:0=f' does not match the schemata "
        "of the existing group 'gold'"]
    assert (root / "gold" / "schemata").read_text() == "L3:0=ff;1=ff\n"
    assert (root / "gold" / "tasks").read_text() == ""


def test_features_report_intel_rdt(rt: Runtime) -> None:
    """features-linux.md: what the runtime implements, whatever the host has."""
    p = rt("features")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["linux"]["intelRdt"] == {"enabled": True, "schemata": True,
                                                         "monitoring": True}


@pytest.mark.skipif(intelrdt.find_root() is not None,
                    reason="resctrl is mounted here: the refusal cannot be tested")
def test_update_schema_refused_without_resctrl(rt: Runtime) -> None:
    """runc 1.1 here: "Intel RDT/CAT: l3 cache schema is not enabled", exit 1."""
    b = rt.bundle(**{"process.args": ["sleep", "600"]})
    cid = rt.new_id()
    rt("run", "-d", "-b", str(b), cid, check=True)
    try:
        for flag, name in (("--l3-cache-schema", "CAT"), ("--mem-bw-schema", "MBA")):
            p = rt("update", flag, "X:0=1", "--pids-limit", "77", cid)
            assert p.returncode == 1
            assert error_lines(p.stderr) == [f"update: {flag}: Intel RDT/{name} is not enabled "
                                             "on this host (resctrl is not mounted)"]
        pids_max = cgroup_dir(rt.state(cid)["pid"], "pids") / "pids.max"
        assert pids_max.read_text().strip() != "77"  # nothing changed
    finally:
        rt("delete", "-f", cid)


def test_update_schemas_on_stand_in_resctrl(fake_rt: tuple[Runtime, Path]) -> None:
    """runc's update: a container created without intelRdt gets its group."""
    rt, root = fake_rt
    b = rt.bundle(**{"process.args": ["sleep", "600"]})
    cid = rt.new_id()
    rt("run", "-d", "-b", str(b), cid, check=True)
    group = root / cid
    try:
        rt("update", "--mem-bw-schema", "MB:0=30", cid, check=True)
        assert (group / "schemata").read_text() == "MB:0=30\n"
        assert (group / "tasks").read_text() == str(rt.state(cid)["pid"])
        rt("update", "--l3-cache-schema", "L3:0=3", cid, check=True)
        assert (group / "schemata").read_text() == "L3:0=3\nMB:0=30\n"
        p = rt("update", "--l3-cache-schema", "L3:0=3\nMB:0=1", cid)
        assert error_lines(p.stderr) == ["update: --l3-cache-schema: must not contain a newline"]
        ev = json.loads(rt("events", "--stats", cid, check=True).stdout)["data"]
        assert ev["intel_rdt"]["schemata"] == ["L3:0=3", "MB:0=30"]
    finally:
        rt("delete", "-f", cid)
    assert not group.exists()
