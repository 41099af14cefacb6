"""What the parent of `create` hands to the init stages. Apart from
pyrunc.init.main so the parent can build it without importing the child's
modules. Stage 1 is forked before the plan exists (it imports its modules
while the parent reads the config and makes the cgroups), so the plan
travels: its fds over the sync socket, the rest as JSON in a memfd (a
config can be bigger than one socket packet)."""

from __future__ import annotations

import _socket
import os

from pyrunc import fastjson

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cgroups import Manager

# Sent as JSON; the fds (fifo_fd, console, cgroup_v2_fd) go separately.
_FIELDS = ("cid", "cfg", "rootfs", "fifo", "no_pivot", "no_new_keyring", "keep_fds",
           "extra_env", "sync_hooks", "cgroup_tasks", "rootless")


class _CgroupJoin:
    """How the children of create and exec join the container's cgroups
    without a cgroup.procs write (pyrunc.init.cgjoin): the v1 `tasks` files
    they write 0 to, and the cgroup v2 directory they fork into."""

    cgroup_tasks: list[str]
    rootless: bool
    cgroup_v2_fd: int

    def _no_join(self) -> None:
        self.cgroup_tasks = []
        self.rootless = False
        self.cgroup_v2_fd = -1  # or an O_PATH fd, the parent's to close

    def let_children_join(self, mgr: Manager) -> bool:
        """Set up the children's join; False where the v2 directory is out
        of reach (the parent then moves them itself)."""
        unified = mgr.dirs.get("")
        if unified is not None:
            try:
                self.cgroup_v2_fd = os.open(unified, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                return False
        self.cgroup_tasks = mgr.self_join_files()
        self.rootless = mgr.rootless
        return True


class Plan(_CgroupJoin):
    """Everything the init stages need from the parent."""

    def __init__(self, cid: str, cfg: dict[str, Any], rootfs: str, fifo: str,
                 no_pivot: bool = False, no_new_keyring: bool = False,
                 console: _socket.socket | None = None, keep_fds: int = 0,
                 sync_hooks: bool = False) -> None:
        self.cid = cid
        self.cfg = cfg
        self.rootfs = rootfs
        self.fifo = fifo
        self.fifo_fd = -1  # O_PATH fd of the fifo, opened by the parent
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.console = console
        # fds 3..3+keep_fds-1 pass to the container (LISTEN_FDS + preserve)
        self.keep_fds = keep_fds
        self.extra_env: dict[str, str] = {}
        # pause before pivot_root so the parent runs its hooks
        self.sync_hooks = sync_hooks
        self._no_join()

    def to_wire(self) -> tuple[int, list[int]]:
        """A memfd holding the JSON fields, and the fds to send with it
        (memfd first; -1 stands for an fd the plan does not have)."""
        doc = {name: getattr(self, name) for name in _FIELDS}
        memfd = os.memfd_create("pyrunc-plan", os.MFD_CLOEXEC)
        data = fastjson.dumps(doc, compact=True).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(memfd, view):]
        console = self.console.fileno() if self.console is not None else -1
        return memfd, [self.fifo_fd, console, self.cgroup_v2_fd]

    @classmethod
    def from_wire(cls, fds: list[int], present: list[bool]) -> Plan:
        """fds as received: the memfd, then those of fifo_fd, console,
        cgroup_v2_fd that `present` marks as sent."""
        memfd, rest = fds[0], iter(fds[1:])
        chunks = []
        offset = 0
        while chunk := os.pread(memfd, 1 << 16, offset):
            chunks.append(chunk)
            offset += len(chunk)
        os.close(memfd)
        doc = fastjson.loads(b"".join(chunks).decode())
        fifo_fd, console, v2 = (next(rest) if p else -1 for p in present)
        plan = cls(doc["cid"], doc["cfg"], doc["rootfs"], doc["fifo"],
                   console=_socket.socket(fileno=console) if console >= 0 else None)
        for name in _FIELDS:
            setattr(plan, name, doc[name])
        plan.fifo_fd = fifo_fd
        plan.cgroup_v2_fd = v2
        return plan


class ExecPlan(_CgroupJoin):
    """What `exec`'s parent hands to its forked child (pyrunc.init.exec_child;
    shared by fork, not sent)."""

    def __init__(self, pid: int, cfg: dict[str, Any], proc: dict[str, Any],
                 keep_fds: int = 0, src: str = "config.json: process.") -> None:
        self.pid = pid
        self.cfg = cfg
        self.proc = proc
        self.keep_fds = keep_fds
        self.src = src  # how errors name proc's fields ("process.json: ")
        self._no_join()
