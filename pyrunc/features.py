"""`pyrunc features`: what this build implements, in the runtime-spec
features.md shape (true for this build, not for the host)."""

from __future__ import annotations

from pyrunc import OCI_VERSION, __version__
from pyrunc.init import mountopts, sched
from pyrunc.linux.caps import CAP_NAMES

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any

def features() -> dict[str, Any]:
    mount_options = sorted({*mountopts.FLAGS, *mountopts.PROPAGATION, *mountopts.RECURSIVE,
                            *mountopts.RECURSIVE_ATIME, *mountopts.EXTENSIONS})
    from pyrunc.linux import seccomp as sc

    seccomp = {"enabled": True, "actions": sorted(sc.ACTIONS), "operators": sorted(sc.OPERATORS),
               "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
               "knownFlags": sorted(sc.FLAGS), "supportedFlags": sorted(sc.FLAGS)}
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
                       "rdma": False},
            "seccomp": seccomp,
            # Labels are applied when the LSM is enabled on the host.
            "apparmor": {"enabled": True},
            "selinux": {"enabled": True},
            "intelRdt": {"enabled": True, "schemata": True, "monitoring": True},
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": True},
            "memoryPolicy": {"modes": sorted(sched.MPOL_MODES),
                             "flags": sorted(sched.MPOL_FLAGS)},
        },
        "annotations": {"io.github.pyrunc.version": __version__},
    }
