"""What the parents of `create` and `exec` hand to their children. Apart
from pyrunc.init so the parent can build it without importing the child's
modules. The child is forked before the plan exists (it imports its modules
while the parent reads the config or the state; pyrunc.early), so the plan
travels: its fds over the sync socket, the rest marshalled in a memfd (a
config can be bigger than one socket packet; marshal, as pyrunc.sync says)."""

from __future__ import annotations

import _socket
import marshal
import posix  # not os: create's parent imports this (pyrunc.posixfs)

from pyrunc import sync

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from pyrunc.cgroups import Manager

    P = TypeVar("P", "Plan", "ExecPlan")

# Sent marshalled; the fds (fifo_fd, console) go separately, and the cgroup join
# in a message of its own (send_cgroup_join).
_FIELDS = ("cid", "cfg", "rootfs", "no_pivot", "no_new_keyring", "keep_fds",
           "extra_env", "sync_hooks")
_EXEC_FIELDS = ("pid", "cfg", "proc", "keep_fds", "src", "cgroup_tasks", "rootless")


def _to_wire(obj: object, fields: tuple[str, ...], fds: list[int]) -> tuple[int, list[int]]:
    """A memfd holding obj's fields, and the fds to send with it
    (memfd first; -1 stands for an fd the plan does not have)."""
    doc = {name: getattr(obj, name) for name in fields}
    return sync.memfd_with("pyrunc-plan", marshal.dumps(doc)), fds


def _from_wire(fds: list[int], present: list[bool]) -> tuple[dict[str, Any], list[int]]:
    """fds as received (the memfd, then those `present` marks as sent): the
    fields, and every fd of the plan in order (-1: not sent)."""
    doc = marshal.loads(sync.memfd_read(fds[0]))
    rest = iter(fds[1:])
    return doc, [next(rest) if p else -1 for p in present]


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
                self.cgroup_v2_fd = posix.open(unified, posix.O_PATH | posix.O_DIRECTORY
                                               | posix.O_CLOEXEC)
            except OSError:
                return False
        self.cgroup_tasks = mgr.self_join_files()
        self.rootless = mgr.rootless
        return True


class Plan(_CgroupJoin):
    """Everything the init stages need from the parent."""

    def __init__(self, cid: str, cfg: dict[str, Any], rootfs: str,
                 no_pivot: bool = False, no_new_keyring: bool = False,
                 console: _socket.socket | None = None, keep_fds: int = 0,
                 sync_hooks: bool = False) -> None:
        self.cid = cid
        self.cfg = cfg
        self.rootfs = rootfs
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
        console = self.console.fileno() if self.console is not None else -1
        return _to_wire(self, _FIELDS, [self.fifo_fd, console])

    @classmethod
    def from_wire(cls, fds: list[int], present: list[bool]) -> Plan:
        """What to_wire sent: fds as received, `present` as sent."""
        doc, (fifo_fd, console) = _from_wire(fds, present)
        plan = cls(doc["cid"], doc["cfg"], doc["rootfs"],
                   console=_socket.socket(fileno=console) if console >= 0 else None)
        for name in _FIELDS:
            setattr(plan, name, doc[name])
        plan.fifo_fd = fifo_fd
        return plan

    def send_cgroup_join(self, sock: _socket.socket) -> None:
        """create's second message: the cgroups are made after the plan goes
        out, while stage 1 sets up the namespaces; stage 1 takes this just
        before it forks init (receive_cgroup_join)."""
        fds = [self.cgroup_v2_fd] if self.cgroup_v2_fd >= 0 else None
        sync.send(sock, {"type": "cgroups", "tasks": self.cgroup_tasks,
                         "rootless": self.rootless}, fds)

    def receive_cgroup_join(self, sock: _socket.socket) -> None:
        msg = sync.expect(sock, "cgroups")
        self.cgroup_tasks = msg["tasks"]
        self.rootless = msg["rootless"]
        self.cgroup_v2_fd = msg.get("fds", [-1])[0]


class ExecPlan(_CgroupJoin):
    """What `exec`'s parent hands to its forked child (pyrunc.init.exec_child)."""

    def __init__(self, pid: int, cfg: dict[str, Any], proc: dict[str, Any],
                 keep_fds: int = 0, src: str = "config.json: process.") -> None:
        self.pid = pid
        self.cfg = cfg
        self.proc = proc
        self.keep_fds = keep_fds
        self.src = src  # how errors name proc's fields ("process.json: ")
        self._no_join()

    def to_wire(self) -> tuple[int, list[int]]:
        return _to_wire(self, _EXEC_FIELDS, [self.cgroup_v2_fd])

    @classmethod
    def from_wire(cls, fds: list[int], present: list[bool]) -> ExecPlan:
        doc, (v2,) = _from_wire(fds, present)
        plan = cls(doc["pid"], doc["cfg"], doc["proc"])
        for name in _EXEC_FIELDS:
            setattr(plan, name, doc[name])
        plan.cgroup_v2_fd = v2
        return plan


def receive(sock: _socket.socket, cls: type[P], caller_cpus: set[int]) -> P | None:
    """Child side: the plan pyrunc.early.EarlyChild.send_plan sent, or None
    (EOF: the parent gave up, and reports why). Also gives the child its
    caller's CPUs back, which the parent narrowed to start it on another
    one: before it joins a cpuset, which narrows them again."""
    msg, fds = sync.recv(sock)
    if msg.get("type") != "plan":
        return None
    posix.sched_setaffinity(0, caller_cpus)
    return cls.from_wire(fds, msg["present"])
