"""Pure logic of the runtime core: option parsing, path resolution inside a
rootfs, environment handling, ids, signals, log lines, state derivation."""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from pyrunc import cli, clicore, log, mountinfo
from pyrunc.errors import PyruncError, UsageError
from pyrunc.init import mountopts, paths
from pyrunc.init.process import ProcessError, build_env, cap_sets, look_path
from pyrunc.linux import libc as L
from pyrunc.linux import openat2
from pyrunc.linux.openat2 import open_in_root, walk_in_root
from pyrunc.state import State, derive_status, oci_state, proc_start_time, validate_id


def test_mount_flags_and_data() -> None:
    p = mountopts.parse(["nosuid", "noexec", "nodev", "ro", "mode=755", "size=65536k"])
    assert p.flags == L.MS_NOSUID | L.MS_NOEXEC | L.MS_NODEV | L.MS_RDONLY
    assert p.data == ["mode=755", "size=65536k"]
    assert not p.is_bind


def test_mount_clearing_options_and_bind() -> None:
    p = mountopts.parse(["rbind", "ro", "rw", "nosuid", "suid", "rslave"])
    assert p.flags == L.MS_BIND | L.MS_REC
    assert p.propagation == [L.MS_SLAVE | L.MS_REC]
    assert p.is_bind


def test_recursive_attributes() -> None:
    p = mountopts.parse(["rro", "rnosuid", "rnoatime", "tmpcopyup"])
    assert p.attr_set == (mountopts.MOUNT_ATTR_RDONLY | mountopts.MOUNT_ATTR_NOSUID
                          | mountopts.MOUNT_ATTR_NOATIME)
    assert p.attr_clr & mountopts.MOUNT_ATTR__ATIME
    assert p.extensions == {"tmpcopyup"}


