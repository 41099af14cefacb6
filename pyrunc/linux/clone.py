"""fork(2) straight into a cgroup: clone3(CLONE_INTO_CGROUP) (Linux 5.7+).

Why: writing a pid to a cgroup.procs file takes the kernel's
cgroup_threadgroup_rwsem for writing, and the first such write in a while
waits for an RCU grace period (10-20 ms here, on every create and exec).
A child born in its cgroup skips that write. Only cgroup v2 hierarchies
accept it; on v1 a thread moving itself (pid 0 into `tasks`) skips the lock
too (pyrunc.cgroups.Manager.self_join_files).

The child is a fork in all but name: the interpreter is told through the
same C API posix.fork() uses (PyOS_BeforeFork/AfterFork_*), and CPython holds
the GIL across the call (PyDLL), as posix.fork does.
"""

from __future__ import annotations

import _signal  # not `signal`: its enums cost ~3 ms
import posix  # not os: see pyrunc.posixfs

from pyrunc.linux import cdata, libc

CLONE_INTO_CGROUP = 0x200000000


class _CloneArgs(cdata.Structure):
    _fields_ = [(name, cdata.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack",
        "stack_size", "tls", "set_tid", "set_tid_size", "cgroup")]


_api = cdata.CDLL(hold_gil=True)  # as ctypes.PyDLL: the GIL held across calls
_syscall = _api.syscall
_syscall.restype = cdata.c_long
_syscall.argtypes = [cdata.c_long, cdata.c_void_p, cdata.c_size_t]


def fork_into_cgroup(cgroup_fd: int) -> int:
    """Like posix.fork(), the child starting in the cgroup v2 directory cgroup_fd.
    OSError (ENOSYS on old kernels, EACCES...) leaves no child behind."""
    args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=_signal.SIGCHLD, cgroup=cgroup_fd)
    _api.PyOS_BeforeFork()
    pid = _syscall(libc.syscall_nr("clone3"), cdata.byref(args), cdata.sizeof(args))
    if pid == 0:
        _api.PyOS_AfterFork_Child()
        return 0
    err = cdata.get_errno()
    _api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone3: {posix.strerror(err)}")
    return int(pid)
