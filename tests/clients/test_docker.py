"""dockerd 20.10 on the session's containerd, `docker run --runtime NAME` with
NAME registered by daemon.json "runtimes" (runc is docker's built-in one)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import IMAGE, Docker, call_failed, need, run_in_pty, wait_for

pytestmark = [need("dockerd"), need("docker"), need("containerd")]

TRAP = "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done"


@pytest.fixture
def dk(docker: Docker, request: pytest.FixtureRequest) -> Iterator[Docker]:
    yield docker
    left = docker.docker("ps", "-aq").stdout.split()
    docker.remove_all()
    assert call_failed(request) or not left, f"test left containers behind: {left}"


def name() -> str:
    return f"d{uuid.uuid4().hex[:10]}"


def drun(dk: Docker, rt: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return dk.docker("run", "--rm", "--network", "none", "--runtime", rt, *args, timeout=timeout)


def detached(dk: Docker, rt: str, *cmd: str) -> str:
    n = name()
    p = dk.docker("run", "-d", "--network", "none", "--runtime", rt, "--name", n, IMAGE, *cmd)
    if p.returncode != 0:
        dk.docker("rm", "-f", n)  # a failed start leaves a "Created" container
    assert p.returncode == 0, p.stderr
    return n


def test_run_and_print(dk: Docker, runtime: tuple[str, str]) -> None:
    p = drun(dk, runtime[0], IMAGE, "echo", "hello from", runtime[0])
    assert (p.returncode, p.stdout) == (0, f"hello from {runtime[0]}\n"), p.stderr


def test_exit_code(dk: Docker, runtime: tuple[str, str]) -> None:
    p = drun(dk, runtime[0], IMAGE, "sh", "-c", "exit 3")
    assert p.returncode == 3, p.stderr


def test_missing_command(dk: Docker, runtime: tuple[str, str]) -> None:
    p = drun(dk, runtime[0], IMAGE, "nosuchcmd")
    # docker maps "command not found" to 127 by matching the runtime's text.
    assert p.returncode == 127, p.stderr
    assert "nosuchcmd" in p.stderr and "not found" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr, p.stderr


def test_exec(dk: Docker, runtime: tuple[str, str]) -> None:
    n = detached(dk, runtime[0], "sleep", "300")
    p = dk.docker("exec", n, "echo", "exec output")
    assert (p.returncode, p.stdout) == (0, "exec output\n"), p.stderr
    p = dk.docker("exec", n, "sh", "-c", "exit 5")
    assert p.returncode == 5, p.stderr
    p = dk.docker("exec", "-i", n, "sh", "-c", "read x; echo got $x", input="line\n")
    assert (p.returncode, p.stdout) == (0, "got line\n"), p.stderr
    rc, out = run_in_pty(["docker", "-H", f"unix://{dk.sock}", "exec", "-it", n,
                          "sh", "-c", "tty; [ -t 0 ] && echo stdin-is-tty"])
    assert rc == 0, out
    assert "/dev/pts/" in out and "stdin-is-tty" in out, out
    p = dk.docker("exec", n, "nosuchcmd")
    assert p.returncode == 126 or p.returncode == 127, p.stderr
    assert "nosuchcmd" in p.stderr + p.stdout, p.stderr
    dk.docker("rm", "-f", n)


def test_top(dk: Docker, runtime: tuple[str, str]) -> None:
    n = detached(dk, runtime[0], "sleep", "300")
    p = dk.docker("top", n)
    assert p.returncode == 0, p.stderr
    assert "sleep 300" in p.stdout, p.stdout
    dk.docker("rm", "-f", n)


def test_pause_resume(dk: Docker, runtime: tuple[str, str]) -> None:
    n = detached(dk, runtime[0], "sleep", "300")
    assert dk.docker("pause", n).returncode == 0
    st = dk.docker("inspect", "-f", "{{.State.Status}}", n).stdout.strip()
    assert st == "paused"
    p = dk.docker("unpause", n)
    assert p.returncode == 0, p.stderr
    assert dk.docker("exec", n, "echo", "alive").stdout == "alive\n"
    dk.docker("rm", "-f", n)


def test_update(dk: Docker, runtime: tuple[str, str]) -> None:
    n = detached(dk, runtime[0], "sleep", "300")
    full = dk.docker("inspect", "-f", "{{.Id}}", n).stdout.strip()
    p = dk.docker("update", "--memory", "64m", "--memory-swap", "128m",
                  "--cpu-quota", "50000", n)
    assert p.returncode == 0, p.stderr
    cg = Path("/sys/fs/cgroup")
    parent = f"{dk.cgroup_parent}/{full}"
    assert (cg / "memory" / parent / "memory.limit_in_bytes").read_text() == "67108864\n"
    assert (cg / "cpu" / parent / "cpu.cfs_quota_us").read_text() == "50000\n"
    dk.docker("rm", "-f", n)


def test_default_resources(dk: Docker, runtime: tuple[str, str]) -> None:
    # docker's config.json carries cpu.shares 0 and blockIO.weight 0, which
    # mean "unset": the cgroup keeps the kernel defaults, as with runc.
    n = detached(dk, runtime[0], "sleep", "300")
    full = dk.docker("inspect", "-f", "{{.Id}}", n).stdout.strip()
    cpu = Path("/sys/fs/cgroup/cpu") / dk.cgroup_parent / full / "cpu.shares"
    assert cpu.read_text() == "1024\n"
    dk.docker("rm", "-f", n)


def test_stop_by_sigterm_with_trap(dk: Docker, runtime: tuple[str, str]) -> None:
    n = detached(dk, runtime[0], "sh", "-c", TRAP)
    wait_for(lambda: "ready" in dk.docker("logs", n).stdout, what="trap installed")
    t0 = time.monotonic()
    p = dk.docker("stop", "-t", "20", n)
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - t0 < 10, "SIGTERM did not reach the trap"
    assert dk.docker("inspect", "-f", "{{.State.ExitCode}}", n).stdout.strip() == "7"
    assert "got TERM" in dk.docker("logs", n).stdout
    p = dk.docker("rm", n)
    assert p.returncode == 0, p.stderr


def test_kill_and_rm(dk: Docker, runtime: tuple[str, str]) -> None:
    n = detached(dk, runtime[0], "sleep", "300")
    p = dk.docker("kill", n)
    assert p.returncode == 0, p.stderr
    wait_for(lambda: dk.docker("inspect", "-f", "{{.State.Running}}", n).stdout.strip()
             == "false", what="container stopped")
    assert dk.docker("inspect", "-f", "{{.State.ExitCode}}", n).stdout.strip() == "137"
    assert dk.docker("rm", n).returncode == 0
    m = detached(dk, runtime[0], "sleep", "300")
    p = dk.docker("rm", "-f", m)
    assert p.returncode == 0, p.stderr
    assert dk.docker("ps", "-aq").stdout.strip() == ""
