"""linux.intelRdt: the container's resctrl group (Intel RDT / AMD PQoS), parent side.

Like runc (libcontainer/intelrdt): the group is <resctrl>/<closID>, or
<resctrl>/<container id> when closID is unset; l3CacheSchema, memBwSchema
and then the spec 1.3 `schemata` lines go to its `schemata` file in one
write; init is written to its `tasks` after the cgroup join, and so is every
exec'd process; enableMonitoring adds mon_groups/<container id>. Delete
removes the mon group, and the group itself only when closID was unset and
pyrunc made it. enableCMT/enableMBM (spec 1.1-1.2) are ignored, as runc does.

Beyond runc, as config-linux.md requires: a closID group that already exists
must hold the l3CacheSchema/memBwSchema given (runc leaves this as a TODO).

Everything takes the resctrl mount point (`root`), so the logic is tested on
a directory laid out like /sys/fs/resctrl. Imported only when intelRdt is set.
"""

from __future__ import annotations

import os

from pyrunc.errors import ConfigError, PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_SRC = "config.json: linux.intelRdt"
# Names the kernel uses at the top of resctrl: not groups.
_RESERVED = frozenset({"info", "mon_groups", "mon_data"})


class RdtError(PyruncError):
    """Applying the group failed (the message says what the kernel said)."""


def find_root(mountinfo: str | None = None) -> str | None:
    """The first resctrl mount in /proc/self/mountinfo (runc looks the same way)."""
    from pyrunc import mountinfo as mi

    for m in (mi.read() if mountinfo is None else mi.parse(mountinfo)):
        if m.fstype == "resctrl":
            return m.mountpoint
    return None


def schema_lines(rdt: dict[str, Any]) -> list[str]:
    """What goes to `schemata`, in the spec's order; "" counts as unset (runc)."""
    lines = [rdt.get("l3CacheSchema") or "", rdt.get("memBwSchema") or ""]
    return [s for s in lines + list(rdt.get("schemata") or []) if s]


