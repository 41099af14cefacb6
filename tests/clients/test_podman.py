"""podman 4.3 with `--runtime PATH` (conmon drives the runtime); its own
storage, runroot and containers.conf (see Podman in conftest.py)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import IMAGE, Podman, call_failed, need, run_in_pty, wait_for

pytestmark = [need("podman"), need("conmon")]

TRAP = "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done"
# No CAP_SYS_RESOURCE on this VM: podman's default (raised) limits would fail.
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@pytest.fixture
def pm(podman: Podman, request: pytest.FixtureRequest) -> Iterator[Podman]:
    yield podman
    left = podman.podman("ps", "-aq").stdout.split()
    podman.remove_all()
    assert call_failed(request) or not left, f"test left containers behind: {left}"


def name() -> str:
    return f"p{uuid.uuid4().hex[:10]}"


def opts(pm: Podman) -> list[str]:
    return ["--network", "none", "--cgroup-parent", f"/{pm.cgroup_parent}", *LIMITS]


def prun(pm: Podman, rt: str, *args: str) -> subprocess.CompletedProcess[str]:
    return pm.podman("--runtime", rt, "run", "--rm", *opts(pm), *args)


def detached(pm: Podman, rt: str, *cmd: str) -> str:
    n = name()
    p = pm.podman("--runtime", rt, "run", "-d", "--name", n, *opts(pm), IMAGE, *cmd)
    if p.returncode != 0:
        pm.podman("rm", "-f", "-t", "0", n)  # a failed start leaves a "Created" container
    assert p.returncode == 0, p.stderr
    return n


def test_run_and_print(pm: Podman, runtime: tuple[str, str]) -> None:
    p = prun(pm, runtime[1], IMAGE, "echo", "hello from", runtime[0])
    assert (p.returncode, p.stdout) == (0, f"hello from {runtime[0]}\n"), p.stderr


def test_exit_code(pm: Podman, runtime: tuple[str, str]) -> None:
    p = prun(pm, runtime[1], IMAGE, "sh", "-c", "exit 3")
    assert p.returncode == 3, p.stderr


def test_missing_command(pm: Podman, runtime: tuple[str, str]) -> None:
    p = prun(pm, runtime[1], IMAGE, "nosuchcmd")
    # podman maps the runtime's "not found" error text to 127.
    assert p.returncode == 127, p.stderr
    assert "nosuchcmd" in p.stderr and "not found" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr, p.stderr


def test_exec(pm: Podman, runtime: tuple[str, str]) -> None:
    n = detached(pm, runtime[1], "sleep", "300")
    p = pm.podman("exec", n, "echo", "exec output")
    assert (p.returncode, p.stdout) == (0, "exec output\n"), p.stderr
    p = pm.podman("exec", n, "sh", "-c", "exit 5")
    assert p.returncode == 5, p.stderr
    p = pm.podman("exec", "-i", n, "sh", "-c", "read x; echo got $x", input="line\n")
    assert (p.returncode, p.stdout) == (0, "got line\n"), p.stderr
    rc, out = run_in_pty([*pm.base_cmd, "exec", "-it", n,
                          "sh", "-c", "tty; [ -t 0 ] && echo stdin-is-tty"], env=pm.env)
    assert rc == 0, out
    assert "/dev/pts/" in out and "stdin-is-tty" in out, out
    p = pm.podman("exec", n, "nosuchcmd")
    assert p.returncode == 127, p.stderr
    assert "nosuchcmd" in p.stderr and "Traceback" not in p.stderr, p.stderr
    pm.podman("rm", "-f", "-t", "0", n)


def test_top(pm: Podman, runtime: tuple[str, str]) -> None:
    n = detached(pm, runtime[1], "sleep", "300")
    p = pm.podman("top", n)
    assert p.returncode == 0, p.stderr
    assert "sleep 300" in p.stdout, p.stdout
    pm.podman("rm", "-f", "-t", "0", n)


def test_pause_resume(pm: Podman, runtime: tuple[str, str]) -> None:
    n = detached(pm, runtime[1], "sleep", "300")
    p = pm.podman("pause", n)
    assert p.returncode == 0, p.stderr
    assert pm.podman("inspect", "-f", "{{.State.Status}}", n).stdout.strip() == "paused"
    p = pm.podman("unpause", n)
    assert p.returncode == 0, p.stderr
    assert pm.podman("exec", n, "echo", "alive").stdout == "alive\n"
    pm.podman("rm", "-f", "-t", "0", n)


def test_update(pm: Podman, runtime: tuple[str, str]) -> None:
    n = detached(pm, runtime[1], "sleep", "300")
    full = pm.podman("inspect", "-f", "{{.Id}}", n).stdout.strip()
    p = pm.podman("update", "--memory", "64m", "--cpu-quota", "50000", n)
    if p.returncode != 0 and "unknown command" in p.stderr + p.stdout:
        pm.podman("rm", "-f", "-t", "0", n)
        pytest.skip("this podman has no `update` command")
    assert p.returncode == 0, p.stderr
    cg = Path("/sys/fs/cgroup")
    path = f"{pm.cgroup_parent}/libpod-{full}"
    assert (cg / "memory" / path / "memory.limit_in_bytes").read_text() == "67108864\n"
    assert (cg / "cpu" / path / "cpu.cfs_quota_us").read_text() == "50000\n"
    pm.podman("rm", "-f", "-t", "0", n)


def test_default_resources(pm: Podman, runtime: tuple[str, str]) -> None:
    # Unset resources leave the kernel defaults in the container's cgroup.
    n = detached(pm, runtime[1], "sleep", "300")
    full = pm.podman("inspect", "-f", "{{.Id}}", n).stdout.strip()
    cpu = Path("/sys/fs/cgroup/cpu") / pm.cgroup_parent / f"libpod-{full}" / "cpu.shares"
    assert cpu.read_text() == "1024\n"
    pm.podman("rm", "-f", "-t", "0", n)


def test_stop_by_sigterm_with_trap(pm: Podman, runtime: tuple[str, str]) -> None:
    n = detached(pm, runtime[1], "sh", "-c", TRAP)
    wait_for(lambda: "ready" in pm.podman("logs", n).stdout, what="trap installed")
    t0 = time.monotonic()
    p = pm.podman("stop", "-t", "20", n)
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - t0 < 10, "SIGTERM did not reach the trap"
    assert pm.podman("inspect", "-f", "{{.State.ExitCode}}", n).stdout.strip() == "7"
    assert "got TERM" in pm.podman("logs", n).stdout
    p = pm.podman("rm", n)
    assert p.returncode == 0, p.stderr


def test_kill_and_rm(pm: Podman, runtime: tuple[str, str]) -> None:
    n = detached(pm, runtime[1], "sleep", "300")
    p = pm.podman("kill", n)
    assert p.returncode == 0, p.stderr
    wait_for(lambda: pm.podman("inspect", "-f", "{{.State.Running}}", n).stdout.strip()
             == "false", what="container stopped")
    assert pm.podman("inspect", "-f", "{{.State.ExitCode}}", n).stdout.strip() == "137"
    assert pm.podman("rm", n).returncode == 0
    m = detached(pm, runtime[1], "sleep", "300")
    p = pm.podman("rm", "-f", "-t", "0", m)
    assert p.returncode == 0, p.stderr
    assert pm.podman("ps", "-aq").stdout.strip() == ""


def test_runc_named_symlink(pm: Podman, runtime: tuple[str, str]) -> None:
    # The other supported set-up: a symlink named `runc` (in podman's default
    # runtime_supports_json) gets JSON logs, so the error text arrives clean.
    link_dir = pm.base / f"as-runc-{runtime[0]}"
    link_dir.mkdir(exist_ok=True)
    link = link_dir / "runc"
    if not link.is_symlink():
        link.symlink_to(runtime[1])
    p = prun(pm, str(link), IMAGE, "nosuchcmd")
    assert p.returncode == 127, p.stderr
    assert "nosuchcmd" in p.stderr and "level=error" not in p.stderr, p.stderr
    p = prun(pm, str(link), IMAGE, "echo", "via runc symlink")
    assert (p.returncode, p.stdout) == (0, "via runc symlink\n"), p.stderr
