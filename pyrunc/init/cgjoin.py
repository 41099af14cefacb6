"""Children of create and exec joining the container's cgroups without a
cgroup.procs write, which takes the kernel's cgroup_threadgroup_rwsem: its
first write-lock in a while waits for an RCU grace period (10-20 ms).

v1: pid 0 written to `tasks` moves the calling thread without that lock; our
children are single-threaded, so the thread is the whole process.
v2: the next process is forked straight into the cgroup (pyrunc.linux.clone)."""

from __future__ import annotations

import errno
import posix  # not os: see pyrunc.posixfs

from pyrunc import posixfs

# Imported now, not when forking: exec's joiner forks from inside the
# container's root, where our modules are out of reach.
from pyrunc.linux.clone import fork_into_cgroup

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable


class CgroupJoinError(Exception):
    pass


def join_self(tasks_files: list[str], rootless: bool) -> None:
    for path in tasks_files:
        try:
            fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
            try:
                posix.write(fd, b"0")
            finally:
                posix.close(fd)
        except OSError as e:
            if rootless and e.errno in (errno.EACCES, errno.EPERM, errno.ENOENT):
                continue  # rootless without a delegated cgroup: like runc, go on
            raise CgroupJoinError(f"cgroup: cannot join {posixfs.dirname(path)}: "
                                  f"{e.strerror}") from None


def fork_into(v2_fd: int, note: dict[str, str]) -> Callable[[], int]:
    """A fork whose child is born in the cgroup v2 directory v2_fd (clone3);
    where the kernel refuses, a plain fork, and note["cgroup_v2"] = "move"
    asks the parent to move the child. v2_fd < 0: a plain fork."""
    if v2_fd < 0:
        return posix.fork

    def fork() -> int:
        try:
            return fork_into_cgroup(v2_fd)
        except OSError:
            note["cgroup_v2"] = "move"
            return posix.fork()
    return fork
