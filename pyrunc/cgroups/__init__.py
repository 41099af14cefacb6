"""cgroup managers: one interface over cgroup v1, v2 and the v1 "hybrid" layout
(v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified, where the
container also gets a cgroup, like runc's "hybrid join"), cgroupfs driver.

Paths follow runc's cgroupfs driver: an absolute cgroupsPath hangs under each
hierarchy's root; a relative one, and the default (the container id), under
the caller's own cgroup in each hierarchy. Only the directories created here
are ever removed. Stdlib only, nothing heavy at import time (not even contextlib: `state` pays
for every import here)."""

from __future__ import annotations

import errno
import os
import time

from pyrunc.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ROOT = "/sys/fs/cgroup"

# runc's default allow-list (libcontainer/specconv AllowedDevices), written
# after the config's own rules like runc does.
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
    if p.startswith("/"):
        return os.path.normpath(p)
    return os.path.normpath(os.path.join(own, p))


def _init_cpuset(d: str) -> None:
    # A new v1 cpuset cgroup starts with empty cpus/mems and refuses tasks (ENOSPC);
    # like runc, copy the parent's values down.
    for name in ("cpuset.cpus", "cpuset.mems"):
        f = os.path.join(d, name)
        if not os.path.exists(f):
            continue
        with open(f) as fh:
            if fh.read().strip():
                continue
        with open(os.path.join(os.path.dirname(d), name)) as src, open(f, "w") as dst:
            dst.write(src.read().strip())


