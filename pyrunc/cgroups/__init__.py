"""cgroup managers: one interface over cgroup v1, v2 and the v1 "hybrid" layout
(v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified, where the
container also gets a cgroup, like runc's "hybrid join"), cgroupfs driver.

Paths follow runc's cgroupfs driver: an absolute cgroupsPath hangs under each
hierarchy's root; a relative one, and the default (the container id), under
the caller's own cgroup in each hierarchy. Only the directories created here
are ever removed. Stdlib only, nothing heavy at import time (not even contextlib: `state` pays
for every import here): the resource code lives in v1.py and v2.py (fs.py:
file helpers, stats.py: the shape of `events --stats`), imported when used.
Likewise posix, not os (see pyrunc.posixfs): only walking for pids (kill
--all, ps, a busy delete) imports os."""

from __future__ import annotations

import errno
import posix
import time

from pyrunc import posixfs
from pyrunc.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ROOT = "/sys/fs/cgroup"

# runc's default allow-list (libcontainer/specconv AllowedDevices), written
# after the config's own rules like runc does (v1.py; devices_bpf.py on v2).
DEFAULT_DEVICE_RULES = ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm",
                        "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 10:200 rwm",
                        "c 136:* rwm"]

def _mount_types(root: str = ROOT) -> dict[str, tuple[str, str]]:
    """mountpoint -> (fstype, super options) for cgroup mounts under root."""
    out: dict[str, tuple[str, str]] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            mnt = left.split()[4]
            fields = right.split()
            if fields[0] in ("cgroup", "cgroup2") and (mnt == root or mnt.startswith(root + "/")):
                out[mnt] = (fields[0], fields[2] if len(fields) > 2 else "")
    return out


