"""The benchmarks' conversion of podman's seccomp profile to linux.seccomp."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from benchlib import bundle  # noqa: E402


def test_rules_for_this_arch_and_these_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle, "_ARCH", "amd64")
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                     "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [], "includes": {},
             "excludes": {}},
            {"names": ["arm_only"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
            {"names": ["not_amd"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_NE"}],
             "excludes": {"caps": ["CAP_AUDIT_WRITE"]}},
        ],
    }
    out = bundle.oci_seccomp(profile, {"CAP_AUDIT_WRITE", "CAP_KILL"})
    assert out == {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                     {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    with_admin = bundle.oci_seccomp(profile, {"CAP_SYS_ADMIN"})
    assert [r["names"][0] for r in with_admin["syscalls"]] == ["read", "mount", "socket"]
    assert with_admin["syscalls"][2]["args"] == [{"index": 0, "value": 16, "op": "SCMP_CMP_NE"}]
