"""The cgroup v2 device filter in the real kernel: a cgroup of our own on the
unified hierarchy, a program attached to it from rules, and a forked host
child that joins the cgroup and reports which opens and mknods the kernel let
through. Only the cgroup made here is touched; it is removed even on failure.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyrunc.cgroups.devices_bpf import apply_device_rules, compile_rules
from pyrunc.errors import PyruncError

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

DENY_ALL = {"allow": False, "access": "rwm"}
KMSG_R = {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"}


def unified_root() -> str | None:
    """The cgroup2 mount: /sys/fs/cgroup/unified on a hybrid host, else
    /sys/fs/cgroup on a pure v2 one."""
    mounts = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            mounts[left.split()[4]] = right.split()[0]
    for path in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if mounts.get(path) == "cgroup2":
            return path
    return None


def own_cgroup(root: str) -> Iterator[str]:
    path = os.path.join(root, f"pyrunc-test-bpf-{uuid.uuid4().hex[:12]}")
    os.mkdir(path)
    try:
        yield path
    finally:
        # Only our own probe children can be in there; they are normally gone.
        with open(os.path.join(path, "cgroup.procs")) as f:
            for pid in f.read().split():
                os.kill(int(pid), signal.SIGKILL)
        os.rmdir(path)


@pytest.fixture
def cg() -> Iterator[str]:
    root = unified_root()
    if root is None:
        pytest.skip("no cgroup2 hierarchy")
    yield from own_cgroup(root)


@pytest.fixture
def v1cg() -> Iterator[str]:
    if not os.path.exists("/sys/fs/cgroup/devices/devices.allow"):
        pytest.skip("no cgroup v1 devices controller")
    yield from own_cgroup("/sys/fs/cgroup/devices")


@pytest.fixture
def nodes(tmp_path: Path) -> Path:
    """Device nodes of our own: a copy of /dev/kmsg (1:11, not on runc's
    default list) and of /dev/zero; skip where the filesystem is nodev."""
    os.mknod(tmp_path / "kmsg", stat.S_IFCHR | 0o600, os.makedev(1, 11))
    os.mknod(tmp_path / "zero", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    try:
        os.close(os.open(tmp_path / "zero", os.O_RDONLY))
    except PermissionError:
        pytest.skip(f"{tmp_path} does not allow device nodes")
    return tmp_path


def probe(cg: str, ops: list[tuple[Any, ...]]) -> list[int]:
    """Fork a host child that joins cg and tries each op: ("open", path, flags)
    or ("mknod", path, mode, major, minor). Returns 0 or the errno for each."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        try:
            os.close(r)
            with open(os.path.join(cg, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            out = []
            for op in ops:
                try:
                    if op[0] == "open":
                        os.close(os.open(op[1], op[2]))
                    else:
                        os.mknod(op[1], op[2], os.makedev(op[3], op[4]))
                        os.unlink(op[1])
                    out.append(0)
                except OSError as e:
                    out.append(e.errno)
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    assert data, "the probe child died without reporting"
    return json.loads(data)


def attached(cg: str) -> list[int]:
    from pyrunc.linux import bpf

    fd = os.open(cg, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return bpf.prog_query(fd, bpf.BPF_CGROUP_DEVICE)
    finally:
        os.close(fd)


def test_denied_device_cannot_be_opened_and_allowed_one_can(cg: str, nodes: Path) -> None:
    # A docker-like config: deny everything, then runc's default allow-list.
    apply_device_rules(cg, [DENY_ALL])
    assert len(attached(cg)) == 1
    res = probe(cg, [("open", "/dev/null", os.O_RDWR), ("open", "/dev/zero", os.O_RDONLY),
                     ("open", str(nodes / "zero"), os.O_RDONLY),
                     ("open", str(nodes / "kmsg"), os.O_RDONLY),
                     ("open", "/dev/kmsg", os.O_RDONLY),
                     ("mknod", str(nodes / "new-c"), stat.S_IFCHR | 0o600, 1, 11),
                     ("mknod", str(nodes / "new-b"), stat.S_IFBLK | 0o600, 7, 0)])
    assert res == [0, 0, 0, errno.EPERM, errno.EPERM, 0, 0]
    # Outside the cgroup nothing changed.
    os.close(os.open(nodes / "kmsg", os.O_RDONLY))


def test_access_letters_are_enforced(cg: str, nodes: Path) -> None:
    apply_device_rules(cg, [DENY_ALL, KMSG_R])
    kmsg = str(nodes / "kmsg")
    res = probe(cg, [("open", kmsg, os.O_RDONLY), ("open", kmsg, os.O_WRONLY),
                     ("open", kmsg, os.O_RDWR)])
    assert res == [0, errno.EPERM, errno.EPERM]


def test_reapplying_replaces_the_program(cg: str, nodes: Path) -> None:
    kmsg = str(nodes / "kmsg")
    apply_device_rules(cg, [DENY_ALL, KMSG_R])
    first = attached(cg)
    assert probe(cg, [("open", kmsg, os.O_RDONLY)]) == [0]
    apply_device_rules(cg, [DENY_ALL])  # as `pyrunc update` would
    second = attached(cg)
    assert len(second) == 1 and second != first
    assert probe(cg, [("open", kmsg, os.O_RDONLY), ("open", "/dev/null", os.O_RDWR)]) == [
        errno.EPERM, 0]
    apply_device_rules(cg, [DENY_ALL, KMSG_R])
    assert len(attached(cg)) == 1
    assert probe(cg, [("open", kmsg, os.O_RDONLY)]) == [0]


def test_denying_everything_blocks_dev_null(cg: str, nodes: Path) -> None:
    apply_device_rules(cg, [{"allow": False}], defaults=False)
    res = probe(cg, [("open", "/dev/null", os.O_RDONLY), ("open", "/dev/null", os.O_WRONLY),
                     ("mknod", str(nodes / "new"), stat.S_IFCHR | 0o600, 1, 3)])
    assert res == [errno.EPERM, errno.EPERM, errno.EPERM]
    # With runc's default list after it, /dev/null is usable again.
    apply_device_rules(cg, [{"allow": False}])
    assert probe(cg, [("open", "/dev/null", os.O_RDWR)]) == [0]
    assert len(attached(cg)) == 1


def test_many_rules_pass_the_verifier(cg: str, nodes: Path) -> None:
    rules: list[dict[str, Any]] = [DENY_ALL]
    for i in range(1000):  # 1000: the verifier must not go quadratic
        rules.append({"allow": i % 2 == 0, "type": "c", "major": 200 + i % 50, "minor": i,
                      "access": "rwm"[: 1 + i % 3]})
    rules.append(KMSG_R)
    apply_device_rules(cg, rules)
    assert probe(cg, [("open", str(nodes / "kmsg"), os.O_RDONLY),
                      ("open", str(nodes / "kmsg"), os.O_WRONLY)]) == [0, errno.EPERM]


def test_a_program_the_verifier_rejects_is_a_one_line_error() -> None:
    from pyrunc.linux import bpf

    prog = compile_rules([DENY_ALL])
    with pytest.raises(OSError) as e:
        bpf.prog_load(bpf.BPF_PROG_TYPE_CGROUP_DEVICE, prog[:-8])  # no exit at the end
    assert e.value.errno == errno.EINVAL
    assert "verifier: " in str(e.value) and "\n" not in str(e.value)


def test_missing_cgroup_is_a_one_line_error(cg: str) -> None:
    with pytest.raises(PyruncError, match=r"^cgroup: cannot open .*/nope: No such file"):
        apply_device_rules(os.path.join(cg, "nope"), [])


# Configs on which the v1 controller and the v2 filter must agree (where they
# differ by design, see devices_bpf's docstring: holes punched in wildcards,
# accesses granted by separate rules, wildcard allows after specific denies).
AGREEING = [
    [DENY_ALL],
    [DENY_ALL, KMSG_R],
    [DENY_ALL, {"allow": True, "type": "c", "major": 1, "access": "rw"}],
    [DENY_ALL, {"allow": True, "type": "b", "major": 7, "minor": 0, "access": "r"},
     {"allow": True, "type": "c", "major": 240, "access": "rwm"}],
    [{"allow": True}],
    [{"allow": True}, {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rw"},
     {"allow": False, "type": "b", "access": "w"}, {"allow": False, "type": "c", "major": 1,
                                                    "minor": 5, "access": "rwm"}],
]


def v1_write(path: str, rules: list[dict[str, Any]]) -> None:
    """The rules in the v1 controller's own syntax, runc's way: deny all, the
    config's rules, then the default allow-list."""
    from pyrunc.cgroups import DEFAULT_DEVICE_RULES

    lines = [("deny", "a")]
    for r in rules:
        if r.get("type", "a") == "a":
            lines.append(("allow" if r["allow"] else "deny", "a"))
            continue
        nums = [str(r[k]) if r.get(k, -1) != -1 else "*" for k in ("major", "minor")]
        lines.append(("allow" if r["allow"] else "deny",
                      f"{r['type']} {':'.join(nums)} {r.get('access', 'rwm')}"))
    lines += [("allow", text) for text in DEFAULT_DEVICE_RULES]
    for kind, text in lines:
        with open(os.path.join(path, f"devices.{kind}"), "w") as f:
            f.write(text)


@pytest.mark.parametrize("rules", AGREEING, ids=range(len(AGREEING)))
def test_the_filter_decides_as_the_v1_controller(cg: str, v1cg: str, nodes: Path,
                                                   rules: list[dict[str, Any]]) -> None:
    devices = [("c", 1, 3), ("c", 1, 5), ("c", 1, 11), ("c", 240, 0), ("b", 7, 0),
               ("b", 240, 0)]
    ops: list[tuple[Any, ...]] = []
    for i, (kind, major, minor) in enumerate(devices):
        node = str(nodes / f"dev{i}")
        mode = stat.S_IFCHR if kind == "c" else stat.S_IFBLK
        os.mknod(node, mode | 0o600, os.makedev(major, minor))
        ops += [("open", node, flags) for flags in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR)]
        ops.append(("mknod", str(nodes / f"new{i}"), mode | 0o600, major, minor))
    apply_device_rules(cg, rules)
    v1_write(v1cg, rules)
    v2_res, v1_res = probe(cg, ops), probe(v1cg, ops)
    assert v2_res == v1_res
    assert 0 in v2_res and (errno.EPERM in v2_res) == (rules != [{"allow": True}])
