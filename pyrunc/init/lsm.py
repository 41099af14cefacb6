"""AppArmor and SELinux labels for the container process: applied on exec when
the LSM is enabled; refused with a clear message when it is not (runc refuses
too, with a less clear one)."""

from __future__ import annotations

from pyrunc import posixfs  # not os: create's parent imports this (see there)

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any


class LsmError(Exception):
    pass


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y" and posixfs.isdir("/sys/kernel/security/apparmor")
    except OSError:
        return False


def selinux_enabled() -> bool:
    return posixfs.exists("/sys/fs/selinux/enforce")


def check(proc: dict[str, Any], linux: dict[str, Any],
          src: str = "config.json: process.") -> None:
    """Parent-side check, so the error comes before anything is created.
    src prefixes the field name (exec: "process.json: " or "exec: ")."""
    if proc.get("apparmorProfile") and not apparmor_enabled():
        raise LsmError(f"{src}apparmorProfile: apparmor is not enabled on this host")
    # runc's words after the field's name: clients may match them
    why = "selinux label is specified in config, but selinux is disabled or not supported"
    if proc.get("selinuxLabel") and not selinux_enabled():
        raise LsmError(f"{src}selinuxLabel: {why}")
    if linux.get("mountLabel") and not selinux_enabled():
        raise LsmError(f"config.json: linux.mountLabel: {why}")


def apply_on_exec(proc: dict[str, Any]) -> None:
    """Set the labels the kernel applies at the next execve."""
    profile = proc.get("apparmorProfile")
    if profile and apparmor_enabled():
        path = "/proc/self/attr/apparmor/exec"
        if not posixfs.exists(path):
            path = "/proc/self/attr/exec"
        with open(path, "w") as f:
            f.write(f"exec {profile}")
    label = proc.get("selinuxLabel")
    if label and selinux_enabled():
        with open("/proc/self/attr/exec", "w") as f:
            f.write(label)
