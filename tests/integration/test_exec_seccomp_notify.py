"""`pyrunc exec` in a container whose seccomp profile uses SCMP_ACT_NOTIFY:
the exec'd process's listener fd reaches the agent at listenerPath (as
create's does), and the agent answers the notified syscall."""

from __future__ import annotations

import fcntl
import json
import os
import select
import socket
import struct
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runtime

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 ioctl numbers")]

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # struct seccomp_notif (80 bytes)
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # struct seccomp_notif_resp (24 bytes)


class Agent:
    """Accepts one connection per listener; answers every notification with
    success (0) without doing the syscall, and records what it saw."""

    def __init__(self, path: str) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(4)
        self.payloads: list[dict[str, Any]] = []
        self.answered = 0
        self.stop = False
        self.fds: list[int] = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stop:
            if not select.select([self.server], [], [], 0.1)[0]:
                continue
            conn, _ = self.server.accept()
            with conn:
                msg, fds, _flags, _addr = socket.recv_fds(conn, 65536, 4)
            self.payloads.append(json.loads(msg))
            self.fds += fds
            t = threading.Thread(target=self._answer, args=(fds[0],), daemon=True)
            self.threads.append(t)
            t.start()

    def _answer(self, fd: int) -> None:
        while not self.stop:
            if not select.select([fd], [], [], 0.1)[0]:
                continue
            notif = bytearray(80)
            try:
                fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, notif)
                notif_id = struct.unpack_from("<Q", notif)[0]
                fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND,
                            bytearray(struct.pack("<QqiI", notif_id, 0, 0, 0)))
                self.answered += 1
            except OSError:
                pass  # the process went away (ENOENT) or the fd has no more users

    def close(self) -> None:
        self.stop = True
        for t in self.threads:
            t.join(5)
        self.server.close()
        for fd in self.fds:
            os.close(fd)


def _bundle(rt: Runtime, tmp_path: Path) -> tuple[Path, str]:
    """A container whose mkdir(2) calls go to the agent at the returned path."""
    path = str(tmp_path / "agent.sock")
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
               "listenerMetadata": "meta-exec",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    over: dict[str, Any] = {"process.args": ["sleep", "600"], "linux.seccomp": seccomp}
    return rt.bundle(**over), path


def test_exec_forwards_notify_listener(rt: Runtime, tmp_path: Path) -> None:
    b, path = _bundle(rt, tmp_path)
    agent = Agent(path)
    cid = rt.new_id()
    try:
        rt("run", "-d", "-b", str(b), cid, check=True)
        init_pid = int(rt.state(cid)["pid"])
        pidfile = tmp_path / "exec.pid"
        p = rt("exec", "--pid-file", str(pidfile), cid, "sh", "-c",
               "mkdir /tmp/notified && echo made; [ -d /tmp/notified ] || echo absent")
        assert p.returncode == 0, p.stderr
        # the agent said "done" without making the directory
        assert p.stdout.split() == ["made", "absent"]
        assert agent.answered >= 1
        assert len(agent.payloads) == 2  # create's listener, then exec's
        create, exe = agent.payloads
        assert create["state"]["status"] == "creating"
        assert exe["fds"] == ["seccompFd"] and exe["metadata"] == "meta-exec"
        assert exe["state"]["status"] == "running"
        assert exe["state"]["id"] == cid and exe["state"]["pid"] == init_pid
        # the top-level pid is the filtered process: init's for create, exec's here
        assert create["pid"] == init_pid
        assert exe["pid"] == int(pidfile.read_text()) != init_pid
    finally:
        rt("delete", "-f", cid)
        agent.close()


def test_exec_fails_when_agent_is_gone(rt: Runtime, tmp_path: Path) -> None:
    """Sending to listenerPath fails: exec fails with one line (spec: MUST
    generate an error), and no process is left behind."""
    b, path = _bundle(rt, tmp_path)
    agent = Agent(path)
    cid = rt.new_id()
    try:
        rt("run", "-d", "-b", str(b), cid, check=True)
    finally:
        agent.close()
    try:
        os.unlink(path)
        p = rt("exec", cid, "echo", "never")
        assert p.returncode == 255
        assert p.stdout == ""
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "listenerPath" in lines[0], p.stderr
    finally:
        rt("delete", "-f", cid)
