"""linux.sysctl: only namespaced keys, and only when the container has the
namespace that scopes them (runc's rule); a host-wide sysctl is refused."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any


_IPC_KEYS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
             "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


class SysctlError(Exception):
    pass


def check(linux: dict[str, Any]) -> None:
    ns = {n["type"] for n in linux.get("namespaces", [])}
    for key in linux.get("sysctl", {}):
        if key in _IPC_KEYS or key.startswith("fs.mqueue."):
            needed = "ipc"
        elif key.startswith("net."):
            needed = "network"
        elif key in ("kernel.hostname", "kernel.domainname"):
            needed = "uts"
        else:
            raise SysctlError(f"config.json: linux.sysctl: {key!r} is not in a separate kernel "
                              "namespace (only namespaced sysctls may be set)")
        if needed not in ns:
            raise SysctlError(f"config.json: linux.sysctl: {key!r} needs a new {needed} "
                              "namespace")


def apply(sysctls: dict[str, str]) -> None:
    for key, value in sysctls.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise SysctlError(f"config.json: linux.sysctl: cannot set {key!r} to {value!r}: "
                              f"{e.strerror}") from None