class Resctrl:
    """One resctrl mount. mkdir/rmdir are the kernel's group operations (a
    test double overrides them to fill/empty the group as the kernel does)."""

    def __init__(self, root: str) -> None:
        self.root = root

    # ---- the kernel's side ------------------------------------------------------
    def mkdir(self, path: str) -> bool:
        """Make a group; False if it was there already."""
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            return False
        return True

    def rmdir(self, path: str) -> None:
        """Remove a group; its tasks go back to the parent group (kernel rule)."""
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass

    def has(self, feature: str) -> bool:
        """CAT is info/L3, MBA info/MB, monitoring info/L3_MON (runc's test)."""
        return os.path.isdir(os.path.join(self.root, "info", feature))

    def last_cmd_status(self) -> str:
        try:
            with open(os.path.join(self.root, "info", "last_cmd_status")) as f:
                return f.read().strip()
        except OSError:
            return ""

    def _write(self, path: str, data: str) -> None:
        # No O_CREAT (write_raw): resctrl makes these files itself.
        from pyrunc.cgroups.fs import write_raw

        write_raw(*os.path.split(path), data)

    def _fail(self, what: str, e: OSError) -> RdtError:
        why = e.strerror or str(e)
        status = self.last_cmd_status()
        if status and status != "ok":
            why += f" (last_cmd_status: {status})"
        return RdtError(f"{_SRC}: {what}: {why}")

    # ---- the container's group ------------------------------------------------
    def group_path(self, rdt: dict[str, Any], cid: str) -> str:
        clos = rdt.get("closID") or ""
        if clos == "/":
            return self.root
        return os.path.join(self.root, clos or cid)

    def check(self, rdt: dict[str, Any], cid: str) -> None:
        """Refuse what cannot work, before anything exists (ConfigError names the field)."""
        clos = rdt.get("closID") or ""
        if clos and clos != "/" and (clos in (".", "..") or "/" in clos or clos in _RESERVED):
            raise ConfigError(f"{_SRC}.closID: {clos!r} cannot name a resctrl group")
        if not clos and cid in _RESERVED:
            raise ConfigError(f"{_SRC}: container id {cid!r} cannot name a resctrl group "
                              "(set closID)")
        # runc's validation: each schema needs its feature on this host.
        for field, feature, name in (("l3CacheSchema", "L3", "CAT"),
                                     ("memBwSchema", "MB", "MBA")):
            if rdt.get(field) and not self.has(feature):
                raise ConfigError(f"{_SRC}.{field}: Intel RDT/{name} is not enabled on this "
                                  f"host (no info/{feature} in {self.root})")
        if rdt.get("enableMonitoring") and not self.has("L3_MON"):
            raise ConfigError(f"{_SRC}.enableMonitoring: resctrl monitoring is not enabled on "
                              f"this host (no info/L3_MON in {self.root})")
        for field in ("l3CacheSchema", "memBwSchema"):
            if "\n" in (rdt.get(field) or ""):
                raise ConfigError(f"{_SRC}.{field}: must not contain a newline")
        for i, line in enumerate(rdt.get("schemata") or []):
            if "\n" in line:
                raise ConfigError(f"{_SRC}.schemata[{i}]: must not contain a newline")
        path = self.group_path(rdt, cid)
        if clos and not schema_lines(rdt) and not os.path.isdir(path):
            raise ConfigError(f"{_SRC}.closID: group {clos!r} does not exist in {self.root} "
                              "(with no schema given it must be made beforehand)")

    def setup(self, rdt: dict[str, Any], cid: str) -> dict[str, Any]:
        """Make (or reuse) the group and its mon group, write the schemata.
        Returns what state.json keeps for join() and destroy(); on failure,
        what was made here is removed again."""
        path = self.group_path(rdt, cid)
        try:
            created = self.mkdir(path)
        except OSError as e:
            raise self._fail(f"cannot make group {path}", e) from None
        rec: dict[str, Any] = {"root": self.root, "path": path,
                               "remove": created and not rdt.get("closID")}
        try:
            lines = schema_lines(rdt)
            if lines and not created and rdt.get("closID"):
                self._compare(rdt, path)
            self.write_schemata(path, lines)
            if rdt.get("enableMonitoring"):
                mon = os.path.join(path, "mon_groups", cid)
                try:
                    self.mkdir(mon)
                except OSError as e:
                    raise self._fail(f"enableMonitoring: cannot make mon group {mon}", e) from None
                rec["monPath"] = mon
        except BaseException:
            if created:
                self.rmdir(path)
            raise
        return rec

    def write_schemata(self, path: str, lines: list[str]) -> None:
        """All lines in one write(2), so the kernel takes or refuses them together."""
        if lines:
            try:
                self._write(os.path.join(path, "schemata"), "".join(f"{s}\n" for s in lines))
            except OSError as e:
                raise self._fail(f"cannot write the schemata of {path}", e) from None

    def _compare(self, rdt: dict[str, Any], path: str) -> None:
        """config-linux.md: an existing closID group must already hold the
        l3CacheSchema/memBwSchema given. Only the cache ids given are compared;
        values as numbers (CBMs hex, MB decimal), so "L3:0=00f" matches "L3:0=f"."""
        try:
            with open(os.path.join(path, "schemata")) as f:
                have = _parse(f.read().splitlines())
        except OSError as e:
            raise self._fail(f"cannot read the schemata of {path}", e) from None
        for field in ("l3CacheSchema", "memBwSchema"):
            want = _parse([rdt.get(field) or ""])
            for res, doms in want.items():
                if any(have.get(res, {}).get(d) != v for d, v in doms.items()):
                    raise ConfigError(f"{_SRC}.{field}: {rdt[field]!r} does not match the "
                                      f"schemata of the existing group {rdt['closID']!r}")

    def join(self, rec: dict[str, Any], pid: int) -> None:
        """Put pid in the group, then in the mon group (the kernel wants it in
        the parent CTRL_MON group first). A group removed behind our back is
        skipped, as runc's exec does."""
        for key in ("path", "monPath"):
            if key in rec and os.path.isdir(rec[key]):
                try:
                    self._write(os.path.join(rec[key], "tasks"), str(pid))
                except OSError as e:
                    raise self._fail(f"cannot add pid {pid} to {rec[key]}", e) from None

    def stats(self, rec: dict[str, Any]) -> dict[str, Any]:
        """runc's events "intel_rdt" object: the group's schemata, the root's,
        the read-only info, and the monitoring counters per mon_data domain."""
        def read(*parts: str) -> str:
            with open(os.path.join(*parts)) as f:
                return f.read().strip()

        def num(d: str, name: str) -> int:
            return int(read(d, name))

        def line(lines: list[str], res: str) -> str:
            return next((s for s in lines if s.split(":")[0] == res), "")

        mine = [s.strip() for s in read(rec["path"], "schemata").splitlines()]
        root = [s.strip() for s in read(self.root, "schemata").splitlines()]
        out: dict[str, Any] = {"schemata": mine}
        if self.has("L3"):
            d = os.path.join(self.root, "info", "L3")
            out["l3_cache_info"] = {"cbm_mask": read(d, "cbm_mask"),
                                    "min_cbm_bits": num(d, "min_cbm_bits"),
                                    "num_closids": num(d, "num_closids")}
            out["l3_cache_schema_root"] = line(root, "L3")
            out["l3_cache_schema"] = line(mine, "L3")
        if self.has("MB"):
            d = os.path.join(self.root, "info", "MB")
            out["mem_bw_info"] = {k: num(d, k) for k in ("bandwidth_gran", "delay_linear",
                                                         "min_bandwidth", "num_closids")}
            out["mem_bw_schema_root"] = line(root, "MB")
            out["mem_bw_schema"] = line(mine, "MB")
        if self.has("L3_MON"):
            features = read(self.root, "info", "L3_MON", "mon_features").split()
            data = os.path.join(rec.get("monPath", rec["path"]), "mon_data")
            has_mbm = {"mbm_total_bytes", "mbm_local_bytes"} & set(features)
            mbm, cmt = [], []
            for dom in sorted(os.listdir(data)):
                d = os.path.join(data, dom)
                # runc: both counters, 0 for one the hardware lacks
                mbm.append({k: num(d, k) if k in features else 0
                            for k in ("mbm_total_bytes", "mbm_local_bytes")})
                if "llc_occupancy" in features:
                    cmt.append({"llc_occupancy": num(d, "llc_occupancy")})
            if has_mbm:
                out["mbm_stats"] = mbm
            if "llc_occupancy" in features:
                out["cmt_stats"] = cmt
        return out

    def destroy(self, rec: dict[str, Any]) -> None:
        if "monPath" in rec:
            self.rmdir(rec["monPath"])
        if rec.get("remove"):
            self.rmdir(rec["path"])