def _where(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _tree(tmp_path: Path) -> tuple[Path, int]:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink("/etc", root / "abs")              # absolute link: restarts at root
    os.symlink("../../../../", root / "up")      # climbs: clamped at root
    os.symlink(str(tmp_path / "outside"), root / "evil")
    os.symlink("etc/../../../etc", root / "mixed")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.symlink("/run/missing/resolv.conf", root / "etc" / "resolv.conf")  # dangling
    return root, os.open(root, os.O_PATH | os.O_DIRECTORY)


@pytest.mark.parametrize("lookup", [open_in_root, walk_in_root], ids=["openat2", "fallback"])
def test_lookup_stays_inside(tmp_path: Path, lookup: Any) -> None:
    root, rfd = _tree(tmp_path)
    try:
        for path in ("/abs", "abs/", "up/etc", "../../etc", "/mixed", "/up/up/abs/../etc"):
            assert _where(lookup(rfd, path)) == str(root / "etc"), path
        assert _where(lookup(rfd, "/../..")) == str(root)
        link = lookup(rfd, "abs", os.O_PATH | os.O_NOFOLLOW)
        try:
            assert stat.S_ISLNK(os.fstat(link).st_mode)
        finally:
            os.close(link)
        with pytest.raises(OSError) as e:
            lookup(rfd, "/loop1/x")
        assert e.value.errno == errno.ELOOP
        with pytest.raises(FileNotFoundError):
            lookup(rfd, "/evil")  # the host directory is not there from inside
        with pytest.raises(NotADirectoryError):
            lookup(rfd, "/abs", os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
    finally:
        os.close(rfd)


@pytest.mark.parametrize("kernel", ["openat2", "fallback"])
def test_mkdir_all_and_make_file_create_inside(tmp_path: Path, kernel: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    if kernel == "fallback":  # as after ENOSYS on a kernel older than 5.6
        monkeypatch.setitem(openat2._STATE, "have", False)
    root, rfd = _tree(tmp_path)
    try:
        assert _where(paths.mkdir_all(rfd, "/evil/sub")) == str(
            root / str(tmp_path / "outside").lstrip("/") / "sub")
        assert not (tmp_path / "outside" / "sub").exists()
        assert _where(paths.mkdir_all(rfd, "up/new/../new2/")) == str(root / "new2")
        assert (root / "new").is_dir()
        assert _where(paths.mkdir_all(rfd, "/abs/x/y")) == str(root / "etc" / "x" / "y")
        # a file bind target through a dangling absolute symlink: made where it points
        made = paths.make_file(rfd, "/etc/resolv.conf")
        assert _where(made) == str(root / "run" / "missing" / "resolv.conf")
        assert (root / "run" / "missing" / "resolv.conf").is_file()
        with pytest.raises(OSError) as e:
            paths.mkdir_all(rfd, "/loop1/x")
        assert e.value.errno == errno.ELOOP
        (root / "file").write_text("")
        with pytest.raises(NotADirectoryError):
            paths.mkdir_all(rfd, "/file/x")
    finally:
        os.close(rfd)


def test_create_in_replaces_a_planted_symlink(tmp_path: Path) -> None:
    root, rfd = _tree(tmp_path)
    target = tmp_path / "outside" / "victim"
    target.write_text("keep")
    os.symlink(str(target), root / "etc" / "node")
    where, name = paths.split("/abs/../abs/node")
    assert (where, name) == ("/abs", "node")
    parent = paths.mkdir_all(rfd, where)
    try:
        fd = paths.create_in(parent, name, "file")
        os.close(fd)
        assert (root / "etc" / "node").is_file() and not (root / "etc" / "node").is_symlink()
        assert target.read_text() == "keep"
    finally:
        os.close(parent)
        os.close(rfd)


def test_env_duplicates_keep_first_position_last_value() -> None:
    assert list(build_env(["A=1", "B=2", "A=3"]).items()) == [("A", "3"), ("B", "2")]
    assert build_env(["EMPTY="]) == {"EMPTY": ""}
    with pytest.raises(ProcessError, match=r"process.env\[1\]"):
        build_env(["A=1", "NOEQUALS"])


def test_look_path(tmp_path: Path) -> None:
    exe = tmp_path / "tool"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (tmp_path / "plain").write_text("")
    assert look_path("tool", f"/nonexistent:{tmp_path}") == str(exe)
    with pytest.raises(ProcessError, match=r'exec: "plain": executable file not found in \$PATH'):
        look_path("plain", str(tmp_path))
    assert look_path(str(exe), None) == str(exe)


def test_capability_names() -> None:
    sets = cap_sets({"bounding": ["CAP_KILL", "CAP_CHECKPOINT_RESTORE"]})
    assert sets["bounding"] == {5, 40}
    with pytest.raises(ProcessError, match="process.capabilities.effective: unknown capability"):
        cap_sets({"effective": ["CAP_NOPE"]})


@pytest.mark.parametrize("cid,ok", [("abc", True), ("a.b-c_d+e", True), ("..", False),
                                     (".", False), ("a/b", False), ("", False), ("a b", False)])
def test_container_ids(cid: str, ok: bool) -> None:
    if ok:
        validate_id(cid)
    else:
        with pytest.raises(PyruncError, match="invalid container ID format"):
            validate_id(cid)


@pytest.mark.parametrize("text,num", [("KILL", 9), ("SIGKILL", 9), ("sigterm", 15), ("9", 9),
                                      ("USR1", 10)])
def test_signal_names(text: str, num: int) -> None:
    assert clicore.parse_signal(text) == num


def test_bad_signal() -> None:
    with pytest.raises(UsageError):
        clicore.parse_signal("SIGNOPE")
    with pytest.raises(UsageError):
        clicore.parse_signal("999")


def test_json_log_line(tmp_path: Path) -> None:
    f = tmp_path / "log.json"
    log.configure(str(f), "json", False)
    try:
        log.warning('a "quoted" thing')
    finally:
        log.configure(None, "text", False)
    entry = json.loads(f.read_text())
    assert entry["level"] == "warning" and entry["msg"] == 'a "quoted" thing'
    assert entry["time"].endswith("Z")


def test_status_of_dead_init_is_stopped(tmp_path: Path) -> None:
    st = State(id="x", bundle="/b", rootfs="/b/rootfs", created="now", pid=os.getpid(),
               init_start=1)  # start time mismatch: a recycled pid
    assert derive_status(st, str(tmp_path)) == "stopped"
    out = oci_state(st, "stopped")
    assert out["pid"] == 0 and out["status"] == "stopped"


def test_mountinfo_parse_and_lookup() -> None:
    text = ("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
            "30 22 0:5 / /dev\\040x rw - tmpfs tmpfs rw,mode=755\n")
    ms = mountinfo.parse(text)
    assert ms[1].mountpoint == "/dev x" and ms[0].optional == ("shared:1",)
    found = mountinfo.mount_of("/dev x/y", ms)
    assert found is not None and found.fstype == "tmpfs"


def test_cli_parsing_rules() -> None:
    parser = cli.build_parser()
    ns, cmd = parser.parse(["--root=/r", "-log-format", "json", "run", "-d", "--bundle=/b",
                            "--preserve-fds", "2", "cid"])
    assert cmd is not None and cmd.name == "run"
    assert (ns.root, ns.log_format, ns.detach, ns.bundle, ns.preserve_fds) == \
        ("/r", "json", True, "/b", 2)
    assert ns.positional == ["cid"]
    # flags stop at the first positional: the rest belongs to the process
    ns, cmd = parser.parse(["exec", "-e", "A=1", "-e", "B=2", "cid", "ls", "-l"])
    assert ns.env == ["A=1", "B=2"] and ns.positional == ["cid"]
    assert ns.command_args == ["ls", "-l"]
    ns, _ = parser.parse(["kill", "-a", "cid", "KILL"])
    assert ns.all and ns.positional == ["cid", "KILL"]
    with pytest.raises(UsageError) as e:
        parser.parse(["nosuch"])
    assert e.value.exit_code == 3


def test_copy_tree_is_deep() -> None:
    from pyrunc.fastjson import copy_tree, loads

    doc = loads('{"a": [1, {"b": ["c"]}], "d": null, "e": 1.5, "f": true}')
    dup = copy_tree(doc)
    assert dup == doc
    dup["a"][1]["b"].append("x")
    dup["a"].append(2)
    assert doc == {"a": [1, {"b": ["c"]}], "d": None, "e": 1.5, "f": True}


def test_proc_start_time_of_live_zombie_and_gone_processes() -> None:
    def fields(pid: int) -> list[bytes]:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()

    assert proc_start_time(os.getpid()) == int(fields(os.getpid())[19])
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while fields(pid)[0] != b"Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert proc_start_time(pid) is None  # a zombie is not running
    finally:
        os.waitpid(pid, 0)
    assert proc_start_time(pid) is None  # gone