class Manager:
    """One container cgroup across the hierarchies: dirs maps a hierarchy key
    (the v1 mount's name, e.g. "memory" or "cpu,cpuacct"; "" for cgroup2) to
    the container's directory in it."""

    def __init__(self, dirs: dict[str, str], created: list[str] | None = None,
                 rootless: bool = False) -> None:
        self.dirs = dirs
        self.created = created or []
        self.rootless = rootless

    @property
    def v2(self) -> bool:
        return list(self.dirs) == [""]

    def _dir(self, ctrl: str) -> str | None:
        if self.v2:
            return self.dirs[""]
        for key, d in self.dirs.items():
            if key and ctrl in key.split(","):
                return d
        return None

    def create(self, rootless: bool | None = None) -> None:
        rootless = self.rootless if rootless is None else rootless
        for d in self.dirs.values():
            missing = []
            p = d
            while not os.path.isdir(p):
                missing.append(p)
                p = os.path.dirname(p)
            for m in reversed(missing):
                try:
                    os.mkdir(m)
                except FileExistsError:
                    continue
                except PermissionError:
                    if rootless:
                        break
                    raise PyruncError(f"cgroup: cannot create {m}: permission denied") from None
                self.created.append(m)
                _init_cpuset(m)

    def apply(self, pid: int) -> None:
        for d in self.dirs.values():
            try:
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except OSError as e:
                if self.rootless and e.errno in (errno.EACCES, errno.EPERM, errno.ENOENT):
                    continue  # rootless without a delegated cgroup: like runc, go on
                raise PyruncError(f"cgroup: cannot join {d}: {e.strerror}") from None

    def pids(self) -> list[int]:
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
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _freezer(self) -> tuple[str, bool]:
        d = self._dir("freezer")
        if d is not None and not self.v2:
            return os.path.join(d, "freezer.state"), True
        if "" not in self.dirs:
            raise PyruncError("cgroup: no freezer on this host")
        return os.path.join(self.dirs[""], "cgroup.freeze"), False

    def _set_frozen(self, frozen: bool) -> None:
        path, v1 = self._freezer()
        with open(path, "w") as f:
            f.write(("FROZEN" if frozen else "THAWED") if v1 else ("1" if frozen else "0"))
        if v1:  # FREEZING is a transient state: wait until every task is frozen
            want = "FROZEN" if frozen else "THAWED"
            for _ in range(2000):
                with open(path) as f:
                    if f.read().strip() == want:
                        return
                time.sleep(0.001)

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def is_frozen(self) -> bool:
        try:
            path, v1 = self._freezer()
            with open(path) as f:
                state = f.read().strip()
        except (OSError, PyruncError):
            return False
        return state in ("FROZEN", "FREEZING") if v1 else state == "1"

    def destroy(self) -> None:
        """Kill what is left (thawed first: a frozen task cannot die), then
        remove the directories created here, deepest first."""
        for _ in range(50):
            if not self.pids():
                break
            if self.is_frozen():
                self.thaw()
            self.signal_all(9)
            time.sleep(0.01)
        for d in sorted(self.created, key=len, reverse=True):
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    self.signal_all(9)
                    time.sleep(0.01)
        self.created = [d for d in self.created if os.path.isdir(d)]
        if self.created:
            raise PyruncError(f"cgroup: could not remove {', '.join(self.created)}")

    def to_state(self) -> dict[str, Any]:
        return {"dirs": dict(self.dirs), "created": list(self.created),
                "rootless": self.rootless}

    def _write(self, ctrl: str, name: str, value: Any, field: str) -> None:
        d = self._dir(ctrl)
        if d is None:
            raise PyruncError(f"linux.resources.{field}: the {ctrl} cgroup "
                              "controller is not available on this host")
        try:
            with open(os.path.join(d, name), "w") as f:
                f.write(str(value))
        except OSError as e:
            if self.rootless and e.errno in (errno.EACCES, errno.EPERM):
                return
            raise PyruncError(f"linux.resources.{field}: cannot write {value!r} "
                              f"to {name}: {e.strerror}") from None

    def set(self, res: dict[str, Any]) -> None:
        if not res:
            return
        if self.v2:
            self._set_v2(res)
            return
        if res.get("unified"):
            raise PyruncError("config.json: linux.resources.unified: needs cgroup v2, and "
                              "this host's controllers are on cgroup v1")
        if "devices" in res and self._dir("devices") is None:
            from pyrunc import log

            log.warning("linux.resources.devices: no v1 devices controller and no eBPF device "
                        "filter yet on cgroup v2: device rules are not enforced")
        if "devices" in res and self._dir("devices"):
            # The config's rules in order, then runc's default allow-list.
            self._write("devices", "devices.deny", "a", "devices")
            for i, r in enumerate(res["devices"]):
                kind = r.get("type", "a")
                major = "*" if r.get("major", -1) in (None, -1) else r["major"]
                minor = "*" if r.get("minor", -1) in (None, -1) else r["minor"]
                rule = "a" if kind == "a" else f"{kind} {major}:{minor} {r.get('access', 'rwm')}"
                self._write("devices", "devices.allow" if r.get("allow") else "devices.deny",
                            rule, f"devices[{i}]")
            for rule in DEFAULT_DEVICE_RULES:
                self._write("devices", "devices.allow", rule, "devices")
        # Zero means "not set" for these values (runc's rule; docker always
        # sends shares 0, blkio weight 0, period 0...).
        mem = res.get("memory") or {}
        if _given(mem, "reservation"):
            self._write("memory", "memory.soft_limit_in_bytes", mem["reservation"],
                        "memory.reservation")
        self._set_memory_v1(mem.get("limit") or 0, mem.get("swap") or 0)
        if mem.get("swappiness") not in (None, -1):
            self._write("memory", "memory.swappiness", mem["swappiness"], "memory.swappiness")
        if mem.get("disableOOMKiller"):
            self._write("memory", "memory.oom_control", 1, "memory.disableOOMKiller")
        cpu = res.get("cpu") or {}
        for key, ctrl, name in (("shares", "cpu", "cpu.shares"),
                                ("period", "cpu", "cpu.cfs_period_us"),
                                ("quota", "cpu", "cpu.cfs_quota_us"),
                                ("burst", "cpu", "cpu.cfs_burst_us"),
                                ("realtimePeriod", "cpu", "cpu.rt_period_us"),
                                ("realtimeRuntime", "cpu", "cpu.rt_runtime_us"),
                                ("idle", "cpu", "cpu.idle"),
                                ("cpus", "cpuset", "cpuset.cpus"),
                                ("mems", "cpuset", "cpuset.mems")):
            zero_is_unset = key not in ("burst", "idle")
            if cpu.get(key) not in (None, "") and (cpu[key] != 0 or not zero_is_unset):
                self._write(ctrl, name, cpu[key], f"cpu.{key}")
        pids = res.get("pids") or {}
        if _given(pids, "limit"):
            limit = pids["limit"]
            self._write("pids", "pids.max", "max" if limit <= 0 else limit, "pids.limit")
        blkio = res.get("blockIO") or {}
        if _given(blkio, "weight"):
            bdir = self._dir("blkio") or ""
            wname = next((n for n in ("blkio.bfq.weight", "blkio.weight")
                          if os.path.exists(os.path.join(bdir, n))), None)
            if wname is None:  # no CFQ/BFQ scheduler: runc skips it too
                from pyrunc import log

                log.warning("linux.resources.blockIO.weight: this kernel's I/O scheduler "
                            "offers no blkio weight; ignored")
            else:
                self._write("blkio", wname, blkio["weight"], "blockIO.weight")
        for hp in res.get("hugepageLimits") or []:
            if self._dir("hugetlb") is None and "" in self.dirs:
                self._write_unified(f"hugetlb.{hp['pageSize']}.max", hp["limit"],
                                    "hugepageLimits")
            else:
                self._write("hugetlb", f"hugetlb.{hp['pageSize']}.limit_in_bytes",
                            hp["limit"], "hugepageLimits")

    def _set_memory_v1(self, limit: int, swap: int) -> None:
        """memory.memsw.limit_in_bytes must stay >= memory.limit_in_bytes: write
        them in the order that keeps that true (runc's setMemoryAndSwap)."""
        if not limit and not swap:
            return
        writes = []
        if limit:
            writes.append(("memory.limit_in_bytes", limit, "memory.limit"))
        if swap:
            writes.append(("memory.memsw.limit_in_bytes", swap, "memory.swap"))
        d = self._dir("memory") or ""
        try:
            with open(os.path.join(d, "memory.memsw.limit_in_bytes")) as f:
                current_swap = int(f.read())
        except (OSError, ValueError):
            current_swap = 0
        if swap and (swap == -1 or limit == -1 or limit > current_swap):
            writes.reverse()  # raise the memory+swap ceiling first
        for name, value, field in writes:
            self._write("memory", name, value, field)

    def _write_unified(self, name: str, value: Any, field: str) -> None:
        d = self.dirs[""]
        try:
            with open(os.path.join(d, name), "w") as f:
                f.write(str(value))
        except OSError as e:
            raise PyruncError(f"linux.resources.{field}: cannot write {value!r} "
                              f"to {name}: {e.strerror}") from None

    def _set_v2(self, res: dict[str, Any]) -> None:
        mem = res.get("memory") or {}
        if _given(mem, "limit"):
            self._write_unified("memory.max", "max" if mem["limit"] < 0 else mem["limit"],
                                "memory.limit")
        if _given(mem, "reservation"):
            self._write_unified("memory.low", mem["reservation"], "memory.reservation")
        if mem.get("swap") is not None and mem.get("limit") is not None and mem["swap"] > 0:
            self._write_unified("memory.swap.max", mem["swap"] - mem["limit"], "memory.swap")
        cpu = res.get("cpu") or {}
        if cpu.get("shares"):
            shares = cpu["shares"]
            self._write_unified("cpu.weight", shares_to_weight(shares), "cpu.shares")
        if _given(cpu, "quota") or _given(cpu, "period"):
            quota = cpu.get("quota")
            self._write_unified("cpu.max", f"{'max' if not quota or quota < 0 else quota} "
                                f"{cpu.get('period') or 100000}", "cpu.quota")
        pids = res.get("pids") or {}
        if _given(pids, "limit"):
            limit = pids["limit"]
            self._write_unified("pids.max", "max" if limit <= 0 else limit, "pids.limit")
        for k, v in (res.get("unified") or {}).items():
            self._write_unified(k, v, f"unified.{k}")

    def stats(self) -> dict[str, Any]:
        def read(ctrl: str, name: str) -> str:
            d = self._dir(ctrl)
            try:
                with open(os.path.join(d or "", name)) as f:
                    return f.read().strip()
            except OSError:
                return ""

        def num(ctrl: str, name: str) -> int:
            try:
                return int(read(ctrl, name) or 0)
            except ValueError:
                return 0
        out: dict[str, Any] = {
            "cpu": {"usage": {"total": num("cpuacct", "cpuacct.usage")}},
            "memory": {"usage": {"usage": num("memory", "memory.usage_in_bytes"),
                                 "max": num("memory", "memory.max_usage_in_bytes"),
                                 "limit": num("memory", "memory.limit_in_bytes"),
                                 "failcnt": num("memory", "memory.failcnt")}},
            "pids": {"current": num("pids", "pids.current")},
        }
        return out


def _given(section: dict[str, Any], key: str) -> bool:
    return section.get(key) not in (None, 0)


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2..262144] -> cpu.weight [1..10000], runc 1.3+ quadratic mapping."""
    import math

    if shares == 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    lg = math.log2(shares)
    return min(10000, math.ceil(10 ** ((lg * lg + 125 * lg) / 612.0 - 7.0 / 34.0)))


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
    for mnt, (fstype, opts) in mounts.items():
        if fstype == "cgroup2":
            rel = resolve_path(cgroups_path, container_id, own.get("", "/"))
            dirs[""] = os.path.join(mnt, rel.lstrip("/"))
            continue
        ctrls = [o for o in opts.split(",") if o in own]
        if not ctrls or os.path.islink(mnt):
            continue
        name = os.path.basename(mnt)
        rel = resolve_path(cgroups_path, container_id, own[ctrls[0]])
        dirs[name] = os.path.join(mnt, rel.lstrip("/"))
    if not dirs:
        raise PyruncError(f"no cgroup filesystem mounted under {root}")
    return Manager(dirs, rootless=rootless)
