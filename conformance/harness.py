"""Driving a runtime binary: the shared rootfs, per-check bundles, ids and clean-up."""

from __future__ import annotations

import copy
import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import tempfile
import termios
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.registry import Fail, Skip

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SPEC_DIR = REPO.parent / "shared" / "oci-runtime-spec"
BUILD_ROOTFS = REPO / "bundles" / "build-rootfs.sh"
CMD_TIMEOUT = 30.0

# Capabilities of the base process: docker's default set, enough for busybox.
BASE_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]


def base_config(rootfs: Path) -> dict[str, Any]:
    """The config every check mutates: close to `runc spec`, without cgroup mounts."""
    return {
        # 1.0.2 rather than 1.3.0: older runtimes refuse versions they do not know;
        # the check `oci-version-1.3.0` tests the current version on its own.
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", "true"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {k: list(BASE_CAPS) for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": False,
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "conformance",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777"],
            },
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        },
    }


@dataclass
class Proc:
    """One finished runtime command."""

    argv: list[str]
    rc: int
    out: str
    err: str

    def tail(self) -> str:
        text = (self.err.strip() or self.out.strip()).splitlines()
        if not text:
            return f"exit {self.rc}, no output"
        # runc's logrus lines: keep the message, drop time= and level=
        last = re.sub(r'^time="[^"]*" level=\w+ msg=', "", text[-1])
        return last[:300]