def _own_cgroups() -> dict[str, str]:
    """controller key ("" for the unified hierarchy) -> our cgroup path."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                own[c] = path
    return own


def resolve_path(cgroups_path: str | None, container_id: str, own: str) -> str:
    # runc 1.1 cgroupfs: unset -> Name=id, relative to the caller's cgroup (from memory; verify).
    p = cgroups_path or container_id
    return posixfs.normpath(posixfs.join(own, p))


def _init_cpuset(d: str) -> None:
    # A new v1 cpuset cgroup starts with empty cpus/mems and refuses tasks (ENOSPC);
    # like runc, copy the parent's values down.
    for name in ("cpuset.cpus", "cpuset.mems"):
        f = f"{d}/{name}"
        if not posixfs.exists(f):
            continue
        with open(f) as fh:
            if fh.read().strip():
                continue
        with open(f"{d.rpartition('/')[0]}/{name}") as src, open(f, "w") as dst:
            dst.write(src.read().strip())


class Manager:
    """One container cgroup across the hierarchies: dirs maps a hierarchy key
    (the v1 mount's name, e.g. "memory" or "cpu,cpuacct"; "" for cgroup2) to
    the container's directory in it."""

    def __init__(self, dirs: dict[str, str], created: list[str] | None = None,
                 rootless: bool = False, mount: str = "") -> None:
        self.dirs = dirs
        self.mount = mount  # the cgroup2 mount, on a pure v2 host (used by create)
        self.created = created or []
        self.rootless = rootless

    @property
    def v2(self) -> bool:
        return list(self.dirs) == [""]

    def dir_of(self, ctrl: str) -> str | None:
        """The directory of the hierarchy holding ctrl (v2: the one cgroup)."""
        if self.v2:
            return self.dirs[""]
        for key, d in self.dirs.items():
            if key and ctrl in key.split(","):
                return d
        return None

    def create(self, rootless: bool | None = None) -> None:
        rootless = self.rootless if rootless is None else rootless
        for key, d in self.dirs.items():
            cpuset = "cpuset" in key.split(",")
            # mkdir -p, trying the leaf first: its parent usually exists
            todo = [d]
            while todo:
                m = todo[-1]
                try:
                    posix.mkdir(m)
                except FileNotFoundError:
                    todo.append(m.rpartition("/")[0] or "/")
                    continue
                except FileExistsError:
                    pass
                except PermissionError:
                    if rootless:
                        break
                    raise PyruncError(f"cgroup: cannot create {m}: permission denied") from None
                else:
                    self.created.append(m)
                    if cpuset:
                        _init_cpuset(m)
                todo.pop()
        if self.v2 and not rootless and self.mount:
            from pyrunc.cgroups.v2 import enable_controllers

            enable_controllers(self.mount, self.dirs[""])

    def self_join_files(self) -> list[str]:
        """The v1 `tasks` files a new child writes 0 to, joining by itself
        (pyrunc.init.cgjoin); apply(pid, v2_only=True) does the rest."""
        return [f"{d}/tasks" for key, d in self.dirs.items() if key]

    def apply(self, pid: int, v2_only: bool = False) -> None:
        for key, d in self.dirs.items():
            if v2_only and key:
                continue
            try:
                with open(f"{d}/cgroup.procs", "w") as f:
                    f.write(str(pid))
            except OSError as e:
                if self.rootless and e.errno in (errno.EACCES, errno.EPERM, errno.ENOENT):
                    continue  # rootless without a delegated cgroup: like runc, go on
                raise PyruncError(f"cgroup: cannot join {d}: {e.strerror}") from None

    def pids(self) -> list[int]:
        import os  # for walk: kill --all, ps and a busy delete

        out: set[int] = set()
        for d in self.dirs.values():
            for root, _, _ in os.walk(d):
                try:
                    with open(os.path.join(root, "cgroup.procs")) as f:
                        out.update(int(x) for x in f.read().split())
                except OSError:
                    pass
        return sorted(out)

    def signal_all(self, sig: int) -> None:
        if sig == 9 and "" in self.dirs:
            # cgroup.kill (Linux 5.14+): the whole v2 subtree at once, frozen
            # or not, with no window to fork away; what remains is per pid.
            try:
                with open(f"{self.dirs['']}/cgroup.kill", "w") as f:
                    f.write("1")
            except OSError:
                pass
        for pid in self.pids():
            try:
                posix.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _freezer(self) -> tuple[str, bool]:
        from pyrunc.state import freezer_file

        where = freezer_file(self.dirs)
        if where is None:
            raise PyruncError("cgroup: no freezer on this host")
        return where

    def _set_frozen(self, frozen: bool) -> None:
        path, v1 = self._freezer()
        with open(path, "w") as f:
            f.write(("FROZEN" if frozen else "THAWED") if v1 else ("1" if frozen else "0"))
        # Freezing takes a moment: wait until every task is (v1: FREEZING
        # turns FROZEN; v2: cgroup.events says "frozen 1"), as runc does.
        want = ("FROZEN" if frozen else "THAWED") if v1 else f"frozen {int(frozen)}"
        path = path if v1 else f"{path.rpartition('/')[0]}/cgroup.events"
        for _ in range(2000):
            with open(path) as f:
                text = f.read()
            if (text.strip() == want) if v1 else (want in text.splitlines()):
                return
            time.sleep(0.001)

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def is_frozen(self) -> bool:
        from pyrunc.state import is_frozen

        return is_frozen(self.dirs)

    def destroy(self) -> None:
        """Kill what is left (thawed first: a frozen task cannot die), then
        remove the directories created here, deepest first."""
        from pyrunc.state import remove_empty_cgroups

        if remove_empty_cgroups(self.dirs, self.created):
            self.created = []
            return  # every directory was ours, and empty: nothing to kill
        for _ in range(50):
            if not self.pids():
                break
            if self.is_frozen():
                self.thaw()
            self.signal_all(9)
            time.sleep(0.01)
        if not self._remove_created():
            raise PyruncError(f"cgroup: could not remove {', '.join(self.created)}")

    def _remove_created(self) -> bool:
        """rmdir the directories created here, deepest first, killing what
        is in one still busy and retrying for ~1 s; True once all are gone."""
        for d in sorted(self.created, key=len, reverse=True):
            for _ in range(100):
                try:
                    posix.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    self.signal_all(9)
                    time.sleep(0.01)
        self.created = [d for d in self.created if posixfs.isdir(d)]
        return not self.created

    def to_state(self) -> dict[str, Any]:
        return {"dirs": dict(self.dirs), "created": list(self.created),
                "rootless": self.rootless}

    def set(self, res: dict[str, Any]) -> None:
        if not res:
            return
        if self.v2:
            from pyrunc.cgroups import v2

            v2.set_resources(self.dirs[""], res, self.rootless)
        else:
            from pyrunc.cgroups import v1

            v1.set_resources(self, res)

    def stats(self) -> dict[str, Any]:
        """`events --stats` data, in runc's format."""
        if self.v2:
            from pyrunc.cgroups import v2

            return v2.stats(self.dirs[""])
        from pyrunc.cgroups import v1

        return v1.stats(self)


def manager_from_state(d: dict[str, Any]) -> Manager:
    return Manager(dict(d["dirs"]), list(d.get("created", [])), d.get("rootless", False))


def open_manager(cgroups_path: str | None, container_id: str, *, rootless: bool = False,
                 systemd: bool = False, root: str = ROOT) -> Manager:
    if systemd:
        raise PyruncError("systemd cgroup driver is not supported yet; drop --systemd-cgroup")
    if cgroups_path and ":" in cgroups_path and not cgroups_path.startswith("/"):
        raise PyruncError(f"config.json: linux.cgroupsPath: {cgroups_path!r} is a systemd "
                          "slice:prefix:name path, and the systemd driver is not supported yet")
    mounts = _mount_types(root)
    own = _own_cgroups()
    dirs: dict[str, str] = {}
    v2_mount = ""
    for mnt, (fstype, opts) in mounts.items():
        if fstype == "cgroup2":
            v2_mount = mnt
            rel = resolve_path(cgroups_path, container_id, own.get("", "/"))
            dirs[""] = posixfs.join(mnt, rel.lstrip("/"))
            continue
        ctrls = [o for o in opts.split(",") if o in own]
        if not ctrls or posixfs.islink(mnt):
            continue
        name = mnt.rpartition("/")[2]
        rel = resolve_path(cgroups_path, container_id, own[ctrls[0]])
        dirs[name] = posixfs.join(mnt, rel.lstrip("/"))
    if not dirs:
        raise PyruncError(f"no cgroup filesystem mounted under {root}")
    return Manager(dirs, rootless=rootless, mount=v2_mount if list(dirs) == [""] else "")
