"""Parsers for what the container prints, and host-side helpers shared by checks."""

from __future__ import annotations

import os
import platform
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from conformance.registry import Fail, Skip

MARK = "@@"  # prefix of the lines our scripts print, so runtime noise on stdout is ignored


@dataclass(frozen=True)
class Mount:
    point: str
    fstype: str
    opts: frozenset[str]  # per-mount options
    optional: tuple[str, ...]  # propagation fields: shared:N master:N unbindable
    super_opts: frozenset[str]


def mountinfo(text: str) -> list[Mount]:
    mounts = []
    for ln in text.splitlines():
        parts = ln.split()
        if " - " not in ln or len(parts) < 10:
            continue
        sep = parts.index("-")
        mounts.append(
            Mount(
                point=parts[4].replace("\\040", " "),
                fstype=parts[sep + 1],
                opts=frozenset(parts[5].split(",")),
                optional=tuple(parts[6:sep]),
                super_opts=frozenset(parts[sep + 3].split(","))
                if len(parts) > sep + 3
                else frozenset(),
            )
        )
    return mounts


def mount_at(text: str, point: str) -> Mount:
    """The top-most mount at `point` (the last one in mountinfo order)."""
    found = [m for m in mountinfo(text) if m.point == point]
    if not found:
        raise Fail(f"no mount at {point} in the container's mountinfo")
    return found[-1]


def fields(text: str) -> dict[str, str]:
    """`Key: value` or `key=value` lines (e.g. /proc/self/status, our MARK lines)."""
    out: dict[str, str] = {}
    for ln in text.splitlines():
        seps = ("=",) if ln.startswith(MARK) else (":", "=")
        ln = ln.removeprefix(MARK)
        for sep in seps:
            if sep in ln:
                k, v = ln.split(sep, 1)
                out.setdefault(k.strip(), v.strip())
                break
    return out


def marked(text: str) -> list[str]:
    return [ln[len(MARK) :] for ln in text.splitlines() if ln.startswith(MARK)]


def need_x86_64() -> None:
    if platform.machine() != "x86_64":
        raise Skip("syscall numbers in this check are for x86_64")


def host_cgroup_dir(pid: int, controller: str) -> Path:
    """The host directory of `pid`'s cgroup for a v1 controller (or v2 when no v1 mount)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError as e:
        raise Fail(f"cannot read /proc/{pid}/cgroup: {e.strerror}") from None
    for ln in lines:
        _, ctrls, path = ln.split(":", 2)
        if controller in ctrls.split(","):
            base = Path("/sys/fs/cgroup") / controller
            if not base.is_dir():
                break
            return base / path.lstrip("/")
    v2 = next((ln.split(":", 2)[2] for ln in lines if ln.startswith("0::")), None)
    unified = Path("/sys/fs/cgroup/unified")
    if v2 is not None and (Path("/sys/fs/cgroup/cgroup.controllers").exists()):
        return Path("/sys/fs/cgroup") / v2.lstrip("/")
    if v2 is not None and unified.is_dir():
        return unified / v2.lstrip("/")
    raise Skip(f"no {controller} cgroup for pid {pid} on this host")


def read_cgroup_file(pid: int, controller: str, name: str) -> str:
    d = host_cgroup_dir(pid, controller)
    f = d / name
    if not f.exists():
        raise Skip(f"{name} does not exist in {d} (controller file missing on this kernel)")
    return f.read_text().strip()


class NsHolder:
    """A `sleep` in fresh namespaces (via unshare(1)), whose /proc/PID/ns/* paths checks join."""

    def __init__(self, *flags: str) -> None:
        self.marker = f"conformance-holder-{uuid.uuid4().hex[:8]}"
        self.proc = subprocess.Popen(
            ["unshare", *flags, "sh", "-c", f"echo ready; exec sleep 60 # {self.marker}"],
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            self.close()
            raise Skip(f"unshare {' '.join(flags)} failed on this host")

    def ns(self, kind: str) -> str:
        return f"/proc/{self.proc.pid}/ns/{kind}"

    def ns_id(self, kind: str) -> str:
        return os.readlink(self.ns(kind))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def procs_with_env(marker: str) -> list[int]:
    """Pids whose environment holds `marker` (processes left behind by a container)."""
    found = []
    needle = marker.encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if needle in (d / "environ").read_bytes():
                found.append(int(d.name))
        except OSError:
            continue
    return found
