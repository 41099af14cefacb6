"""Stage 1 moving itself into the container's cgroup v1 hierarchies: pid 0
written to `tasks` moves the calling thread without taking the kernel's
cgroup_threadgroup_rwsem, whose first write-lock in a while waits for an
RCU grace period (10-20 ms; a parent writing the child's pid to
cgroup.procs pays it). Stage 1 is single-threaded, so its one thread is the
whole process. (cgroup v2 has no such path: see pyrunc.linux.clone.)"""

from __future__ import annotations

import errno
import os


class CgroupJoinError(Exception):
    pass


def join_self(tasks_files: list[str], rootless: bool) -> None:
    for path in tasks_files:
        try:
            with open(path, "w") as f:
                f.write("0")
        except OSError as e:
            if rootless and e.errno in (errno.EACCES, errno.EPERM, errno.ENOENT):
                continue  # rootless without a delegated cgroup: like runc, go on
            raise CgroupJoinError(f"cgroup: cannot join {os.path.dirname(path)}: "
                                  f"{e.strerror}") from None
