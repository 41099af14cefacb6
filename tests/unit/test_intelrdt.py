"""pyrunc.intelrdt against a directory laid out like /sys/fs/resctrl: what is
written where, and what is refused (this host has no resctrl to test on)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from pyrunc import intelrdt
from pyrunc.errors import ConfigError

ROOT_SCHEMATA = "    L3:0=fffff;1=fffff\n    MB:0=100;1=100\n"
ROOT_FILES = ["info", "mon_data", "mon_groups", "schemata", "tasks"]


class FakeKernel(intelrdt.Resctrl):
    """What resctrl does on mkdir/rmdir of a group: its files appear/vanish."""

    def mkdir(self, path: str) -> bool:
        created = super().mkdir(path)
        if created:
            p = Path(path)
            (p / "tasks").write_text("")
            if p.parent.name != "mon_groups":
                (p / "schemata").write_text(ROOT_SCHEMATA)
                if self.has("L3_MON"):
                    (p / "mon_groups").mkdir()
            if self.has("L3_MON"):
                add_mon_data(p)
        return created

    def rmdir(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)


def add_mon_data(group: Path, base: int = 1000) -> None:
    for i in range(2):
        d = group / "mon_data" / f"mon_L3_0{i}"
        d.mkdir(parents=True)
        for n, name in enumerate(("llc_occupancy", "mbm_total_bytes", "mbm_local_bytes")):
            (d / name).write_text(f"{base + 10 * i + n}\n")


def make_root(tmp: Path, features: tuple[str, ...] = ("L3", "MB", "L3_MON")) -> Path:
    root = tmp / "resctrl"
    info = root / "info"
    files = {"L3": {"cbm_mask": "fffff", "min_cbm_bits": "1", "num_closids": "16"},
             "MB": {"bandwidth_gran": "10", "delay_linear": "1", "min_bandwidth": "10",
                    "num_closids": "8"},
             "L3_MON": {"mon_features": "llc_occupancy\nmbm_total_bytes", "num_rmids": "64"}}
    for feat in features:
        (info / feat).mkdir(parents=True)
        for name, text in files[feat].items():
            (info / feat / name).write_text(text + "\n")
    (info / "last_cmd_status").write_text("ok\n")
    (root / "schemata").write_text(ROOT_SCHEMATA)
    (root / "tasks").write_text("")
    if "L3_MON" in features:
        (root / "mon_groups").mkdir()
        add_mon_data(root, 0)
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(tmp_path)


def setup(root: Path, rdt: dict[str, Any], cid: str = "ctr") -> dict[str, Any]:
    k = FakeKernel(str(root))
    k.check(rdt, cid)
    return k.setup(rdt, cid)


def test_find_root_reads_mountinfo() -> None:
    text = ("22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw\n"
            "40 22 0:35 / /mnt/my\\040rdt rw,relatime - resctrl resctrl rw,mba_MBps\n")
    assert intelrdt.find_root(text) == "/mnt/my rdt"
    assert intelrdt.find_root(text.splitlines()[0] + "\n") is None


def test_default_group_is_the_container_id_and_removed_on_delete(root: Path) -> None:
    rdt = {"l3CacheSchema": "L3:0=f0;1=1f", "memBwSchema": "MB:0=20;1=70",
           "schemata": ["L2:0=3"]}
    rec = setup(root, rdt)
    group = root / "ctr"
    # the spec's order, one line each, in one write
    assert (group / "schemata").read_text() == "L3:0=f0;1=1f\nMB:0=20;1=70\nL2:0=3\n"
    assert rec == {"root": str(root), "path": str(group), "remove": True}
    intelrdt.join(rec, 4242)
    assert (group / "tasks").read_text() == "4242"
    FakeKernel(str(root)).destroy(rec)
    assert not group.exists()
    assert (root / "schemata").read_text() == ROOT_SCHEMATA  # never touched


def test_closid_group_made_by_us_is_kept_on_delete(root: Path) -> None:
    """config-linux.md: closID set -> the runtime MUST NOT remove the group."""
    rec = setup(root, {"closID": "gold", "l3CacheSchema": "L3:0=ff"})
    assert (root / "gold" / "schemata").read_text() == "L3:0=ff\n"
    assert rec["remove"] is False
    FakeKernel(str(root)).destroy(rec)
    assert (root / "gold").is_dir()


def test_preconfigured_closid_without_schema_is_joined_not_written(root: Path) -> None:
    k = FakeKernel(str(root))
    k.mkdir(str(root / "silver"))
    (root / "silver" / "schemata").write_text("L3:0=3;1=3\n")
    rec = setup(root, {"closID": "silver"})
    assert (root / "silver" / "schemata").read_text() == "L3:0=3;1=3\n"
    intelrdt.join(rec, 7)
    assert (root / "silver" / "tasks").read_text() == "7"
    k.destroy(rec)
    assert (root / "silver").is_dir()


def test_missing_closid_without_schema_is_refused(root: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config.json: linux.intelRdt.closID: group "
                                          r"'bronze' does not exist in .*resctrl"):
        setup(root, {"closID": "bronze"})
    assert not (root / "bronze").exists()


def test_existing_closid_must_hold_the_schema_given(root: Path) -> None:
    k = FakeKernel(str(root))
    k.mkdir(str(root / "gold"))
    (root / "gold" / "schemata").write_text("    L3:0=000f0;1=fffff\n    MB:0=20;1=100\n")
    # the same values written differently match (only the ids given are compared)
    setup(root, {"closID": "gold", "l3CacheSchema": "L3:0=f0", "memBwSchema": "MB:0=20"})
    assert (root / "gold" / "schemata").read_text() == "L3:0=f0\nMB:0=20\n"
    (root / "gold" / "schemata").write_text("L3:0=f0;1=fffff\nMB:0=20;1=100\n")
    with pytest.raises(ConfigError, match=r"^config.json: linux.intelRdt.memBwSchema: "
                                          r"'MB:1=50' does not match .* group 'gold'$"):
        setup(root, {"closID": "gold", "memBwSchema": "MB:1=50"})
    with pytest.raises(ConfigError, match=r"linux.intelRdt.l3CacheSchema: "):
        setup(root, {"closID": "gold", "l3CacheSchema": "L3:0=ff"})
    assert (root / "gold" / "schemata").read_text() == "L3:0=f0;1=fffff\nMB:0=20;1=100\n"
    assert (root / "gold").is_dir()


@pytest.mark.parametrize(("features", "rdt", "message"), [
    (("MB",), {"l3CacheSchema": "L3:0=f"},
     "config.json: linux.intelRdt.l3CacheSchema: Intel RDT/CAT is not enabled on this host "
     "(no info/L3 in {root})"),
    (("L3",), {"memBwSchema": "MB:0=20"},
     "config.json: linux.intelRdt.memBwSchema: Intel RDT/MBA is not enabled on this host "
     "(no info/MB in {root})"),
    (("L3", "MB"), {"enableMonitoring": True},
     "config.json: linux.intelRdt.enableMonitoring: resctrl monitoring is not enabled on "
     "this host (no info/L3_MON in {root})"),
])
def test_feature_missing_is_refused(tmp_path: Path, features: tuple[str, ...],
                                    rdt: dict[str, Any], message: str) -> None:
    root = make_root(tmp_path, features)
    with pytest.raises(ConfigError) as e:
        FakeKernel(str(root)).check(rdt, "ctr")
    assert str(e.value) == message.format(root=root)


@pytest.mark.parametrize(("rdt", "cid", "field"), [
    ({"closID": ".."}, "c", "closID"),
    ({"closID": "."}, "c", "closID"),
    ({"closID": "a/b"}, "c", "closID"),
    ({"closID": "info"}, "c", "closID"),
    ({"l3CacheSchema": "L3:0=f"}, "mon_groups", ""),
    ({"l3CacheSchema": "L3:0=f\nMB:0=10"}, "c", "l3CacheSchema"),
    ({"schemata": ["L3:0=f", "MB:0=1\nL3:0=1"]}, "c", "schemata[1]"),
])
def test_bad_values_are_refused(root: Path, rdt: dict[str, Any], cid: str, field: str) -> None:
    with pytest.raises(ConfigError, match=r"^config.json: linux.intelRdt" +
                       (r"\." + field.replace("[", r"\[") if field else ":")):
        FakeKernel(str(root)).check(rdt, cid)
    assert sorted(p.name for p in root.iterdir()) == ROOT_FILES


def test_closid_slash_is_the_root_group_never_removed(root: Path) -> None:
    rec = setup(root, {"closID": "/", "l3CacheSchema": "L3:0=fffff;1=fffff"})
    assert rec["path"] == str(root) and rec["remove"] is False
    assert (root / "schemata").read_text() == "L3:0=fffff;1=fffff\n"
    FakeKernel(str(root)).destroy(rec)
    assert root.is_dir()


def test_monitoring_group_named_after_the_container(root: Path) -> None:
    rec = setup(root, {"closID": "gold", "l3CacheSchema": "L3:0=ff", "enableMonitoring": True},
                cid="c1")
    mon = root / "gold" / "mon_groups" / "c1"
    assert rec["monPath"] == str(mon) and mon.is_dir()
    intelrdt.join(rec, 99)  # the CTRL_MON group first, then its mon group
    assert (root / "gold" / "tasks").read_text() == "99"
    assert (mon / "tasks").read_text() == "99"
    FakeKernel(str(root)).destroy(rec)
    assert not mon.exists() and (root / "gold").is_dir()


def test_empty_strings_are_unset_and_cmt_mbm_ignored(root: Path) -> None:
    """runc reads "" as unset and never implemented enableCMT/enableMBM."""
    rec = setup(root, {"l3CacheSchema": "", "memBwSchema": "", "enableCMT": True,
                       "enableMBM": True})
    assert (root / "ctr" / "schemata").read_text() == ROOT_SCHEMATA  # nothing written
    assert "monPath" not in rec and not list((root / "ctr" / "mon_groups").iterdir())


def test_failed_write_names_the_kernel_status_and_leaves_nothing(root: Path) -> None:
    class Refusing(FakeKernel):
        def _write(self, path: str, data: str) -> None:
            (root / "info" / "last_cmd_status").write_text("Unknown or unsupported resource "
                                                           "L2\n")
            raise OSError(22, "Invalid argument")

    with pytest.raises(intelrdt.RdtError, match=r"^config.json: linux.intelRdt: cannot write "
                       r"the schemata of .*/ctr: Invalid argument \(last_cmd_status: Unknown "
                       r"or unsupported resource L2\)$"):
        Refusing(str(root)).setup({"schemata": ["L2:0=3"]}, "ctr")
    assert not (root / "ctr").exists()


def test_join_skips_a_group_removed_behind_our_back(root: Path) -> None:
    rec = setup(root, {"l3CacheSchema": "L3:0=f"})
    shutil.rmtree(rec["path"])
    intelrdt.join(rec, 5)  # like runc's exec: no error, nothing written
    assert not Path(rec["path"]).exists()


def test_refused_without_resctrl() -> None:
    if intelrdt.find_root() is not None:
        pytest.skip("resctrl is mounted on this host")
    with pytest.raises(ConfigError, match=r"^config.json: linux.intelRdt: Intel RDT is not "
                                          r"available on this host \(resctrl is not mounted\)$"):
        intelrdt.open_for({"closID": "x"}, "ctr")


def test_stats_like_runc_events(root: Path) -> None:
    rec = setup(root, {"closID": "gold", "l3CacheSchema": "L3:0=f0", "memBwSchema": "MB:0=20",
                       "enableMonitoring": True}, cid="c1")
    # the counters are the container's own mon group's, not the group's
    shutil.rmtree(Path(rec["monPath"]) / "mon_data")
    add_mon_data(Path(rec["monPath"]), 5000)
    assert intelrdt.stats(rec) == {
        "schemata": ["L3:0=f0", "MB:0=20"],
        "l3_cache_info": {"cbm_mask": "fffff", "min_cbm_bits": 1, "num_closids": 16},
        "l3_cache_schema_root": "L3:0=fffff;1=fffff", "l3_cache_schema": "L3:0=f0",
        "mem_bw_info": {"bandwidth_gran": 10, "delay_linear": 1, "min_bandwidth": 10,
                        "num_closids": 8},
        "mem_bw_schema_root": "MB:0=100;1=100", "mem_bw_schema": "MB:0=20",
        # mon_features has llc_occupancy and mbm_total_bytes: local reads 0 (as runc)
        "mbm_stats": [{"mbm_total_bytes": 5001, "mbm_local_bytes": 0},
                      {"mbm_total_bytes": 5011, "mbm_local_bytes": 0}],
        "cmt_stats": [{"llc_occupancy": 5000}, {"llc_occupancy": 5010}]}
