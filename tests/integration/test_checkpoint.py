"""checkpoint and restore through CRIU, through the CLI with real containers.

The round trip needs a criu that works on this kernel: the module probes
`criu check` once and skips those tests with criu's own first error line as the
reason (Debian 12's criu 3.17 fails on kernels >= 6.13). PYRUNC_TEST_CRIU names
another criu binary to use. The error paths run everywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Runtime, error_lines

CRIU = os.environ.get("PYRUNC_TEST_CRIU") or shutil.which("criu") or "criu"
COUNTER = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done"]


def _criu_problem() -> str | None:
    """None if criu can checkpoint here, else criu's own reason."""
    if not shutil.which(CRIU):
        return f"criu ({CRIU}) is not installed"
    p = subprocess.run([CRIU, "check"], capture_output=True, text=True, timeout=60)
    if p.returncode == 0:
        return None
    lines = (p.stdout + p.stderr).splitlines()
    errors = [ln for ln in lines if "Error (" in ln]
    return "criu check fails: " + (errors[0] if errors else (lines or ["(no output)"])[-1])


CRIU_PROBLEM = _criu_problem() if os.geteuid() == 0 else "needs root"
needs_criu = pytest.mark.skipif(CRIU_PROBLEM is not None, reason=str(CRIU_PROBLEM))
criu_fails = pytest.mark.skipif(CRIU_PROBLEM is None or "not installed" in str(CRIU_PROBLEM),
                                reason="criu works here (or is missing): no criu failure to see")


class Stdio:
    """Pipes for a detached container's stdio: criu can dump pipes (runc's tests
    do the same), not the test runner's unlinked temp files."""

    def __init__(self) -> None:
        self.in_r, self.in_w = os.pipe()
        self.out_r, self.out_w = os.pipe()
        self.err_r, self.err_w = os.pipe()
        os.set_blocking(self.err_r, False)

    def run(self, rt: Runtime, *args: str) -> subprocess.CompletedProcess[str]:
        """pyrunc with these pipes as stdio; its stderr is read from the pipe
        (not waited on to close: a detached container holds it open)."""
        p = subprocess.run([*rt.cmd, "--root", str(rt.root), "--criu", CRIU, *args],
                           stdin=self.in_r, stdout=self.out_w, stderr=self.err_w, text=True,
                           timeout=120)
        try:
            p.stderr = os.read(self.err_r, 1 << 16).decode()
        except BlockingIOError:
            p.stderr = ""
        return p

    def close(self) -> None:
        for fd in (self.in_r, self.in_w, self.out_r, self.out_w, self.err_r, self.err_w):
            os.close(fd)


@pytest.fixture
def stdio() -> Iterator[Stdio]:
    s = Stdio()
    yield s
    s.close()


def criu(rt: Runtime, *args: str) -> subprocess.CompletedProcess[str]:
    return rt("--criu", CRIU, *args)


