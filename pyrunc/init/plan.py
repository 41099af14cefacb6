"""What the parent of `create` hands to the forked init stages (shared by
fork, not sent). Apart from pyrunc.init.main so the parent can build it
without importing the child's modules: the child imports those itself,
while the parent waits on the kernel to move the child into its cgroup."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    import _socket
    from typing import Any


class Plan:
    """What the parent hands to the forked stages (shared by fork, not sent)."""

    def __init__(self, cid: str, cfg: dict[str, Any], rootfs: str, fifo: str,
                 no_pivot: bool = False, no_new_keyring: bool = False,
                 console: _socket.socket | None = None, keep_fds: int = 0,
                 sync_hooks: bool = False, close_in_child: list[int] | None = None) -> None:
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
        # the parent's lock fd, etc.: a shared flock would outlive its unlock
        self.close_in_child = close_in_child or []
