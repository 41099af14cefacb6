"""Shared fixtures. Integration tests run real containers as root through the
CLI; after each one the `leak_check` fixture fails the test if it left a
mount, cgroup, process or state directory behind."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
BUSYBOX_BUNDLE = REPO / "bundles" / "busybox"


def pyrunc_cmd() -> list[str]:
    """The installed console script next to this interpreter, as users get it."""
    if os.environ.get("PYRUNC_TEST_CMD"):
        return os.environ["PYRUNC_TEST_CMD"].split()
    exe = Path(sys.executable).with_name("pyrunc")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "pyrunc"]


def _ensure_rootfs() -> Path:
    rootfs = BUSYBOX_BUNDLE / "rootfs"
    lock = REPO / "bundles" / ".build.lock"
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        if not (rootfs / "bin" / "busybox").exists():
            subprocess.run([str(REPO / "bundles" / "build-rootfs.sh")], check=True,
                           stdout=subprocess.DEVNULL)
    return rootfs


class Runtime:
    """One test's pyrunc: its own --root, bundle dir and container ids."""

    def __init__(self, tmp: Path, cmd: list[str] | None = None) -> None:
        self.tmp = tmp
        self.root = tmp / "state"
        self.cmd = cmd or pyrunc_cmd()
        self.token = uuid.uuid4().hex[:8]
        self._n = 0
        self.ids: list[str] = []

    def new_id(self) -> str:
        self._n += 1
        cid = f"t{self.token}-{self._n}"
        self.ids.append(cid)
        return cid

    def bundle(self, name: str = "bundle", **overrides: Any) -> Path:
        """A private copy of the busybox bundle; overrides patch config.json
        (dotted keys, e.g. {"process.args": [...]})."""
        b = self.tmp / name
        if not b.exists():
            b.mkdir()
            shutil.copytree(_ensure_rootfs(), b / "rootfs", symlinks=True)
        cfg = json.loads((BUSYBOX_BUNDLE / "config.json").read_text())
        for key, value in overrides.items():
            set_path(cfg, key, value)
        (b / "config.json").write_text(json.dumps(cfg, indent=2))
        return b

    def config(self, bundle: Path) -> dict[str, Any]:
        return json.loads((bundle / "config.json").read_text())

    def write_config(self, bundle: Path, cfg: dict[str, Any]) -> None:
        (bundle / "config.json").write_text(json.dumps(cfg, indent=2))

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60,
                 check: bool = False, **kw: Any) -> subprocess.CompletedProcess[str]:
        # Files, not pipes: a detached container inherits stdout/stderr and would
        # hold a pipe open long after pyrunc exits (runc behaves the same).
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run([*self.cmd, "--root", str(self.root), *args], input=input,
                               stdout=out, stderr=err, text=True, timeout=timeout, **kw)
            out.seek(0)
            err.seek(0)
            p.stdout, p.stderr = out.read(), err.read()
        if check and p.returncode != 0:
            raise AssertionError(f"pyrunc {' '.join(args)} failed ({p.returncode}): "
                                 f"{p.stderr.strip()}")
        return p

    def state(self, cid: str) -> dict[str, Any]:
        p = self("state", cid, check=True)
        return json.loads(p.stdout)

    def cleanup(self) -> None:
        if self.root.exists():
            for cid in os.listdir(self.root):
                self("delete", "-f", cid)


_LOGFMT = re.compile(r'^time="[^"]*" level=(\w+) msg="((?:[^"\\]|\\.)*)"$')


def error_lines(stderr: str) -> list[str]:
    """The messages of pyrunc's stderr lines, logfmt unescaped (runc's format)."""
    out = []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        m = _LOGFMT.match(line)
        if m:
            out.append(m.group(2).replace('\\"', '"').replace("\\n", "\n")
                       .replace("\\\\", "\\"))
        else:
            out.append(line)
    return out


def set_path(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.replace("__", ".").split(".")
    cur = cfg
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    if value is None:
        cur.pop(parts[-1], None)
    else:
        cur[parts[-1]] = value


# ---- leak checks ----------------------------------------------------------------
def _mounts_mentioning(text: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split(" ")[4] for line in f if text in line]


def _procs_in(tmp: Path, token: str) -> list[str]:
    out = []
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            root = os.readlink(f"/proc/{pid}/root")
            with open(f"/proc/{pid}/cgroup") as f:
                cg = f.read()
        except OSError:
            continue
        if root.startswith(str(tmp)) or token in cg:
            out.append(pid)
    return out


def _cgroups_named(token: str) -> list[str]:
    found = []
    base = Path("/sys/fs/cgroup")
    for dirpath, dirnames, _ in os.walk(base):
        depth = Path(dirpath).relative_to(base).parts
        if len(depth) >= 5:
            dirnames[:] = []
            continue
        for d in dirnames:
            if token in d:
                found.append(os.path.join(dirpath, d))
    return found


def leaks(rt: Runtime) -> list[str]:
    problems = []
    for _ in range(50):  # processes may take a moment to be reaped
        problems = []
        if m := _mounts_mentioning(str(rt.tmp)):
            problems.append(f"mounts left: {m}")
        if p := _procs_in(rt.tmp, rt.token):
            problems.append(f"processes left: {p}")
        if c := _cgroups_named(rt.token):
            problems.append(f"cgroups left: {c}")
        if n := [d for d in os.listdir("/sys/class/net") if rt.token[:6] in d]:
            problems.append(f"network devices left: {n}")
        if rt.root.exists() and (left := os.listdir(rt.root)):
            problems.append(f"state dirs left: {left}")
        if not problems:
            return []
        time.sleep(0.1)
    return problems


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    """A pyrunc runtime for one integration test, checked for leaks afterwards."""
    if os.geteuid() != 0:
        pytest.skip("integration tests run as root")
    r = Runtime(tmp_path)
    yield r
    found_before_cleanup = leaks_quick(r)
    r.cleanup()
    left = leaks(r)
    assert not left, f"test leaked: {left}"
    assert not found_before_cleanup, f"test left containers behind: {found_before_cleanup}"


def leaks_quick(rt: Runtime) -> list[str]:
    return os.listdir(rt.root) if rt.root.exists() else []


@pytest.fixture
def busybox(rt: Runtime) -> Path:
    return rt.bundle()
