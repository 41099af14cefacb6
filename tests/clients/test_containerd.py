"""containerd 1.6 (`ctr run --runc-binary`) driving runc and pyrunc through the
io.containerd.runc.v2 shim: every scenario runs on both, side by side."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from .conftest import IMAGE, Containerd, call_failed, need, run_in_pty, wait_for

pytestmark = [need("containerd"), need("ctr")]

TRAP = "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done"


@pytest.fixture
def ctd(containerd: Containerd, request: pytest.FixtureRequest) -> Iterator[Containerd]:
    yield containerd
    left = containerd.tasks() + containerd.containers()
    containerd.remove_all()
    assert call_failed(request) or not left, f"test left containers behind: {left}"


def cid() -> str:
    return f"c{uuid.uuid4().hex[:10]}"


def ctr_run(ctd: Containerd, binary: str, *args: str,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return ctd.ctr("run", "--rm", *ctd.run_flags(binary), IMAGE, cid(), *args,
                   timeout=timeout)


def start_detached(ctd: Containerd, binary: str, *args: str) -> str:
    name = cid()
    p = ctd.ctr("run", "-d", *ctd.run_flags(binary), IMAGE, name, *args)
    if p.returncode != 0:
        remove(ctd, name)  # a failed task leaves its container record behind
    assert p.returncode == 0, p.stderr
    return name


def remove(ctd: Containerd, name: str) -> None:
    ctd.ctr("tasks", "kill", "-s", "SIGKILL", name)
    ctd.ctr("tasks", "delete", "-f", name)
    ctd.ctr("containers", "rm", name)


def test_run_and_print(ctd: Containerd, runtime: tuple[str, str]) -> None:
    p = ctr_run(ctd, runtime[1], "echo", "hello from", runtime[0])
    assert (p.returncode, p.stdout) == (0, f"hello from {runtime[0]}\n"), p.stderr


def test_exit_code(ctd: Containerd, runtime: tuple[str, str]) -> None:
    p = ctr_run(ctd, runtime[1], "sh", "-c", "exit 3")
    assert p.returncode == 3, p.stderr


def test_missing_command(ctd: Containerd, runtime: tuple[str, str]) -> None:
    p = ctr_run(ctd, runtime[1], "nosuchcmd")
    assert p.returncode != 0
    # The shim forwards the runtime's own error text to the client.
    assert "nosuchcmd" in p.stderr and "not found" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_exec(ctd: Containerd, runtime: tuple[str, str]) -> None:
    name = start_detached(ctd, runtime[1], "sleep", "300")
    try:
        p = ctd.exec("--exec-id", "e1", name, "echo", "exec output")
        assert (p.returncode, p.stdout) == (0, "exec output\n"), p.stderr
        p = ctd.exec("--exec-id", "e2", name, "sh", "-c", "exit 5")
        assert p.returncode == 5, p.stderr
        p = ctd.exec("--exec-id", "e3", name, "sh", "-c", "read x; echo got $x", input="line\n")
        assert (p.returncode, p.stdout) == (0, "got line\n"), p.stderr
        rc, out = run_in_pty(["ctr", "--address", str(ctd.sock), "--namespace", ctd.ns,
                              "tasks", "exec", "--fifo-dir", ctd.fifo_dir, "-t",
                              "--exec-id", "e4", name,
                              "sh", "-c", "tty; [ -t 0 ] && echo stdin-is-tty"])
        assert rc == 0, out
        assert "/dev/pts/" in out and "stdin-is-tty" in out, out
        p = ctd.exec("--exec-id", "e5", name, "nosuchcmd")
        assert p.returncode != 0 and "nosuchcmd" in p.stderr, p.stderr
    finally:
        remove(ctd, name)


def test_ps(ctd: Containerd, runtime: tuple[str, str]) -> None:
    name = start_detached(ctd, runtime[1], "sleep", "300")
    try:
        p = ctd.ctr("tasks", "ps", name)
        assert p.returncode == 0, p.stderr
        pids = [line.split()[0] for line in p.stdout.splitlines()[1:]]
        assert len(pids) == 1 and pids[0].isdigit(), p.stdout
        task = ctd.ctr("tasks", "ls").stdout
        assert f"{name} " in task and pids[0] in task and "RUNNING" in task, task
    finally:
        remove(ctd, name)


def test_pause_resume(ctd: Containerd, runtime: tuple[str, str]) -> None:
    name = start_detached(ctd, runtime[1], "sleep", "300")
    try:
        def status() -> str:
            line = [x for x in ctd.ctr("tasks", "ls").stdout.splitlines() if x.startswith(name)]
            return line[0].split()[-1] if line else ""
        p = ctd.ctr("tasks", "pause", name)
        assert p.returncode == 0, p.stderr
        assert status() == "PAUSED"
        p = ctd.ctr("tasks", "resume", name)
        assert p.returncode == 0, p.stderr
        assert status() == "RUNNING"
        p = ctd.exec("--exec-id", "e1", name, "echo", "alive")
        assert p.stdout == "alive\n", p.stderr
    finally:
        remove(ctd, name)


def test_stop_by_sigterm_with_trap(ctd: Containerd, runtime: tuple[str, str]) -> None:
    name = cid()
    with open("/dev/null") as devnull:
        client = subprocess.Popen(
            ["ctr", "--address", str(ctd.sock), "--namespace", ctd.ns, "run", "--rm",
             *ctd.run_flags(runtime[1]), IMAGE, name, "sh", "-c", TRAP],
            stdin=devnull, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None
        assert client.stdout.readline() == "ready\n"
        p = ctd.ctr("tasks", "kill", name)  # SIGTERM by default
        assert p.returncode == 0, p.stderr
        out, err = client.communicate(timeout=30)
        assert (client.returncode, out) == (7, "got TERM\n"), err
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        remove(ctd, name)


def test_kill_and_delete(ctd: Containerd, runtime: tuple[str, str]) -> None:
    name = start_detached(ctd, runtime[1], "sleep", "300")
    try:
        p = ctd.exec("-d", "--exec-id", "bg", name, "sleep", "300")
        assert p.returncode == 0, p.stderr
        wait_for(lambda: len(ctd.ctr("tasks", "ps", name).stdout.splitlines()) == 3,
                 what="two processes")
        # kill --all: every process of the container gets the signal.
        p = ctd.ctr("tasks", "kill", "--all", "-s", "SIGKILL", name)
        assert p.returncode == 0, p.stderr
        wait_for(lambda: "STOPPED" in ctd.ctr("tasks", "ls").stdout, what="task stopped")
        p = ctd.ctr("tasks", "delete", name)
        assert p.returncode == 0, p.stderr
        assert name not in ctd.tasks()
        p = ctd.ctr("containers", "rm", name)
        assert p.returncode == 0, p.stderr
    finally:
        remove(ctd, name)


def test_force_delete_running(ctd: Containerd, runtime: tuple[str, str]) -> None:
    name = start_detached(ctd, runtime[1], "sleep", "300")
    try:
        p = ctd.ctr("tasks", "delete", "-f", name)
        assert p.returncode == 0, p.stderr
        assert name not in ctd.tasks()
    finally:
        remove(ctd, name)
