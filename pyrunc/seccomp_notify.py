"""Parent side of SCMP_ACT_NOTIFY, shared by create and exec: hand the
listener fd a child sent us, with the container state, to the agent at
linux.seccomp.listenerPath (config-linux.md, "The Container Process State")."""

from __future__ import annotations

import os

from pyrunc.errors import PyruncError

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any


def forward_listener(seccomp_cfg: dict[str, Any], fds: list[int],
                     state: dict[str, Any], pid: int | None = None) -> None:
    """Send fds[0] and state to the agent (pid: the filtered process, when it is
    not init, as for exec); close every fd in fds either way."""
    from pyrunc.linux import seccomp

    try:
        if not fds:
            raise PyruncError("seccomp: the container process sent no listener fd")
        path = seccomp_cfg.get("listenerPath")
        if not path:
            raise PyruncError("config.json: linux.seccomp.listenerPath: required with "
                              "SCMP_ACT_NOTIFY")
        seccomp.send_listener(path, fds[0], state, seccomp_cfg.get("listenerMetadata", ""),
                              pid)
    finally:
        for fd in fds:
            os.close(fd)