class Session:
    """Per-run state shared by all checks: the runtime argv prefix and one prepared rootfs."""

    def __init__(self, runtime: list[str], keep: bool) -> None:
        self.runtime = runtime
        self.keep = keep
        self.tmp = Path(tempfile.mkdtemp(prefix="oci-conformance-"))
        self.tmp.chmod(0o755)  # a user-namespaced container root must reach the rootfs
        self.rootfs = self.tmp / "rootfs"
        self.probe = False
        self.probe_error = ""

    def prepare(self) -> None:
        """Build the busybox rootfs once; every bundle points at it (absolute root.path)."""
        if BUILD_ROOTFS.exists():
            r = subprocess.run(
                ["sh", str(BUILD_ROOTFS), str(self.tmp)], capture_output=True, text=True, timeout=60
            )
            if r.returncode != 0:
                raise SystemExit(f"conformance: building rootfs failed: {r.stderr.strip()}")
        else:
            self._own_rootfs()
        for d in ("out", "hooklog", "mnt", "ro"):
            (self.rootfs / d).mkdir(exist_ok=True)
        # A path that exists only inside the container, for startContainer hooks.
        (self.rootfs / "conformance-hookbin").mkdir(exist_ok=True)
        os.link(self.rootfs / "bin" / "busybox", self.rootfs / "conformance-hookbin" / "busybox")
        gcc = shutil.which("gcc")
        if gcc is None:
            self.probe_error = "gcc not found: the C probe cannot be built"
            return
        r = subprocess.run(
            [
                gcc,
                "-static",
                "-O1",
                "-o",
                str(self.rootfs / "bin" / "probe"),
                str(HERE / "probe.c"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.probe = r.returncode == 0
        if not self.probe:
            self.probe_error = "gcc -static probe.c failed: " + r.stderr.strip()[-200:]

    def _own_rootfs(self) -> None:
        busybox = shutil.which("busybox") or "/bin/busybox"
        bindir = self.rootfs / "bin"
        bindir.mkdir(parents=True)
        shutil.copy2(busybox, bindir / "busybox")
        for name in (
            "sh",
            "cat",
            "ls",
            "echo",
            "id",
            "mkdir",
            "stat",
            "touch",
            "hostname",
            "grep",
            "sleep",
            "readlink",
            "umask",
            "true",
            "false",
            "uname",
            "test",
        ):
            (bindir / name).symlink_to("busybox")
        for d in ("proc", "sys", "dev", "tmp", "etc", "root"):
            (self.rootfs / d).mkdir()
        (self.rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (self.rootfs / "etc" / "group").write_text("root:x:0:\n")

    def close(self) -> None:
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass
class Ctx:
    """What one check sees: its own tmp dir, --root dir, bundles and container ids."""

    session: Session
    name: str
    tmp: Path = field(init=False)
    root: Path = field(init=False)
    ids: list[str] = field(default_factory=list)
    pids: dict[int, str] = field(default_factory=dict)  # container pid -> its start time
    _n: int = 0
    last_bundle: Path = field(init=False)

    def __post_init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=self.session.tmp))
        self.tmp.chmod(0o755)
        self.root = self.tmp / "state"

    # -- configs and bundles ---------------------------------------------------------
    @property
    def rootfs(self) -> Path:
        return self.session.rootfs

    def config(self, script: str | None = None) -> dict[str, Any]:
        cfg = copy.deepcopy(base_config(self.rootfs))
        if script is not None:
            cfg["process"]["args"] = ["sh", "-c", script]
        return cfg

    def outdir(self, cfg: dict[str, Any], dest: str = "/out") -> Path:
        """Bind a fresh host dir at `dest` in the container, for files the process writes."""
        host = self.tmp / f"out{self._next()}"
        host.mkdir()
        cfg["mounts"].append(
            {"destination": dest, "type": "bind", "source": str(host), "options": ["rbind", "rw"]}
        )
        return host

    def bundle(self, cfg: dict[str, Any]) -> Path:
        b = self.tmp / f"bundle{self._next()}"
        b.mkdir()
        (b / "config.json").write_text(json.dumps(cfg, indent=1))
        return b

    def new_id(self) -> str:
        return f"oci-{self.name[:30]}-{uuid.uuid4().hex[:10]}"

    def _next(self) -> int:
        self._n += 1
        return self._n

    def need_probe(self) -> None:
        if not self.session.probe:
            raise Skip(self.session.probe_error)

    # -- runtime commands -------------------------------------------------------------
    def rt(
        self, *args: str, timeout: float = CMD_TIMEOUT, root: bool = True, tty: bool = False
    ) -> Proc:
        """Run `RUNTIME --root ROOT args...` with stdio in files (create leaves init
        holding its stdio, so pipes would never reach EOF), or on a new pty."""
        if tty:
            return self._rt_tty(list(args), timeout)
        n = self._next()
        out, err = self.tmp / f"cmd{n}.out", self.tmp / f"cmd{n}.err"
        argv = [*self.session.runtime, *(["--root", str(self.root)] if root else []), *args]
        with open(out, "wb") as fo, open(err, "wb") as fe:
            p = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=fo,
                stderr=fe,
                cwd=self.tmp,
                start_new_session=True,
            )
            try:
                rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                raise Fail(f"`{' '.join(args[:2])}` did not finish within {timeout:.0f}s") from None
        return Proc(argv, rc, _read(out), _read(err))

    def _rt_tty(self, args: list[str], timeout: float) -> Proc:
        """The runtime with a pty as its controlling terminal and stdio (for terminal: true)."""
        master, slave = pty.openpty()
        argv = [*self.session.runtime, "--root", str(self.root), *args]

        def setctty() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        try:
            p = subprocess.Popen(
                argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=self.tmp,
                start_new_session=True,
                preexec_fn=setctty,
            )
        finally:
            os.close(slave)
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    try:
                        data = os.read(master, 4096)
                    except OSError:  # EIO: every slave fd is closed
                        break
                    if not data:
                        break
                    chunks.append(data)
                elif p.poll() is not None:
                    break
            else:
                os.killpg(p.pid, signal.SIGKILL)
        finally:
            os.close(master)
        rc = p.wait()
        text = b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
        return Proc(argv, rc, text, text)

    def run(self, cfg: dict[str, Any], timeout: float = CMD_TIMEOUT, tty: bool = False) -> Proc:
        """`run` in the foreground; the container's stdout is the command's stdout."""
        cid = self.new_id()
        self.ids.append(cid)
        return self.rt("run", "--bundle", str(self.bundle(cfg)), cid, timeout=timeout, tty=tty)

    def run_ok(self, cfg: dict[str, Any], what: str = "run") -> str:
        p = self.run(cfg)
        if p.rc != 0:
            raise Fail(f"{what} failed (exit {p.rc}): {p.tail()}")
        return p.out

    def control(self, cfg: dict[str, Any], what: str) -> None:
        """Run the valid twin of a config an error check feeds the runtime, so that an
        error only counts when the runtime can run the same config without `what`."""
        p = self.run(cfg)
        if p.rc != 0:
            raise Fail(f"control run (same config without {what}) failed too: {p.tail()}")

    def create(self, cfg: dict[str, Any], cid: str | None = None) -> tuple[str, Proc]:
        cid = cid or self.new_id()
        if cid not in self.ids:
            self.ids.append(cid)
        self.last_bundle = self.bundle(cfg)
        p = self.rt("create", "--bundle", str(self.last_bundle), cid)
        return cid, p

    def create_ok(self, cfg: dict[str, Any]) -> str:
        cid, p = self.create(cfg)
        if p.rc != 0:
            raise Fail(f"create failed (exit {p.rc}): {p.tail()}")
        return cid

    def state(self, cid: str) -> dict[str, Any]:
        p = self.rt("state", cid)
        if p.rc != 0:
            raise Fail(f"state {cid} failed (exit {p.rc}): {p.tail()}")
        try:
            st = json.loads(p.out)
        except json.JSONDecodeError:
            raise Fail(f"state output is not JSON: {p.out[:200]!r}") from None
        if not isinstance(st, dict):
            raise Fail("state output is not a JSON object")
        pid = st.get("pid")
        if isinstance(pid, int) and pid > 0 and pid not in self.pids:
            self.pids[pid] = _starttime(pid)
        return st

    def wait_status(self, cid: str, want: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.state(cid)
            if st.get("status") == want:
                return st
            if time.monotonic() > deadline:
                raise Fail(f"status stayed {st.get('status')!r}, expected {want!r}")
            time.sleep(0.05)

    # -- clean-up -----------------------------------------------------------------------
    def cleanup(self) -> None:
        for cid in self.ids:
            try:
                self.rt("delete", "-f", cid, timeout=15)
            except Fail:
                pass
        for pid, started in self.pids.items():
            # A container process that `delete -f` missed; the start time guards
            # against killing an unrelated process that reused the pid.
            if started and _starttime(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if not self.session.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _read(path: Path) -> str:
    return path.read_bytes().decode(errors="replace")


def _starttime(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def host_ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")
