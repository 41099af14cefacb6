"""seccomp filters from pyrunc.linux.seccomp, loaded into the real kernel.

Each case forks a child that sets no_new_privs, installs the filter, runs a
probe and writes its result to a pipe; the parent reads it and the exit status.
getppid(2) ignores its arguments, so calling it with crafted args probes the
filter's argument comparisons without side effects.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import tempfile
from collections.abc import Callable
from typing import Any

import pytest

from pyrunc.linux import seccomp
from pyrunc.linux.syscalls_x86_64 import X86_64

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 tables")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
PR_SET_NO_NEW_PRIVS = 38
NR_GETPPID = X86_64["getppid"]


def raw(nr: int, *args: int) -> int:
    """syscall(nr, args...) -> result or -errno."""
    cargs = [ctypes.c_ulong(a & 0xFFFFFFFFFFFFFFFF) for a in args]
    rc = _libc.syscall(ctypes.c_long(nr), *cargs)
    return int(rc) if rc >= 0 else -ctypes.get_errno()


def in_child(cfg: dict[str, Any], probe: Callable[[], Any],
             after: Callable[[int | None], None] | None = None) -> tuple[Any, int]:
    """Run probe() under the filter in a forked child -> (probe result or None, wait status)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(r)
            if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                os._exit(90)
            fd = seccomp.install(cfg)
            if after is not None:
                after(fd)
            out = json.dumps(probe()).encode()
            os.write(w, out)
            os._exit(0)
        except BaseException:
            os._exit(91)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    return (json.loads(data) if data else None), status


def ppid_probe(*args: int) -> Callable[[], int]:
    return lambda: raw(NR_GETPPID, *args)


def getppid_rule(action: str, args: list[dict[str, Any]] | None = None,
                 errno_ret: int | None = None, default: str = "SCMP_ACT_ALLOW") -> dict[str, Any]:
    rule: dict[str, Any] = {"names": ["getppid"], "action": action}
    if args is not None:
        rule["args"] = args
    if errno_ret is not None:
        rule["errnoRet"] = errno_ret
    return {"defaultAction": default, "syscalls": [rule]}


def test_errno_with_errnoret() -> None:
    res, status = in_child(getppid_rule("SCMP_ACT_ERRNO", errno_ret=errno.EXDEV), ppid_probe())
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert res == -errno.EXDEV


def test_errno_defaults_to_eperm() -> None:
    res, _ = in_child(getppid_rule("SCMP_ACT_ERRNO"), ppid_probe())
    assert res == -errno.EPERM


@pytest.mark.parametrize("action", ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG"])
def test_allow_and_log_let_the_call_through(action: str) -> None:
    res, status = in_child(getppid_rule(action), ppid_probe())
    assert os.WEXITSTATUS(status) == 0 and res == os.getpid()


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD",
                                    "SCMP_ACT_KILL_PROCESS"])
def test_kill_actions_kill_with_sigsys_even_with_handler(action: str) -> None:
    def probe() -> int:
        signal.signal(signal.SIGSYS, lambda *_: os._exit(7))
        return raw(NR_GETPPID)
    res, status = in_child(getppid_rule(action), probe)
    assert res is None
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_trap_delivers_catchable_sigsys() -> None:
    def probe() -> str:
        got: list[int] = []
        signal.signal(signal.SIGSYS, lambda s, _f: got.append(s))
        raw(NR_GETPPID)
        return "caught" if got == [signal.SIGSYS] else "missed"
    res, status = in_child(getppid_rule("SCMP_ACT_TRAP"), probe)
    assert os.WEXITSTATUS(status) == 0 and res == "caught"


def test_trap_without_handler_dies_of_sigsys() -> None:
    _, status = in_child(getppid_rule("SCMP_ACT_TRAP"), ppid_probe())
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_trace_without_tracer_is_enosys() -> None:
    res, _ = in_child(getppid_rule("SCMP_ACT_TRACE"), ppid_probe())
    assert res == -errno.ENOSYS


