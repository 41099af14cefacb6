"""Session-scoped client daemons (containerd, dockerd, podman storage), a local
busybox image for each, and the runtime parameter [runc, pyrunc] that every
scenario runs over, side by side."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from . import daemons, image

REPO = Path(__file__).resolve().parents[2]
# PYRUNC_CLIENT_BIN points the tests at another pyrunc build; its basename
# must stay "pyrunc" (podman's runtime_supports_json matches on it).
RUNTIMES = {"runc": "/usr/sbin/runc",
            "pyrunc": os.environ.get("PYRUNC_CLIENT_BIN",
                                     str(REPO / ".venv" / "bin" / "pyrunc"))}
# One token per test session (per xdist worker): containerd namespace, cgroup
# parents and image names carry it, so parallel sessions never collide.
TOKEN = f"pyrc{os.getpid()}"
IMAGE = f"docker.io/library/bb{TOKEN}:latest"
CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
        item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Keep the call-phase report on the item: the per-test leftover checks only
    # fail a test that otherwise passed (a failed one already reports why).
    report = yield
    if call.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


def call_failed(request: pytest.FixtureRequest) -> bool:
    return request.node.stash.get(CALL_FAILED, False)


def need(binary: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(binary) is None, reason=f"{binary} is not installed")


@pytest.fixture(params=sorted(RUNTIMES), ids=sorted(RUNTIMES))
def runtime(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(name, absolute path) of the OCI runtime under test."""
    name = str(request.param)
    return name, RUNTIMES[name]


def run(cmd: list[str], input: str | None = None, timeout: float = 60,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # Files, not pipes: a shim or conmon may inherit them and outlive the client.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.run(cmd, input=input, stdout=out, stderr=err, text=True,
                           timeout=timeout, env=env,
                           stdin=None if input is not None else subprocess.DEVNULL)
        out.seek(0)
        err.seek(0)
        p.stdout, p.stderr = out.read(), err.read()
    return p


