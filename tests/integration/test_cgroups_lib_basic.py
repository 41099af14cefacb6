"""Real-kernel tests of the cgroupfs manager (needs root and /sys/fs/cgroup)."""

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from pyrunc import cgroups
from pyrunc.errors import PyruncError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def mgr() -> Iterator[cgroups.Manager]:
    # Absolute path: never nest under the host's own cgroups.
    m = cgroups.open_manager(f"/pyrunc-test-{uuid.uuid4().hex[:8]}-{os.getpid()}", "x")
    m.create()
    try:
        yield m
    finally:
        m.destroy()
        assert not any(os.path.exists(d) for d in m.dirs.values())


def test_systemd_refused() -> None:
    with pytest.raises(PyruncError, match="systemd"):
        cgroups.open_manager(None, "x", systemd=True)


def test_default_path_is_id_relative_to_own_cgroup() -> None:
    assert cgroups.resolve_path(None, "abc", "/a/b") == "/a/b/abc"
    assert cgroups.resolve_path("/x/y", "abc", "/a/b") == "/x/y"
    assert cgroups.resolve_path("x/y", "abc", "/a") == "/a/x/y"


def test_apply_freeze_thaw_destroy(mgr: cgroups.Manager) -> None:
    p = subprocess.Popen(["sleep", "60"])
    try:
        mgr.apply(p.pid)
        assert mgr.pids() == [p.pid]
        mgr.freeze()
        assert mgr.is_frozen()
        mgr.thaw()
        assert not mgr.is_frozen()
        mgr.destroy()
        assert p.wait(timeout=5) == -9
        assert mgr.created == []
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_state_roundtrip(mgr: cgroups.Manager) -> None:
    m2 = cgroups.manager_from_state(mgr.to_state())
    assert m2.dirs == mgr.dirs and m2.created == mgr.created


def _read(d: str, name: str) -> str:
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def test_set_v1_basic(mgr: cgroups.Manager) -> None:
    mgr.set({"memory": {"limit": 64 << 20}, "cpu": {"shares": 512, "quota": 50000,
             "period": 100000}, "pids": {"limit": 17}})
    assert _read(mgr.dirs["memory"], "memory.limit_in_bytes") == str(64 << 20)
    assert _read(mgr.dirs["cpu"], "cpu.shares") == "512"
    assert _read(mgr.dirs["cpu"], "cpu.cfs_quota_us") == "50000"
    assert _read(mgr.dirs["pids"], "pids.max") == "17"


def test_shares_to_weight() -> None:
    from pyrunc.cgroups.v2 import shares_to_weight

    assert shares_to_weight(1024) == 100
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000


def test_v1_device_deny(mgr: cgroups.Manager, tmp_path: "os.PathLike[str]") -> None:
    # 240:0 is in no allow-list: denied it is EPERM, allowed it would be ENXIO.
    node = os.path.join(tmp_path, "dev240")
    os.mknod(node, 0o666 | 0o020000, os.makedev(240, 0))
    mgr.set({"devices": [{"allow": False, "access": "rwm"}]})
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: join the cgroup, then try the denied device
        try:
            os.close(r)
            mgr.apply(os.getpid())
            try:
                os.close(os.open(node, os.O_RDONLY))
                os.write(w, b"ok")
            except OSError as e:
                os.write(w, str(e.errno).encode())
        finally:
            os._exit(0)
    os.close(w)
    out = os.read(r, 64)
    os.close(r)
    os.waitpid(pid, 0)
    import errno
    assert out == str(errno.EPERM).encode()