def test_default_errno_ret_and_allow_list() -> None:
    names = ["read", "write", "close", "exit", "exit_group", "rt_sigaction", "rt_sigprocmask",
             "brk", "mmap", "munmap", "futex", "getpid", "fstat", "newfstatat", "lseek",
             "sigaltstack", "madvise", "mprotect", "rt_sigreturn"]
    cfg = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EROFS,
           "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]}
    res, status = in_child(cfg, lambda: [raw(NR_GETPPID), raw(X86_64["getpid"])])
    assert os.WEXITSTATUS(status) == 0
    assert res[0] == -errno.EROFS and res[1] > 0


# (op, value, valueTwo, arg0, matches?) -- 64-bit values cross the hi/lo word boundary
BIG = 0x1_0000_0005
OPS = [
    ("SCMP_CMP_EQ", BIG, 0, BIG, True),
    ("SCMP_CMP_EQ", BIG, 0, 5, False),
    ("SCMP_CMP_EQ", BIG, 0, 0x2_0000_0005, False),
    ("SCMP_CMP_NE", BIG, 0, 5, True),
    ("SCMP_CMP_NE", BIG, 0, BIG, False),
    ("SCMP_CMP_NE", BIG, 0, 0x1_0000_0006, True),
    ("SCMP_CMP_LT", BIG, 0, 0xFFFF_FFFF, True),
    ("SCMP_CMP_LT", BIG, 0, BIG - 1, True),
    ("SCMP_CMP_LT", BIG, 0, BIG, False),
    ("SCMP_CMP_LT", BIG, 0, 0x2_0000_0000, False),
    ("SCMP_CMP_LE", BIG, 0, BIG, True),
    ("SCMP_CMP_LE", BIG, 0, 6, True),
    ("SCMP_CMP_LE", BIG, 0, BIG + 1, False),
    ("SCMP_CMP_LE", BIG, 0, 0x2_0000_0000, False),
    ("SCMP_CMP_GT", BIG, 0, BIG + 1, True),
    ("SCMP_CMP_GT", BIG, 0, 0x2_0000_0000, True),
    ("SCMP_CMP_GT", BIG, 0, BIG, False),
    ("SCMP_CMP_GT", BIG, 0, 0xFFFF_FFFF, False),
    ("SCMP_CMP_GE", BIG, 0, BIG, True),
    ("SCMP_CMP_GE", BIG, 0, 0xFFFF_FFFF_FFFF_FFFF, True),
    ("SCMP_CMP_GE", BIG, 0, BIG - 1, False),
    ("SCMP_CMP_GE", BIG, 0, 6, False),
    ("SCMP_CMP_MASKED_EQ", 0xFF00_0000_0000_00F0, 0x1200_0000_0000_0030, 0x12AB_CDEF_0000_0F3F,
     True),
    ("SCMP_CMP_MASKED_EQ", 0xFF00_0000_0000_00F0, 0x1200_0000_0000_0030, 0x13AB_CDEF_0000_0F3F,
     False),
    ("SCMP_CMP_MASKED_EQ", 0xFF00_0000_0000_00F0, 0x1200_0000_0000_0030, 0x1200_0000_0000_0040,
     False),
]


@pytest.mark.parametrize("op,value,value_two,arg,match", OPS)
def test_argument_operators_64bit(op: str, value: int, value_two: int, arg: int,
                                  match: bool) -> None:
    cond = {"index": 2, "op": op, "value": value, "valueTwo": value_two}
    cfg = getppid_rule("SCMP_ACT_ERRNO", [cond], errno_ret=errno.ENOTTY)
    res, _ = in_child(cfg, ppid_probe(0, 0, arg))
    assert res == (-errno.ENOTTY if match else os.getpid())