def run_in_pty(cmd: list[str], timeout: float = 30,
               env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run CMD with a pseudo-terminal as its stdio (clients' -t needs one)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        rc = proc.wait(max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return rc, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


def wait_for(pred: object, timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# Made by the clients whatever their configuration says: containerd 1.6 shim
# sockets, dockerd's plugin dir, podman 4.3's blob-info cache and network run dir.
HOST_PATHS = ("/run/containerd", "/run/containerd/s", "/run/docker", "/run/docker/plugins",
              "/var/lib/containers", "/var/lib/containers/cache",
              "/var/lib/containers/cache/blob-info-cache-v1.boltdb",
              "/run/containers", "/run/containers/networks")


@pytest.fixture(scope="session")
def host_leftovers() -> Iterator[None]:
    """Removes the HOST_PATHS that did not exist before, once the last client
    session (of concurrent xdist workers) ends; daemons are stopped by then."""
    host = daemons.HostLeftovers(*HOST_PATHS)
    host.enter()
    try:
        yield
    finally:
        host.leave()


@pytest.fixture(scope="session")
def images() -> Iterator[dict[str, Path]]:
    """rootfs/, layer.tar (for `import`) and oci.tar (OCI layout, for ctr)."""
    base = daemons.short_tmpdir("img")
    try:
        rootfs = image.build_rootfs(base)
        layer = image.rootfs_tar(rootfs, base / "layer.tar")
        yield {"rootfs": rootfs, "layer": layer,
               "oci": image.oci_archive(layer, base / "oci.tar", IMAGE)}
    finally:
        shutil.rmtree(base, ignore_errors=True)


class Containerd:
    """A private containerd: own config, root, state and socket under BASE."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock = base / "c.sock"
        self.ns = TOKEN
        # Keep ctr's FIFOs and runc's state dir (default /run/containerd/...)
        # under BASE too; pass them with run_flags() and fifo_flags().
        self.fifo_dir = str(base / "fifo")
        self.runc_root = str(base / "runc")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        b = self.base
        (b / "config.toml").write_text(f"""version = 2
root = "{b}/root"
state = "{b}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{b}/opt"
""")
        self.proc = daemons.start(
            ["containerd", "--config", str(b / "config.toml")], b / "containerd.log",
            lambda: self.sock.exists() and self.ctr("version").returncode == 0, "containerd")

    def ctr(self, *args: str, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run(["ctr", "--address", str(self.sock), "--namespace", self.ns, *args],
                   input=input, timeout=timeout)

    def run_flags(self, binary: str) -> list[str]:
        """`ctr run` flags: the runtime binary and where its state and FIFOs go."""
        return ["--runc-binary", binary, "--runc-root", self.runc_root,
                "--fifo-dir", self.fifo_dir]

    def exec(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.ctr("tasks", "exec", "--fifo-dir", self.fifo_dir, *args, input=input)

    def tasks(self) -> list[str]:
        return self.ctr("tasks", "ls", "-q").stdout.split()

    def containers(self) -> list[str]:
        return self.ctr("containers", "ls", "-q").stdout.split()

    def remove_all(self) -> None:
        for cid in self.tasks():
            self.ctr("tasks", "kill", "-a", "-s", "SIGKILL", cid)
            self.ctr("tasks", "delete", "-f", cid)
        for cid in self.containers():
            self.ctr("containers", "rm", cid)


@pytest.fixture(scope="session")
def containerd_daemon(host_leftovers: None) -> Iterator[Containerd]:
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.skip("containerd/ctr is not installed")
    daemon = Containerd(daemons.short_tmpdir("ctd"))
    try:
        daemon.start()
        yield daemon
    finally:
        if daemon.proc is not None:
            daemon.remove_all()
            daemons.stop(daemon.proc)
        daemons.remove_tree(daemon.base)
        daemons.remove_cgroups(TOKEN)


@pytest.fixture(scope="session")
def containerd(containerd_daemon: Containerd, images: dict[str, Path]) -> Containerd:
    """The session's containerd with the busybox image imported."""
    if IMAGE not in containerd_daemon.ctr("images", "ls", "-q").stdout.split():
        p = containerd_daemon.ctr("images", "import", str(images["oci"]))
        assert p.returncode == 0, p.stderr
    return containerd_daemon


class Docker:
    def __init__(self, base: Path, ctd: Containerd) -> None:
        self.base = base
        self.sock = base / "d.sock"
        self.ctd = ctd
        self.cgroup_parent = f"{TOKEN}d"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        b = self.base
        cmd = ["dockerd", "--iptables=false", "--ip-masq=false", "--bridge=none",
               "--data-root", str(b / "data"), "--exec-root", str(b / "x"),
               "-H", f"unix://{self.sock}", "--pidfile", str(b / "dockerd.pid"),
               "--containerd", str(self.ctd.sock), "--containerd-namespace", f"{TOKEN}d",
               "--containerd-plugins-namespace", f"{TOKEN}dp", "--storage-driver", "vfs",
               "--cgroup-parent", f"/{self.cgroup_parent}", "--exec-opt",
               "native.cgroupdriver=cgroupfs", "--userland-proxy=false",
               "--config-file", str(b / "daemon.json")]
        (b / "daemon.json").write_text(json.dumps(
            {"runtimes": {name: {"path": path} for name, path in RUNTIMES.items()
                          if name != "runc"},
             # Its libtrust key would go to /etc/docker/key.json.
             "deprecated-key-path": str(b / "key.json")}))
        env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}")
        self.proc = daemons.start(
            cmd, b / "dockerd.log",
            lambda: self.sock.exists() and self.docker("version").returncode == 0,
            "dockerd", env=env, timeout=60)

    def docker(self, *args: str, input: str | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run(["docker", "-H", f"unix://{self.sock}", *args], input=input,
                   timeout=timeout)

    def remove_all(self) -> None:
        ids = self.docker("ps", "-aq").stdout.split()
        if ids:
            self.docker("rm", "-f", *ids)


@pytest.fixture(scope="session")
def docker(host_leftovers: None, containerd_daemon: Containerd,
           images: dict[str, Path]) -> Iterator[Docker]:
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.skip("dockerd/docker is not installed")
    d = Docker(daemons.short_tmpdir("dkr"), containerd_daemon)
    try:
        d.start()
        p = d.docker("import", "-c", 'CMD ["/bin/sh"]', str(images["layer"]), IMAGE)
        assert p.returncode == 0, p.stderr
        yield d
    finally:
        if d.proc is not None:
            d.remove_all()
            daemons.stop(d.proc, grace=20)
        daemons.remove_tree(d.base)
        daemons.remove_cgroups(d.cgroup_parent)


class Podman:
    """podman with its own storage (vfs), runroot, events log and containers.conf;
    runtimes are given by path, as `podman --runtime PATH`."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.conf = base / "containers.conf"
        self.cgroup_parent = f"{TOKEN}p"
        # podman passes --log-format=json only to runtimes named in
        # runtime_supports_json; the basename of --runtime PATH is the name.
        names = ", ".join(f'"{n}"' for n in ["crun", "runc", "kata", "runsc", "krun", *RUNTIMES])
        tables = "\n".join(f'{n} = ["{p}"]' for n, p in RUNTIMES.items())
        self.conf.write_text(f"""[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{base}/events.log"
tmp_dir = "{base}/tmp"
volume_path = "{base}/volumes"
runtime_supports_json = [{names}]
[engine.runtimes]
{tables}
[network]
network_config_dir = "{base}/networks"
""")
        self.env = dict(os.environ, CONTAINERS_CONF=str(self.conf))
        self.base_cmd = ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"),
                         "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"]

    def podman(self, *args: str, input: str | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run([*self.base_cmd, *args], input=input, timeout=timeout, env=self.env)

    def remove_all(self) -> None:
        self.podman("rm", "-af", "-t", "0")


@pytest.fixture(scope="session")
def podman(host_leftovers: None, images: dict[str, Path]) -> Iterator[Podman]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    pm = Podman(daemons.short_tmpdir("pod"))
    try:
        p = pm.podman("import", str(images["layer"]), IMAGE)
        assert p.returncode == 0, p.stderr
        yield pm
    finally:
        pm.remove_all()
        daemons.remove_tree(pm.base)
        daemons.remove_cgroups(pm.cgroup_parent)
