"""The child of create (its stage 1) or exec (the joiner), parent side:
forked as the command starts, so it imports its modules (pyrunc.init.main,
pyrunc.init.exec_child) while the parent reads the config or the state
and makes the cgroups; then it takes the plan over `sock`. pyrunc.__main__
forks it before anything else is imported: the sooner the fork, the smaller
the heap both processes then copy on write. So this module imports only
built-in modules (posix, _socket) and pyrunc.posixfs (which the launcher
runs before anything else anyway: pyrunc.image_build.BOOT), not even
pyrunc.sync (each side imports it after the fork) or __future__: the few
annotations naming other modules' types are strings."""

import _socket
import posix

from pyrunc import posixfs

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from pyrunc.init.plan import ExecPlan, Plan


class EarlyChild:
    """The forked child and our end of its socket; reaped exactly once.
    kind: "create" or "exec". A context manager: leaving it kills and reaps
    a child still there (it may be blocked waiting for us)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.sock: _socket.socket
        # pyrunc.sync's channel: one message per packet
        self.sock, csock = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        mask = posix.sched_getaffinity(0)
        elsewhere = _other_cpus(mask)
        self.pid = posix.fork()
        if self.pid == 0:
            try:
                self.sock.close()
                from pyrunc import image

                if kind == "create":
                    image.load("stage1")
                    from pyrunc.init.main import stage1 as child
                else:
                    image.load("joiner")
                    from pyrunc.init.exec_child import joiner as child
                child(csock, mask)
            finally:
                posix._exit(1)  # never unwind into the parent's stack
        csock.close()
        if elsewhere:
            try:
                posix.sched_setaffinity(self.pid, elsewhere)
            except OSError:
                pass  # only a head start is lost

    def send_plan(self, plan: "Plan | ExecPlan") -> None:
        """The plan the child waits for; its own fds stay the caller's to close."""
        from pyrunc import sync

        memfd, fds = plan.to_wire()
        try:
            sync.send(self.sock, {"type": "plan", "present": [fd >= 0 for fd in fds]},
                      [memfd] + [fd for fd in fds if fd >= 0])
        finally:
            posix.close(memfd)

    def reap(self, kill: bool) -> None:
        if self.pid:
            if kill:  # SIGKILL: it may be blocked waiting for us
                try:
                    posix.kill(self.pid, 9)
                except ProcessLookupError:
                    pass
            posix.waitpid(self.pid, 0)
            self.pid = 0

    def __enter__(self) -> "EarlyChild":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.reap(kill=True)
        self.sock.close()


def _other_cpus(mask: set[int]) -> set[int] | None:
    """Where to start the child. Linux starts a forked child on its parent's
    CPU. We stay busy there, so the child would wait for the load balancer
    to move it to an idle CPU (~3 ms measured, most of stage 1's head
    start). Allowing it every CPU but ours moves it at once; the child
    restores `mask`, the caller's, when the plan arrives (send_plan). None
    when every CPU is busy already (many creates at once): there it would
    only narrow the choice.

    Read before the fork: after it, each page we touch is a copy-on-write
    fault, and these reads cost ~0.3 ms there, against ~20 us here."""
    if len(mask) < 2:
        return None
    try:
        # "0.52 0.58 0.59 3/467 12345": 3 running, we among them (the child: +1)
        running = int(posixfs.read("/proc/loadavg").split()[3].split(b"/")[0])
        if running + 1 > len(mask):
            return None
        stat = posixfs.read("/proc/thread-self/stat")
        cpu = int(stat.rsplit(b")", 1)[1].split()[36])  # field 39: processor
    except (OSError, ValueError, IndexError):
        return None
    return mask - {cpu}