def test_personality_and_socket_family_rules() -> None:
    cfg = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
         "args": [{"index": 0, "op": "SCMP_CMP_NE", "value": 0xFFFFFFFF}]},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EAFNOSUPPORT,
         "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": socket.AF_INET6}]},
    ]}

    def probe() -> list[bool]:
        out = [raw(X86_64["personality"], 0xFFFFFFFF) >= 0,
               raw(X86_64["personality"], 0) == -errno.EACCES]
        try:
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
            out.append(False)
        except OSError as e:
            out.append(e.errno == errno.EAFNOSUPPORT)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM):
            out.append(True)
        return out
    res, _ = in_child(cfg, probe)
    assert res == [True, True, True, True]


def test_same_index_conditions_are_ored_like_runc() -> None:
    cfg = getppid_rule("SCMP_ACT_ERRNO", [{"index": 0, "op": "SCMP_CMP_EQ", "value": 1},
                                          {"index": 0, "op": "SCMP_CMP_EQ", "value": 2}])
    res, _ = in_child(cfg, lambda: [raw(NR_GETPPID, a) for a in (1, 2, 3)])
    assert res == [-errno.EPERM, -errno.EPERM, os.getpid()]


def test_different_index_conditions_are_anded() -> None:
    cfg = getppid_rule("SCMP_ACT_ERRNO", [{"index": 0, "op": "SCMP_CMP_EQ", "value": 1},
                                          {"index": 1, "op": "SCMP_CMP_EQ", "value": 2}])
    res, _ = in_child(cfg, lambda: [raw(NR_GETPPID, *a) for a in ((1, 2), (1, 3), (0, 2))])
    assert res == [-errno.EPERM, os.getpid(), os.getpid()]


def test_flags_log_spec_allow_tsync_are_accepted() -> None:
    cfg = getppid_rule("SCMP_ACT_ERRNO")
    cfg["flags"] = ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    res, status = in_child(cfg, ppid_probe())
    assert os.WEXITSTATUS(status) == 0 and res == -errno.EPERM


# Docker's default profile shape: default ERRNO, one long allow list, clone3 -> ENOSYS.
_DOCKER_DENIED = {
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "finit_module", "get_kernel_syms", "get_mempolicy", "init_module",
    "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
    "mbind", "mount", "move_pages", "name_to_handle_at", "nfsservctl", "open_by_handle_at",
    "perf_event_open", "personality", "pivot_root", "process_vm_readv", "process_vm_writev",
    "ptrace", "query_module", "quotactl", "reboot", "request_key", "set_mempolicy", "setns",
    "settimeofday", "swapon", "swapoff", "sysfs", "_sysctl", "umount2", "unshare", "uselib",
    "userfaultfd", "ustat", "vm86", "vm86old", "clone3", "fsopen", "fsmount", "open_tree",
    "move_mount", "fsconfig", "fspick", "mount_setattr",
}


def docker_like_profile() -> dict[str, Any]:
    allowed = sorted(set(X86_64) - _DOCKER_DENIED) + ["arm_fadvise64_64", "sync_file_range2"]
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}] + [
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": v}]}
            for v in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF)
        ] + [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}],
    }


def test_docker_like_profile_allows_fork_exec_and_denies_mount() -> None:
    def probe() -> list[int]:
        pid = os.fork()
        if pid == 0:
            os.execv("/bin/true", ["/bin/true"])
        _, st = os.waitpid(pid, 0)
        rc = subprocess.run(["/bin/true"], check=False).returncode
        mnt = _libc.mount(b"none", b"/", b"tmpfs", 0, None)
        return [os.waitstatus_to_exitcode(st), rc, mnt, ctypes.get_errno(),
                raw(X86_64["personality"], 0xFFFFFFFF) >= 0, raw(X86_64["personality"], 1)]
    res, status = in_child(docker_like_profile(), probe)
    assert os.WEXITSTATUS(status) == 0
    assert res == [0, 0, -1, errno.EPERM, True, -errno.EPERM]