def _parse(lines: list[str]) -> dict[str, dict[str, Any]]:
    """{"L3": {"0": 0xff, ...}, "MB": {"0": 70}} from schemata lines."""
    out: dict[str, dict[str, Any]] = {}
    for line in lines:
        res, sep, rest = line.partition(":")
        res = res.strip()
        if not sep:
            continue
        doms = out.setdefault(res, {})
        for item in rest.split(";"):
            d, eq, v = item.partition("=")
            if not eq:
                continue
            v = v.strip()
            try:
                doms[d.strip()] = int(v, 10 if res == "MB" else 16)
            except ValueError:
                doms[d.strip()] = v
    return out


def open_for(rdt: dict[str, Any], cid: str) -> Resctrl:
    """create's check: the host's resctrl, refusing what it cannot honour.
    runc refuses intelRdt without resctrl too (its 1.1 only when a schema is set)."""
    root = find_root()
    if root is None:
        raise ConfigError(f"{_SRC}: Intel RDT is not available on this host (resctrl is "
                          "not mounted)")
    r = Resctrl(root)
    r.check(rdt, cid)
    return r


def join(rec: dict[str, Any], pid: int) -> None:
    Resctrl(rec["root"]).join(rec, pid)


def destroy(rec: dict[str, Any]) -> None:
    Resctrl(rec["root"]).destroy(rec)


def stats(rec: dict[str, Any]) -> dict[str, Any]:
    try:
        return Resctrl(rec["root"]).stats(rec)
    except (OSError, ValueError) as e:
        raise RdtError(f"intelRdt stats of {rec['path']}: "
                       f"{getattr(e, 'strerror', None) or e}") from None


_UPDATE_FLAGS = (("l3CacheSchema", "l3-cache-schema", "L3", "CAT"),
                 ("memBwSchema", "mem-bw-schema", "MB", "MBA"))


def update(state_root: Any, cid: str, new: dict[str, str]) -> None:
    """`update --l3-cache-schema/--mem-bw-schema`, as runc: refused when the
    feature is missing; else the container's schemata are rewritten (a
    container created without intelRdt gets its group now, init joining it)
    and the config in state.json keeps the new values."""
    from pyrunc.container import Container

    cdir, st, status = Container(state_root, cid).open()
    try:
        if status == "stopped":
            raise PyruncError("container not running")
        rec = st.extra.get("intelRdt")
        root = rec["root"] if rec else find_root()
        k = Resctrl(root) if root else None
        for field, flag, feature, name in _UPDATE_FLAGS:
            if "\n" in new.get(field, ""):
                raise PyruncError(f"update: --{flag}: must not contain a newline")
            if new.get(field) and (k is None or not k.has(feature)):
                why = f"no info/{feature} in {root}" if root else "resctrl is not mounted"
                raise PyruncError(f"update: --{flag}: Intel RDT/{name} is not enabled on this "
                                  f"host ({why})")
        assert k is not None  # a flag was given, and its feature found
        rdt = {**st.config.get("linux", {}).get("intelRdt", {}), **new}
        if rec is None:
            k.check(rdt, cid)
            rec = k.setup(rdt, cid)
            try:
                k.join(rec, st.pid)
            except BaseException:
                k.destroy(rec)
                raise
            st.extra["intelRdt"] = rec
        else:
            k.write_schemata(rec["path"], schema_lines(rdt))
        st.config.setdefault("linux", {})["intelRdt"] = rdt
        cdir.save(st)
    finally:
        cdir.unlock()
