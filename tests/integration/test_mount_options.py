"""Mount options read back from inside the container (/proc/self/mountinfo,
stat): the recursive forms on a submount, per-mount propagation, ridmap,
masked directories as read-only tmpfs, and device nodes of every type."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _mounts(text: str) -> dict[str, tuple[set[str], set[str], str]]:
    """mountpoint -> (per-mount options, optional fields, fstype)."""
    out = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue  # not a mountinfo line
        f = left.split()
        out[f[4]] = (set(f[5].split(",")), set(f[6:]), right.split()[0])
    return out


def _run(rt: Runtime, script: str, mounts: list[dict[str, Any]],
         **over: Any) -> subprocess.CompletedProcess[str]:
    b = rt.bundle(**{"process.args": ["sh", "-c", script], **over})
    cfg = rt.config(b)
    cfg["mounts"] += mounts
    rt.write_config(b, cfg)
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    return p


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    """A directory with a tmpfs submount: what the recursive options must reach."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(src / "sub")], check=True)
    try:
        yield src
    finally:
        subprocess.run(["umount", str(src / "sub")], check=True)


@pytest.mark.parametrize(("option", "shown"), [
    ("rnosuid", {"nosuid"}), ("rnodev", {"nodev"}), ("rnoexec", {"noexec"}),
    ("rnoatime", {"noatime"}), ("rnosymfollow", {"nosymfollow"}),
    ("rrelatime", {"relatime"}),
])
def test_recursive_option_reaches_the_submount(rt: Runtime, tree: Path, option: str,
                                               shown: set[str]) -> None:
    p = _run(rt, "cat /proc/self/mountinfo",
             [{"destination": "/mnt", "type": "bind", "source": str(tree),
               "options": ["rbind", option]}])
    mi = _mounts(p.stdout)
    assert shown <= mi["/mnt"][0], mi["/mnt"]
    assert shown <= mi["/mnt/sub"][0], mi["/mnt/sub"]


def test_plain_option_stays_on_the_top_mount(rt: Runtime, tree: Path) -> None:
    """The contrast that makes the test above meaningful: "nosuid" (not
    recursive) leaves the submount as it was."""
    p = _run(rt, "cat /proc/self/mountinfo",
             [{"destination": "/mnt", "type": "bind", "source": str(tree),
               "options": ["rbind", "nosuid"]}])
    mi = _mounts(p.stdout)
    assert "nosuid" in mi["/mnt"][0]
    assert "nosuid" not in mi["/mnt/sub"][0]


def test_rstrictatime_clears_relatime_on_the_submount(rt: Runtime, tree: Path) -> None:
    p = _run(rt, "cat /proc/self/mountinfo",
             [{"destination": "/mnt", "type": "bind", "source": str(tree),
               "options": ["rbind", "rstrictatime"]}])
    mi = _mounts(p.stdout)
    for m in ("/mnt", "/mnt/sub"):
        assert not {"relatime", "noatime"} & mi[m][0], mi[m]


@pytest.mark.parametrize(("option", "tag"), [
    ("rshared", "shared:"), ("shared", "shared:"), ("runbindable", "unbindable"),
])
def test_propagation_of_one_mount(rt: Runtime, tmp_path: Path, option: str, tag: str) -> None:
    p = _run(rt, "cat /proc/self/mountinfo",
             [{"destination": "/mnt", "type": "bind", "source": str(tmp_path),
               "options": ["rbind", option]}])
    fields = _mounts(p.stdout)["/mnt"][1]
    assert any(f.startswith(tag) for f in fields), fields


def test_private_mount_has_no_peers(rt: Runtime, tmp_path: Path) -> None:
    p = _run(rt, "cat /proc/self/mountinfo",
             [{"destination": "/mnt", "type": "bind", "source": str(tmp_path),
               "options": ["rbind", "rprivate"]}])
    fields = _mounts(p.stdout)["/mnt"][1]
    assert not any(f.startswith(("shared:", "master:", "unbindable")) for f in fields), fields


def test_ridmap_maps_the_submount_too(rt: Runtime, tree: Path) -> None:
    for d in (tree, tree / "sub"):
        (d / "f").write_text("x")
        os.chown(d / "f", 0, 0)
    p = _run(rt, "stat -c %u:%g /mnt/f /mnt/sub/f",
             [{"destination": "/mnt", "type": "bind", "source": str(tree),
               "options": ["rbind", "ridmap"],
               "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
               "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 10}]}])
    assert p.stdout.split() == ["1000:2000", "1000:2000"]
    assert (tree / "sub" / "f").stat().st_uid == 0  # the files themselves are untouched


def test_masked_directory_is_a_read_only_tmpfs(rt: Runtime) -> None:
    p = _run(rt, "cat /proc/self/mountinfo; touch /proc/acpi/x 2>/dev/null || echo denied",
             [], **{"linux.maskedPaths": ["/proc/acpi", "/proc/kcore"]})
    mi = _mounts(p.stdout)
    opts, _, fstype = mi["/proc/acpi"]
    assert fstype == "tmpfs" and "ro" in opts
    assert p.stdout.splitlines()[-1] == "denied"


def test_devices_of_every_type(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["stat", "-c", "%n %F %t:%T %a", "/dev/blk", "/dev/chr",
                                      "/dev/fifo"]})
    cfg = rt.config(b)
    cfg["linux"]["devices"] = [
        {"path": "/dev/blk", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600},
        {"path": "/dev/chr", "type": "u", "major": 1, "minor": 7, "fileMode": 0o644},
        {"path": "/dev/fifo", "type": "p", "fileMode": 0o620},
    ]
    rt.write_config(b, cfg)
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["/dev/blk block special file 7:c8 600",
                                     "/dev/chr character special file 1:7 644",
                                     "/dev/fifo fifo 0:0 620"]