# ---- SCMP_ACT_NOTIFY with a listener socket and a tiny agent (the test process itself)

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif) (80 bytes)
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp) (24 bytes)
AGENT_ANSWER = 4242


def test_notify_listener_agent_answers_the_syscall() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "agent.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(1)
        server.settimeout(20)
        cfg = getppid_rule("SCMP_ACT_NOTIFY")
        cfg.update(listenerPath=path, listenerMetadata="meta-42",
                   flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
        state = {"ociVersion": "1.3.0", "id": "ctr", "status": "creating",
                 "pid": 0, "bundle": "/b"}

        def after(fd: int | None) -> None:
            assert fd is not None
            seccomp.send_listener(path, fd, dict(state, pid=os.getpid()), "meta-42")
            os.close(fd)

        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                server.close()
                _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
                after(seccomp.install(cfg))
                os.write(w, str(raw(NR_GETPPID)).encode())
                os._exit(0)
            except BaseException:
                os._exit(91)
        os.close(w)
        done = False
        try:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(20)
                msg, fds, _flags, _addr = socket.recv_fds(conn, 65536, 4)
            assert len(fds) == 1
            payload = json.loads(msg)
            assert payload["fds"] == ["seccompFd"] and payload["metadata"] == "meta-42"
            assert payload["pid"] == pid and payload["state"]["status"] == "creating"
            assert payload["ociVersion"] == "1.3.0"
            notif = bytearray(80)
            fcntl.ioctl(fds[0], SECCOMP_IOCTL_NOTIF_RECV, notif)
            notif_id, notif_pid, _fl, nr = struct.unpack_from("<QIIi", notif)
            assert notif_pid == pid and nr == NR_GETPPID
            resp = bytearray(struct.pack("<QqiI", notif_id, AGENT_ANSWER, 0, 0))
            fcntl.ioctl(fds[0], SECCOMP_IOCTL_NOTIF_SEND, resp)
            os.close(fds[0])
            with os.fdopen(r, "rb") as f:
                result = f.read()
            done = True
        finally:
            server.close()
            if not done:  # the child may be stuck in the notified syscall
                os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert int(result) == AGENT_ANSWER


def test_send_listener_failure_is_one_line_error() -> None:
    from pyrunc.errors import PyruncError
    with tempfile.TemporaryDirectory() as tmp, pytest.raises(PyruncError, match="listenerPath"):
        seccomp.send_listener(os.path.join(tmp, "nope.sock"), 0, {}, "")


def test_x32_numbers_get_bad_arch_kill_unless_x32_listed() -> None:
    from pyrunc.linux.syscalls_x86_64 import X32
    nr = X32["getppid"]
    _, status = in_child(getppid_rule("SCMP_ACT_ALLOW"), lambda: raw(nr))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS
    cfg = getppid_rule("SCMP_ACT_ERRNO", errno_ret=errno.EBADE)
    cfg["architectures"] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]
    res, status = in_child(cfg, lambda: [raw(nr), raw(NR_GETPPID)])
    assert os.WEXITSTATUS(status) == 0 and res == [-errno.EBADE, -errno.EBADE]


def test_install_without_no_new_privs_or_cap_fails_cleanly() -> None:
    """Unprivileged and without no_new_privs the kernel says EACCES -> one-line PyruncError."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)  # drops CAP_SYS_ADMIN
            try:
                seccomp.install(getppid_rule("SCMP_ACT_ERRNO"))
                msg = "installed"
            except Exception as e:  # noqa: BLE001 - reported to the parent
                msg = f"{type(e).__name__}: {e}"
            os.write(w, msg.encode())
            os._exit(0)
        except BaseException:
            os._exit(91)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode()
    os.waitpid(pid, 0)
    assert msg.startswith("PyruncError: linux.seccomp: loading the filter failed")
