"""Create's stage 1, parent side: forked as the create/run command starts, so
it imports init's modules (pyrunc.init.main) while the parent reads the
config and makes the cgroups; then it takes the plan over `sock`."""

from __future__ import annotations

import os

from pyrunc import sync

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    import _socket


class Stage1:
    """The forked child and our end of its socket; reaped exactly once."""

    def __init__(self) -> None:
        self.sock: _socket.socket
        self.sock, csock = sync.pair()
        mask = os.sched_getaffinity(0)
        self.pid = os.fork()
        if self.pid == 0:
            try:
                self.sock.close()
                from pyrunc.init.main import stage1

                stage1(csock, mask)
            finally:
                os._exit(1)  # never unwind into the parent's stack
        csock.close()
        _start_elsewhere(self.pid, mask)

    def reap(self, kill: bool) -> None:
        if self.pid:
            if kill:  # SIGKILL: it may be blocked waiting for us
                try:
                    os.kill(self.pid, 9)
                except ProcessLookupError:
                    pass
            os.waitpid(self.pid, 0)
            self.pid = 0

    def close(self) -> None:
        self.reap(kill=True)
        self.sock.close()


def _start_elsewhere(pid: int, mask: set[int]) -> None:
    """Linux starts a forked child on its parent's CPU. We stay busy there,
    so the child would wait for the load balancer to move it to an idle CPU
    (~3 ms measured, most of stage 1's head start). Allowing it every CPU
    but ours moves it at once; stage 1 restores `mask`, the caller's, when
    the plan arrives (which is sent after this call). Not when every CPU is
    busy already (many creates at once): there it only narrows the choice."""
    if len(mask) < 2:
        return
    try:
        with open("/proc/loadavg", "rb") as f:  # "0.52 0.58 0.59 3/467 12345"
            running = int(f.read().split()[3].split(b"/")[0])
        if running > len(mask):  # we and the child are two of them
            return
        with open("/proc/thread-self/stat", "rb") as f:
            cpu = int(f.read().rsplit(b")", 1)[1].split()[36])  # field 39: processor
        os.sched_setaffinity(pid, mask - {cpu})
    except (OSError, ValueError, IndexError):
        pass  # only a head start is lost
