"""Rootless: an unprivileged user runs `pyrunc spec --rootless` then
`pyrunc run`, with state under $XDG_RUNTIME_DIR/pyrunc."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Runtime, _ensure_rootfs


@pytest.fixture
def user() -> Iterator[pwd.struct_passwd]:
    name = f"pyrl{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        for d in Path("/tmp").glob(f"{name}-*"):  # made by _user_bundle
            shutil.rmtree(d)
        subprocess.run(["userdel", name], check=True)


def _subid_start(path: str, name: str) -> int | None:
    for line in Path(path).read_text().splitlines():
        parts = line.split(":")
        if parts[0] == name and len(parts) == 3:
            return int(parts[1])
    return None


@pytest.fixture
def subid_user(user: pwd.struct_passwd) -> Iterator[tuple[pwd.struct_passwd, int, int]]:
    """The user with 65536 subordinate uids and gids: useradd allocates them
    where login.defs says so; otherwise we add them. userdel (in `user`)
    removes them; the end of this fixture checks it did."""
    name = user.pw_name
    if _subid_start("/etc/subuid", name) is None or _subid_start("/etc/subgid", name) is None:
        base = 3_000_000_000 + (os.getpid() % 1000) * 65536  # far from useradd's ranges
        subprocess.run(["usermod", "--add-subuids", f"{base}-{base + 65535}",
                        "--add-subgids", f"{base}-{base + 65535}", name], check=True)
    uid0, gid0 = _subid_start("/etc/subuid", name), _subid_start("/etc/subgid", name)
    assert uid0 is not None and gid0 is not None
    yield user, uid0, gid0
    # `user` runs userdel after this; if it ever left the ranges, remove them now.
    subprocess.run(["usermod", "--del-subuids", f"{uid0}-{uid0 + 65535}",
                    "--del-subgids", f"{gid0}-{gid0 + 65535}", name], check=False,
                   capture_output=True)


def _user_bundle(rt: Runtime, user: pwd.struct_passwd, tmp_path: Path) -> tuple[
        Path, Path, Callable[..., subprocess.CompletedProcess[str]]]:
    """A bundle and $XDG_RUNTIME_DIR owned by user, and a way to run pyrunc as user."""
    if rt.cmd[0].startswith("/root/") or not os.access(rt.cmd[0], os.X_OK):
        pytest.skip("pyrunc's interpreter is not reachable by other users here")
    # Outside pytest's tmp tree: another pytest run on the machine resets
    # its top directory to 0700, which would lock the user out mid-test.
    base = Path(tempfile.mkdtemp(prefix=f"{user.pw_name}-", dir="/tmp"))
    bundle = base / "rl"
    bundle.mkdir()
    shutil.copytree(_ensure_rootfs(), bundle / "rootfs", symlinks=True)
    xdg = base / "xdg"
    xdg.mkdir(mode=0o700)
    for p in (base, bundle, *(q for q in bundle.rglob("*")), xdg):
        os.lchown(p, user.pw_uid, user.pw_gid)
    env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(xdg), "HOME": str(bundle)}

    def as_user(*args: str) -> subprocess.CompletedProcess[str]:
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        # files, not pipes: a detached container would hold a pipe open
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run([runuser, "-u", user.pw_name, "--", *rt.cmd, *args], cwd=bundle,
                               env=env, stdout=out, stderr=err, text=True, timeout=60)
            out.seek(0)
            err.seek(0)
            p.stdout, p.stderr = out.read(), err.read()
        return p

    return bundle, xdg, as_user


def test_rootless_spec_then_run(rt: Runtime, user: pwd.struct_passwd, tmp_path: Path) -> None:
    bundle, xdg, as_user = _user_bundle(rt, user, tmp_path)
    p = as_user("spec", "--rootless")
    assert p.returncode == 0, p.stderr
    cfg = json.loads((bundle / "config.json").read_text())
    assert cfg["linux"]["uidMappings"][0]["hostID"] == user.pw_uid
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map; hostname"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    p = as_user("run", "rl1")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(user.pw_uid), "1"]
    assert not (xdg / "pyrunc" / "rl1").exists()
    p = as_user("run", "-d", "rl2")
    assert p.returncode == 0, p.stderr
    assert (xdg / "pyrunc" / "rl2" / "state.json").exists()
    assert as_user("delete", "-f", "rl2").returncode == 0


@pytest.mark.skipif(not os.path.exists("/usr/bin/newuidmap"), reason="needs package uidmap")
def test_rootless_multi_range_maps(rt: Runtime, subid_user: tuple[pwd.struct_passwd, int, int],
                                   tmp_path: Path) -> None:
    """Maps beyond the user's own id go through newuidmap/newgidmap: the
    container sees both ranges, and its uid 1000 is subuid start + 999 on
    the host."""
    user, uid0, gid0 = subid_user
    bundle, _xdg, as_user = _user_bundle(rt, user, tmp_path)
    p = as_user("spec", "--rootless")
    assert p.returncode == 0, p.stderr
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": user.pw_uid, "size": 1},
                                   {"containerID": 1, "hostID": uid0, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": user.pw_gid, "size": 1},
                                   {"containerID": 1, "hostID": gid0, "size": 65536}]
    cfg["root"]["readonly"] = False
    caps = cfg["process"]["capabilities"]
    for key in ("bounding", "effective", "permitted"):
        caps[key] = sorted(set(caps.get(key, [])) | {"CAP_CHOWN"})
    cfg["process"]["user"]["additionalGids"] = [1000]  # setgroups(2) must stay allowed
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; "
                              "touch /tmp/owned && chown 1000:1000 /tmp/owned && "
                              "stat -c %u:%g /tmp/owned; id -G"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    p = as_user("run", "rlm")
    assert p.returncode == 0, p.stderr
    lines = [ln.split() for ln in p.stdout.splitlines()]
    assert lines[:4] == [["0", str(user.pw_uid), "1"], ["1", str(uid0), "65536"],
                         ["0", str(user.pw_gid), "1"], ["1", str(gid0), "65536"]]
    assert lines[4] == ["1000:1000"]
    assert lines[5] == ["0", "1000"]
    st = (bundle / "rootfs" / "tmp" / "owned").stat()
    assert (st.st_uid, st.st_gid) == (uid0 + 999, gid0 + 999)
    # exec joins that user namespace, as the same unprivileged user
    cfg["process"]["args"] = ["sleep", "60"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    assert as_user("run", "-d", "rlm2").returncode == 0
    try:
        p = as_user("exec", "-u", "1000:1000", "rlm2", "sh", "-c", "id -u; id -g; "
                    "wc -l < /proc/self/uid_map")
        assert (p.returncode, p.stdout.split()) == (0, ["1000", "1000", "2"]), p.stderr
    finally:
        assert as_user("delete", "-f", "rlm2").returncode == 0


def test_rootless_map_refused_without_subids(rt: Runtime, user: pwd.struct_passwd,
                                             tmp_path: Path) -> None:
    """A range the user does not own: one line naming the field and newuidmap's reason."""
    if not os.path.exists("/usr/bin/newuidmap"):
        pytest.skip("needs package uidmap")
    bundle, _xdg, as_user = _user_bundle(rt, user, tmp_path)
    assert as_user("spec", "--rootless").returncode == 0
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": user.pw_uid, "size": 1},
                                   {"containerID": 1, "hostID": 1, "size": 10}]
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["true"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    p = as_user("run", "rlx")
    assert p.returncode == 1
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert "linux.uidMappings/gidMappings: cannot write id maps: newuidmap: " in lines[0]