def read_count(bundle: Path) -> int:
    try:
        return int((bundle / "rootfs" / "tmp" / "count").read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def wait_count_above(bundle: Path, n: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while (c := read_count(bundle)) <= n:
        assert time.monotonic() < deadline, f"count stuck at {c} (waiting for > {n})"
        time.sleep(0.05)
    return c


@pytest.fixture
def counter(rt: Runtime, stdio: Stdio) -> Iterator[tuple[Path, str]]:
    """A running container counting into /tmp/count of its writable rootfs."""
    b = rt.bundle(**{"process.args": COUNTER, "root.readonly": False})
    cid = rt.new_id()
    p = stdio.run(rt, "run", "-d", "-b", str(b), cid)
    assert p.returncode == 0, p.stderr
    wait_count_above(b, 3)
    yield b, cid
    rt("delete", "-f", cid)


def only_error(p: subprocess.CompletedProcess[str]) -> str:
    lines = error_lines(p.stderr)
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


def assert_still_counting(rt: Runtime, bundle: Path, cid: str) -> None:
    assert rt.state(cid)["status"] == "running"
    wait_count_above(bundle, read_count(bundle))  # not frozen, not killed


# ---- the round trip (needs a working criu) -----------------------------------------
@needs_criu
def test_checkpoint_then_restore_keeps_counting(rt: Runtime, stdio: Stdio,
                                                counter: tuple[Path, str]) -> None:
    b, cid = counter
    img = rt.tmp / "img"
    p = stdio.run(rt, "checkpoint", "--image-path", str(img), cid)
    assert p.returncode == 0, p.stderr
    # runc's behaviour: the checkpointed container is gone
    assert only_error(rt("state", cid)) == "container does not exist"
    at_dump = read_count(b)
    assert at_dump > 3
    assert json.loads((img / "descriptors.json").read_text())[1].startswith("pipe:")

    pid_file = rt.tmp / "restored.pid"
    p = stdio.run(rt, "restore", "-d", "--image-path", str(img), "-b", str(b),
                  "--pid-file", str(pid_file), cid)
    assert p.returncode == 0, p.stderr
    st = rt.state(cid)
    assert st["status"] == "running"
    assert int(pid_file.read_text()) == st["pid"]
    with open(f"/proc/{st['pid']}/cgroup") as f:  # restored into the container's cgroup
        memory = [ln for ln in f.read().splitlines() if ln.split(":")[1] in ("memory", "")]
    assert memory and all(ln.endswith(f"/{cid}") for ln in memory), memory
    # the process goes on from its count: a fresh start would count from 1 again
    first = read_count(b)
    assert first >= at_dump
    later = wait_count_above(b, at_dump + 3)
    assert later > at_dump + 3
    assert rt("delete", "-f", cid).returncode == 0


@needs_criu
def test_leave_running_keeps_the_container(rt: Runtime, stdio: Stdio,
                                           counter: tuple[Path, str]) -> None:
    b, cid = counter
    p = stdio.run(rt, "checkpoint", "--leave-running", "--image-path", str(rt.tmp / "img"),
                  cid)
    assert p.returncode == 0, p.stderr
    assert (rt.tmp / "img" / "inventory.img").exists()
    assert_still_counting(rt, b, cid)


@needs_criu
def test_restore_foreground_relays_exit_status(rt: Runtime, stdio: Stdio) -> None:
    b = rt.bundle(**{"process.args": ["sh", "-c", "i=0; while [ $i -lt 30 ]; do "
                                      "i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done; "
                                      "exit 7"], "root.readonly": False})
    cid = rt.new_id()
    assert stdio.run(rt, "run", "-d", "-b", str(b), cid).returncode == 0
    wait_count_above(b, 2)
    img = rt.tmp / "img"
    p = stdio.run(rt, "checkpoint", "--image-path", str(img), cid)
    assert p.returncode == 0, p.stderr
    p = stdio.run(rt, "restore", "--image-path", str(img), "-b", str(b), cid)
    assert p.returncode == 7, p.stderr
    assert read_count(b) == 30
    assert not (rt.root / cid).exists()  # the foreground restore deletes it at exit


def _checkpointed_counter(rt: Runtime, stdio: Stdio, **overrides: object) -> tuple[Path, str]:
    b = rt.bundle(**{"process.args": COUNTER, "root.readonly": False, **overrides})
    cid = rt.new_id()
    assert stdio.run(rt, "run", "-d", "-b", str(b), cid).returncode == 0
    wait_count_above(b, 2)
    p = stdio.run(rt, "checkpoint", "--image-path", str(rt.tmp / "img"), cid)
    assert p.returncode == 0, p.stderr
    return b, cid


@needs_criu
def test_restore_runs_prestart_and_create_runtime_hooks(rt: Runtime, stdio: Stdio) -> None:
    # runc runs them once criu has made the namespaces, with the restored init's pid
    out = rt.tmp / "hooks"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"cat >> {out}; echo >> {out}"]}
    b, cid = _checkpointed_counter(rt, stdio)
    cfg = rt.config(b)
    cfg["hooks"] = {"prestart": [hook], "createRuntime": [hook]}
    rt.write_config(b, cfg)
    p = stdio.run(rt, "restore", "-d", "--image-path", str(rt.tmp / "img"), "-b", str(b), cid)
    assert p.returncode == 0, p.stderr
    states = [json.loads(ln) for ln in out.read_text().splitlines() if ln.strip()]
    pid = rt.state(cid)["pid"]
    assert [(s["id"], s["pid"]) for s in states] == [(cid, pid), (cid, pid)]
    assert sorted(os.listdir(rt.root / cid)) == ["state.json"]
    assert rt("delete", "-f", cid).returncode == 0


@needs_criu
def test_failing_restore_hook_is_the_error_and_nothing_is_left(rt: Runtime,
                                                               stdio: Stdio) -> None:
    b, cid = _checkpointed_counter(rt, stdio)
    cfg = rt.config(b)
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]}
    rt.write_config(b, cfg)
    p = stdio.run(rt, "restore", "-d", "--image-path", str(rt.tmp / "img"), "-b", str(b), cid)
    assert p.returncode == 1
    assert only_error(p).startswith("createRuntime hook"), p.stderr
    assert only_error(rt("state", cid)) == "container does not exist"


