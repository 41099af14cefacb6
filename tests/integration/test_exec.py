"""`pyrunc exec`: joins the container's namespaces and cgroup, takes its
process settings overridden by the flags, reports errors in one line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime, error_lines

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def running(rt: Runtime) -> Iterator[tuple[Runtime, str, Path]]:
    over: dict[str, Any] = {"process.args": ["sleep", "60"], "root.readonly": False}
    b = rt.bundle(**over)
    cid = rt.new_id()
    rt("run", "-d", "-b", str(b), cid, check=True)
    try:
        yield rt, cid, b
    finally:
        rt("delete", "-f", cid)


def _pid(rt: Runtime, cid: str) -> int:
    return int(rt.state(cid)["pid"])


def test_output_and_exit_code(running: Any) -> None:
    rt, cid, _ = running
    p = rt("exec", cid, "sh", "-c", "echo hello; exit 7")
    assert p.stdout == "hello\n"
    assert p.returncode == 7


def test_signal_status(running: Any) -> None:
    rt, cid, _ = running
    p = rt("exec", cid, "sh", "-c", "kill -TERM $$")
    assert p.returncode == 128 + 15


def test_env_cwd_user(running: Any) -> None:
    rt, cid, _ = running
    p = rt("exec", "--cwd", "/tmp", "-e", "FOO=bar", "-e", "PATH=/bin", "-u", "1000:1001",
           "-g", "5", cid, "sh", "-c", "pwd; echo $FOO $PATH; id -u; id -g; id -G")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:5] == ["/tmp", "bar /bin", "1000", "1001", "1001 5"]


def test_env_inherits_config(running: Any) -> None:
    rt, cid, b = running
    cfg_env = rt.config(b)["process"]["env"]
    p = rt("exec", cid, "env")
    for kv in cfg_env:
        assert kv in p.stdout.splitlines()


def test_process_file(running: Any, tmp_path: Path) -> None:
    rt, cid, _ = running
    pf = tmp_path / "process.json"
    pf.write_text(json.dumps({"args": ["sh", "-c", "echo $X; pwd"], "cwd": "/etc",
                              "env": ["X=y", "PATH=/bin"], "user": {"uid": 0, "gid": 0}}))
    p = rt("exec", "-p", str(pf), cid)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "y\n/etc\n"
    pf.write_text(json.dumps({"args": [], "cwd": "/"}))
    p = rt("exec", "-p", str(pf), cid)
    assert p.returncode == 255  # runc: "exec failed" exits 255
    assert "process.json: args" in p.stderr


def test_same_namespaces_and_cgroup(running: Any) -> None:
    rt, cid, b = running
    pid = _pid(rt, cid)
    types = {ns["type"] for ns in rt.config(b)["linux"]["namespaces"]}
    names = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
             "cgroup": "cgroup", "user": "user"}
    want = [os.readlink(f"/proc/{pid}/ns/{names[t]}") for t in sorted(types) if t in names]
    cmd = "; ".join(f"readlink /proc/self/ns/{names[t]}" for t in sorted(types) if t in names)
    p = rt("exec", cid, "sh", "-c", cmd + "; cat /proc/self/cgroup")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[:len(want)] == want
    init_cg = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    assert sorted(lines[len(want):]) == sorted(init_cg)


def test_sub_cgroup(running: Any) -> None:
    rt, cid, _ = running
    pid = _pid(rt, cid)
    mem = [ln.split(":", 2)[2] for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
           if ln.split(":")[1] == "memory"]
    if not mem or not os.path.isdir(f"/sys/fs/cgroup/memory{mem[0]}"):
        pytest.skip("no v1 memory cgroup for the container")
    sub = f"/sys/fs/cgroup/memory{mem[0]}/sub"
    os.mkdir(sub)
    try:
        p = rt("exec", "--cgroup", "memory:sub", cid, "cat", "/proc/self/cgroup")
        assert p.returncode == 0, p.stderr
        line = [ln for ln in p.stdout.splitlines() if ln.split(":")[1] == "memory"][0]
        assert line.endswith("/sub")
        p = rt("exec", "--cgroup", "memory:nosuch", cid, "true")
        assert p.returncode == 255
        assert error_lines(p.stderr)[0].startswith("--cgroup: cannot join")
    finally:
        _rmdir_when_empty(sub)


def _rmdir_when_empty(cgroup: str) -> None:
    """An exited process may take a moment to leave its cgroup."""
    for _ in range(50):
        try:
            os.rmdir(cgroup)
            return
        except OSError:
            time.sleep(0.1)


def test_sub_cgroup_for_every_controller(running: Any) -> None:
    """--cgroup PATH (no controller): every hierarchy of the container."""
    rt, cid, _ = running
    dirs: dict[str, str] = json.loads((rt.root / cid / "state.json").read_text()) \
        .get("cgroup", {}).get("dirs", {})
    if not dirs:
        pytest.skip("the container has no per-controller cgroup directories")
    made: list[str] = []
    try:
        for d in sorted(set(dirs.values())):
            sub = os.path.join(d, "sub")
            os.mkdir(sub)
            made.append(sub)
            for f in ("cpuset.cpus", "cpuset.mems"):  # a new cpuset starts empty
                if os.path.exists(os.path.join(sub, f)):
                    Path(sub, f).write_text(Path(d, f).read_text())
        pid = int(rt.state(cid)["pid"])
        p = rt("exec", "--cgroup", "sub", cid, "cat", "/proc/self/cgroup")
        assert p.returncode == 0, p.stderr
        init = dict(ln.split(":", 2)[1:] for ln in
                    Path(f"/proc/{pid}/cgroup").read_text().splitlines())
        got = dict(ln.split(":", 2)[1:] for ln in p.stdout.splitlines())
        assert got.keys() == init.keys()
        for ctrl, path in got.items():
            assert path == init[ctrl].rstrip("/") + "/sub", (ctrl, path, init[ctrl])
    finally:
        for sub in reversed(made):
            _rmdir_when_empty(sub)


def test_errors(running: Any) -> None:
    rt, cid, _ = running
    p = rt("exec", cid, "nosuchbinary")
    assert p.returncode == 255
    assert error_lines(p.stderr) == ['exec: "nosuchbinary": executable file not found in $PATH']
    p = rt("exec", "--cwd", "/nonexistent", cid, "true")
    assert p.returncode == 255
    assert "/nonexistent" in p.stderr
    p = rt("exec", "--cwd", "relative", cid, "true")
    assert p.returncode == 255
    assert len(error_lines(p.stderr)) == 1
    assert "cwd" in error_lines(p.stderr)[0]


@pytest.mark.parametrize(("flags", "line"), [
    (["-u", "99999999999"], "--user: uid 99999999999 is out of range 0-2147483647"),
    (["-u", "0:-1"], "--user: gid -1 is out of range 0-2147483647"),
    (["-u", "root"], "--user: invalid value 'root': want uid[:gid] as numbers"),
    (["-g", "4294967296"], "--additional-gids: gid 4294967296 is out of range 0-2147483647"),
    (["-c", "CAP_FOO"], "--cap: unknown capability 'CAP_FOO'"),
])
def test_flag_errors_name_the_flag(running: Any, flags: list[str], line: str) -> None:
    """A bad flag value is one line naming the flag (runc would truncate the uid
    or ignore the capability), and nothing runs."""
    rt, cid, _ = running
    p = rt("exec", *flags, cid, "sh", "-c", "echo ran")
    assert p.returncode == 255
    assert p.stdout == ""
    assert error_lines(p.stderr) == [line]


@pytest.mark.parametrize(("doc", "line"), [
    ('{"args": ["e\\u0000cho"], "cwd": "/"}', "process.json: args[0]: contains a NUL byte"),
    ('{"args": ["true"], "cwd": "/", "env": ["A=\\u0000"]}',
     "process.json: env[0]: contains a NUL byte"),
    ('{"args": ["true"]', "process.json: invalid JSON at line 1 column 18: "
     "Expecting ',' delimiter"),
])
def test_process_file_errors(running: Any, tmp_path: Path, doc: str, line: str) -> None:
    rt, cid, _ = running
    f = tmp_path / "process.json"
    f.write_text(doc)
    p = rt("exec", "-p", str(f), cid)
    assert p.returncode == 255
    assert error_lines(p.stderr) == [line]


def test_stopped(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["true"]})  # type: ignore[arg-type]
    cid = rt.new_id()
    rt("create", "-b", str(b), cid, check=True)
    try:
        rt("start", cid, check=True)
        for _ in range(50):
            if rt.state(cid)["status"] == "stopped":
                break
            time.sleep(0.1)
        p = rt("exec", cid, "true")
        assert p.returncode == 255
        assert error_lines(p.stderr) == ["cannot exec in a stopped container"]
    finally:
        rt("delete", "-f", cid)


def test_paused(running: Any) -> None:
    rt, cid, _ = running
    if rt("pause", cid).returncode != 0:
        pytest.skip("pause not available")
    try:
        p = rt("exec", cid, "true")
        assert p.returncode == 255
        assert "cannot exec in a paused container (use --ignore-paused to override)" in p.stderr
    finally:
        rt("resume", cid)


def test_detach_pid_file(running: Any, tmp_path: Path) -> None:
    rt, cid, _ = running
    pf = tmp_path / "exec.pid"
    p = rt("exec", "-d", "--pid-file", str(pf), cid, "sleep", "30")
    assert p.returncode == 0, p.stderr
    pid = int(pf.read_text())
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
    init = _pid(rt, cid)
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{init}/ns/pid")


def test_stdin(running: Any) -> None:
    rt, cid, _ = running
    p = rt("exec", cid, "cat", input="through stdin\n")
    assert p.stdout == "through stdin\n"


def test_no_fd_leak(running: Any) -> None:
    rt, cid, _ = running
    p = rt("exec", cid, "ls", "/proc/self/fd")
    assert p.returncode == 0, p.stderr
    assert sorted(p.stdout.split()) == ["0", "1", "2", "3"]  # 3: ls's own dir fd


def test_preserve_fds(running: Any, tmp_path: Path) -> None:
    rt, cid, _ = running
    f = tmp_path / "passed"
    f.write_text("preserved\n")
    cmd = " ".join([*rt.cmd, "--root", str(rt.root)])
    p = subprocess.run(["sh", "-c", f"exec 3<{f}; {cmd} exec --preserve-fds 1 {cid} "
                        "cat /proc/self/fd/3"], capture_output=True, text=True, timeout=30)
    assert p.stdout == "preserved\n", p.stderr


def test_tty_console_socket(running: Any, tmp_path: Path) -> None:
    import array

    rt, cid, _ = running
    path = str(tmp_path / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(20)  # an exec that fails never connects
    proc = subprocess.Popen([*rt.cmd, "--root", str(rt.root), "exec", "-t", "-d",
                             "--console-socket", path, cid, "sh", "-c", "tty; sleep 1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    conn, _ = srv.accept()
    msg, anc, _, _ = conn.recvmsg(64, socket.CMSG_SPACE(4))
    conn.close()
    srv.close()
    assert proc.wait(20) == 0, proc.stderr.read() if proc.stderr else ""
    fds = array.array("i", anc[0][2][:4])
    master = fds[0]
    try:
        out = b""
        deadline = time.time() + 5
        while b"\n" not in out and time.time() < deadline:
            out += os.read(master, 100)
        assert out.startswith(b"/dev/pts/")
    finally:
        os.close(master)
        if proc.stderr:
            proc.stderr.close()


def test_tty_proxy(running: Any) -> None:
    """-t without --console-socket: pyrunc relays its own terminal."""
    rt, cid, _ = running
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen([*rt.cmd, "--root", str(rt.root), "exec", "-t", cid, "sh", "-c",
                                 "tty; read x; echo got $x; exit 3"],
                                stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        slave = -1
        out = b""
        deadline = time.time() + 20
        while b"/dev/pts/" not in out and time.time() < deadline:
            out += os.read(master, 1000)
        os.write(master, b"abc\n")
        while b"got abc" not in out and time.time() < deadline:
            try:
                out += os.read(master, 1000)
            except OSError:
                break
        assert proc.wait(20) == 3, out
        assert b"got abc" in out
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def test_joining_process_not_dumpable(running: Any) -> None:
    """While the joining child is still Python (before execve), a container
    process must not reach its /proc/<pid>/exe (CVE-2019-5736)."""
    rt, cid, _ = running
    env = dict(os.environ, PYRUNC_TEST_EXEC_PAUSE="3")
    proc = subprocess.Popen([*rt.cmd, "--root", str(rt.root), "exec", cid, "true"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        init = _pid(rt, cid)
        init_ns = os.readlink(f"/proc/{init}/ns/pid")
        nspid = None
        deadline = time.time() + 10
        while nspid is None and time.time() < deadline:
            for d in os.listdir("/proc"):
                if not d.isdigit() or int(d) == init:
                    continue
                try:
                    status = Path(f"/proc/{d}/status").read_text()
                    same = os.readlink(f"/proc/{d}/ns/pid") == init_ns
                    exe = os.readlink(f"/proc/{d}/exe")
                except OSError:
                    continue
                if same and "python" in exe:
                    nspid = [ln.split()[-1] for ln in status.splitlines()
                             if ln.startswith("NSpid:")][0]
                    break
            time.sleep(0.05)
        assert nspid is not None, "joining child not found"
        p = rt("exec", "-e", "PATH=/bin", cid, "sh", "-c", f"readlink /proc/{nspid}/exe")
        assert p.returncode != 0
        assert p.stdout.strip() == ""
    finally:
        assert proc.wait(20) == 0, proc.stderr.read() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
