"""`pyrunc features`: what this build implements, in the runtime-spec
features.md shape (true for this build, not for the host)."""

from __future__ import annotations

from pyrunc import OCI_VERSION, __version__
from pyrunc.init import mountopts, sched
from pyrunc.linux.caps import CAP_NAMES

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any

SECCOMP_ACTIONS = ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                   "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
                   "SCMP_ACT_TRAP"]
SECCOMP_OPERATORS = ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                     "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"]
SECCOMP_FLAGS = ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                 "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]


def features() -> dict[str, Any]:
    mount_options = sorted({*mountopts.FLAGS, *mountopts.PROPAGATION, *mountopts.RECURSIVE,
                            *mountopts.RECURSIVE_ATIME, *mountopts.EXTENSIONS})
    seccomp: dict[str, Any] = {"enabled": False}
    try:
        from pyrunc.linux import seccomp as _seccomp  # noqa: F401

        seccomp = {"enabled": True, "actions": SECCOMP_ACTIONS,
                   "operators": SECCOMP_OPERATORS,
                   "archs": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                   "knownFlags": SECCOMP_FLAGS, "supportedFlags": SECCOMP_FLAGS}
    except ImportError:
        pass
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": mount_options,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": CAP_NAMES,
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False,
                       "rdma": True},
            "seccomp": seccomp,
            # Labels are applied when the LSM is enabled on the host.
            "apparmor": {"enabled": True},
            "selinux": {"enabled": True},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": True},
            "memoryPolicy": {"modes": sorted(sched.MPOL_MODES),
                             "flags": sorted(sched.MPOL_FLAGS)},
        },
        "annotations": {"io.github.pyrunc.version": __version__},
    }