# ---- errors: one line, the container untouched, nothing left behind ---------------
def test_checkpoint_refuses_a_created_container(rt: Runtime, busybox: Path) -> None:
    cid = rt.new_id()
    assert rt("create", "-b", str(busybox), cid).returncode == 0
    p = criu(rt, "checkpoint", "--image-path", str(rt.tmp / "img"), cid)
    assert p.returncode == 1
    assert only_error(p) == "Container cannot be checkpointed in created or stopped state"
    assert rt.state(cid)["status"] == "created"
    assert not (rt.tmp / "img").exists()
    assert rt("delete", cid).returncode == 0


def test_checkpoint_of_a_missing_container(rt: Runtime) -> None:
    p = criu(rt, "checkpoint", "nosuch")
    assert p.returncode == 1
    assert only_error(p) == "container does not exist"


def test_checkpoint_without_criu(rt: Runtime, counter: tuple[Path, str]) -> None:
    b, cid = counter
    p = rt("--criu", "/nonexistent/criu", "checkpoint", "--image-path", str(rt.tmp / "img"),
           cid)
    assert p.returncode == 1
    assert only_error(p) == ("criu binary '/nonexistent/criu' not found: install CRIU "
                             "(Debian package criu) or give its path with --criu PATH")
    assert_still_counting(rt, b, cid)


def test_checkpoint_image_path_is_a_file(rt: Runtime, counter: tuple[Path, str]) -> None:
    b, cid = counter
    f = rt.tmp / "afile"
    f.write_text("")
    p = criu(rt, "checkpoint", "--image-path", str(f), cid)
    assert p.returncode == 1
    assert only_error(p) == f"--image-path {f}: not a directory"
    assert_still_counting(rt, b, cid)


@pytest.mark.skipif(not shutil.which(CRIU), reason="criu is not installed")
def test_failed_checkpoint_names_criu_step_and_keeps_running(
        rt: Runtime, counter: tuple[Path, str]) -> None:
    # No page server listens on port 1: criu fails wherever it runs.
    b, cid = counter
    img = rt.tmp / "img"
    p = criu(rt, "checkpoint", "--page-server", "127.0.0.1:1", "--image-path", str(img), cid)
    assert p.returncode == 1
    msg = only_error(p)
    assert msg.startswith("criu dump failed: ")
    assert msg.endswith(f"; log file: {img}/dump.log")
    log = (img / "dump.log").read_text()
    last_error = [ln for ln in log.splitlines() if "Error (" in ln][-1]
    assert last_error.split("): ", 1)[1].rstrip(".") in msg
    assert_still_counting(rt, b, cid)


@criu_fails
def test_criu_failure_here_is_criu_check_failure(rt: Runtime,
                                                 counter: tuple[Path, str]) -> None:
    b, cid = counter
    img = rt.tmp / "img"
    p = criu(rt, "checkpoint", "--image-path", str(img), cid)
    assert p.returncode == 1
    cause = str(CRIU_PROBLEM).split("): ", 1)[1].rstrip(".")
    msg = only_error(p)
    # e.g. "criu dump failed: Could not initialize kernel features detection (after:
    # vdso: Unexpected rt vDSO area bounds; ...); log file: .../dump.log"
    assert msg.startswith("criu dump failed: ") and f"(after: {cause}" in msg, msg
    assert msg.endswith(f"; log file: {img}/dump.log")
    assert_still_counting(rt, b, cid)


def test_restore_image_path_missing(rt: Runtime, busybox: Path) -> None:
    missing = rt.tmp / "none"
    p = criu(rt, "restore", "--image-path", str(missing), "-b", str(busybox), rt.new_id())
    assert p.returncode == 1
    assert only_error(p) == f"--image-path {missing}: no such directory"
    assert not missing.exists()


def test_restore_image_path_is_a_file(rt: Runtime, busybox: Path) -> None:
    f = rt.tmp / "afile"
    f.write_text("")
    p = criu(rt, "restore", "--image-path", str(f), "-b", str(busybox), rt.new_id())
    assert p.returncode == 1
    assert only_error(p) == f"--image-path {f}: not a directory"


def test_restore_from_a_directory_without_checkpoint(rt: Runtime, busybox: Path) -> None:
    img = rt.tmp / "img"
    img.mkdir()
    p = criu(rt, "restore", "--image-path", str(img), "-b", str(busybox), rt.new_id())
    assert p.returncode == 1
    assert only_error(p) == f"--image-path {img}: no checkpoint there (descriptors.json " \
                            "is missing)"


@pytest.mark.skipif(not shutil.which(CRIU), reason="criu is not installed")
def test_failed_restore_leaves_nothing(rt: Runtime, busybox: Path) -> None:
    # descriptors.json but no criu images: criu fails wherever it runs
    img = rt.tmp / "img"
    img.mkdir()
    (img / "descriptors.json").write_text('["/dev/null","/dev/null","/dev/null"]')
    cid = rt.new_id()
    p = criu(rt, "restore", "-d", "--image-path", str(img), "-b", str(busybox), cid)
    assert p.returncode == 1
    msg = only_error(p)
    assert msg.startswith("criu restore failed: ")
    assert msg.endswith(f"; log file: {img}/restore.log")
    assert only_error(rt("state", cid)) == "container does not exist"
    assert not (rt.root / cid).exists()  # and the rt fixture checks mounts and cgroups


def test_restore_refuses_console_socket(rt: Runtime, busybox: Path) -> None:
    p = criu(rt, "restore", "--console-socket", str(rt.tmp / "sock"), "-b", str(busybox),
             rt.new_id())
    assert p.returncode == 1
    assert only_error(p) == ("restore: --console-socket: pyrunc cannot restore a terminal: "
                             "criu's command line cannot hand the pty master over (runc "
                             "uses criu's RPC)")


def test_restore_existing_id(rt: Runtime, busybox: Path) -> None:
    cid = rt.new_id()
    assert rt("create", "-b", str(busybox), cid).returncode == 0
    img = rt.tmp / "img"
    img.mkdir()
    (img / "descriptors.json").write_text('["/dev/null","/dev/null","/dev/null"]')
    p = criu(rt, "restore", "--image-path", str(img), "-b", str(busybox), cid)
    assert p.returncode == 1
    assert only_error(p) == f"container with id exists: {cid}"
    assert rt.state(cid)["status"] == "created"
    assert rt("delete", cid).returncode == 0


# ---- flags ---------------------------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["checkpoint", "--bogus", "x"], "flag provided but not defined: --bogus"),
    (["restore", "--bogus", "x"], "flag provided but not defined: --bogus"),
    (["checkpoint", "--manage-cgroups-mode", "bogus", "x"],
     "--manage-cgroups-mode: invalid value 'bogus' (choose from soft, full, strict, ignore)"),
    (["restore", "--empty-ns", "pid", "x"],
     "--empty-ns: namespace 'pid' is not supported (only \"network\")"),
    (["checkpoint", "--page-server", "nonsense", "x"],
     "Use --page-server ADDRESS:PORT to specify page server"),
    (["checkpoint", "--page-server", "host:port", "x"], "Invalid port number"),
    (["checkpoint"], 'pyrunc: "checkpoint" requires exactly 1 argument(s)'),
    (["restore", "a", "b"], 'pyrunc: "restore" requires exactly 1 argument(s)'),
])
def test_bad_flags_are_refused(rt: Runtime, args: list[str], message: str) -> None:
    p = rt(*args)
    assert p.returncode == 1
    assert only_error(p) == message
    assert not rt.root.exists() or not os.listdir(rt.root)


@pytest.mark.parametrize("verb", ["checkpoint", "restore"])
def test_help_lists_runc_flags(rt: Runtime, verb: str) -> None:
    """Every flag of runc's checkpoint/restore (the installed runc) is accepted."""
    if not shutil.which("runc"):
        pytest.skip("runc is not installed")
    theirs = subprocess.run(["runc", verb, "--help"], capture_output=True, text=True).stdout
    ours = rt(verb, "--help")
    assert ours.returncode == 0
    flags = {w.rstrip(",") for ln in theirs.splitlines() for w in ln.split()
             if w.startswith("--")}
    assert flags >= {"--image-path", "--work-path", "--manage-cgroups-mode"}
    for flag in flags:
        assert flag in ours.stdout, flag
    assert ours.stdout.count("--") == theirs.count("--") + 1  # and --help; no more


# ---- the failure line, from criu's log (pure logic) ----------------------------------
@pytest.mark.parametrize("errors,want", [
    ([], "no error in its log"),
    (["Dumping FAILED."], "Dumping FAILED"),
    (["rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
      "mnt: 136:./sys/fs/cgroup/systemd doesn't have a proper root mount", "Dumping FAILED."],
     "Dumping FAILED (after: rlimit: Can't setup RLIMIT_NOFILE for self: Operation not "
     "permitted; mnt: 136:./sys/fs/cgroup/systemd doesn't have a proper root mount)"),
    (["a", "b", "a", "c", "d", "e", "f"], "f (after: a; b; ...; d; e)"),
])
def test_log_failure_names_last_step_and_earlier_errors(tmp_path: Path, errors: list[str],
                                                        want: str) -> None:
    from pyrunc.checkpoint import log_failure

    log = tmp_path / "dump.log"
    lines = ["(00.000100) Version: 3.17.1"]
    lines += [f"(00.0{i:02d}000) Error (criu/x.c:{i}): {e}" for i, e in enumerate(errors)]
    log.write_text("\n".join([*lines, "(00.100000) Unlock network"]) + "\n")
    assert log_failure(str(log)) == want
    assert log_failure(str(tmp_path / "none.log")) == "no log written"
