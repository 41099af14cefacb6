"""Building the container's root filesystem inside its mount namespace:
propagation, the rootfs bind, `mounts` in order, /dev, pivot_root, then the
read-only and masked paths. Runs in the container's init (child side)."""

from __future__ import annotations

import errno
import os
import stat

from pyrunc import mountinfo
from pyrunc.init import mountopts
from pyrunc.init.paths import mkdir_all, secure_join, touch
from pyrunc.linux import libc as L
from pyrunc.linux.userns import write_id_maps

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

DEFAULT_DEVICES = [  # path, type, major, minor, mode: the nodes runc always provides
    ("/dev/null", "c", 1, 3, 0o666),
    ("/dev/zero", "c", 1, 5, 0o666),
    ("/dev/full", "c", 1, 7, 0o666),
    ("/dev/random", "c", 1, 8, 0o666),
    ("/dev/urandom", "c", 1, 9, 0o666),
    ("/dev/tty", "c", 5, 0, 0o666),
]
DEV_SYMLINKS = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
]


class MountError(Exception):
    pass


def _mount_err(idx: int, m: dict[str, Any], e: OSError) -> MountError:
    return MountError(f"config.json: mounts[{idx}]: cannot mount {m.get('source', m.get('type'))!r}"
                      f" on {m['destination']!r}: {e.strerror}")


def prepare(cfg: dict[str, Any], rootfs: str, in_userns: bool,
            before_cgroup: Callable[[], None] | None = None) -> None:
    """Everything up to (not including) pivot_root. before_cgroup runs ahead
    of a cgroup mount, which shows the cgroups init is in."""
    linux = cfg.get("linux", {})
    prop = mountopts.PROPAGATION.get(linux.get("rootfsPropagation", ""),
                                     L.MS_SLAVE | L.MS_REC)
    if prop & L.MS_UNBINDABLE:
        prop = L.MS_SLAVE | L.MS_REC  # the rootfs is bound from "/" first; after pivot_root
    L.mount(None, "/", None, prop)
    _make_parent_private(rootfs)
    L.mount(rootfs, rootfs, "bind", L.MS_BIND | L.MS_REC)

    dev_bound = False
    for idx, m in enumerate(cfg.get("mounts", [])):
        if m.get("type") == "cgroup" and before_cgroup is not None:
            before_cgroup()
        try:
            mount_one(m, rootfs, linux)
        except OSError as e:
            raise _mount_err(idx, m, e) from None
        if os.path.normpath(m["destination"]) == "/dev" and _is_bind(m):
            dev_bound = True
    if not dev_bound:
        create_devices(rootfs, DEFAULT_DEVICES, in_userns)
        _dev_symlinks(rootfs)
    for dev in linux.get("devices", []):
        create_devices(rootfs, [(dev["path"], dev["type"], dev.get("major", 0),
                                 dev.get("minor", 0), dev.get("fileMode", 0o666))],
                       in_userns, dev.get("uid", 0), dev.get("gid", 0))
    cwd = cfg.get("process", {}).get("cwd")
    if cwd:
        mkdir_all(rootfs, cwd)


def _is_bind(m: dict[str, Any]) -> bool:
    opts = m.get("options", [])
    return m.get("type") == "bind" or "bind" in opts or "rbind" in opts


def _make_parent_private(rootfs: str) -> None:
    """pivot_root refuses a shared parent mount; make just that one private."""
    mounts = mountinfo.read()
    parent = mountinfo.mount_of(os.path.realpath(rootfs), mounts)
    if parent and any(o.startswith("shared:") for o in parent.optional):
        L.mount(None, parent.mountpoint, None, L.MS_PRIVATE)


def mount_one(m: dict[str, Any], rootfs: str, linux: dict[str, Any]) -> None:
    dest_c = m["destination"]
    mtype = m.get("type", "")
    opts = list(m.get("options", []))
    if mtype == "bind" and "bind" not in opts and "rbind" not in opts:
        opts.append("bind")
    p = mountopts.parse(opts)
    source = m.get("source", "")
    if mtype == "cgroup":
        _mount_cgroup(dest_c, rootfs, p, linux)
        return
    if p.is_bind:
        if os.path.isdir(source):
            dest = mkdir_all(rootfs, dest_c)
        else:
            if not os.path.exists(source):
                raise OSError(errno.ENOENT, "no such file or directory", source)
            dest = touch(rootfs, dest_c)
        if p.extensions & {"idmap", "ridmap"} or "uidMappings" in m:
            _idmapped_bind(source, dest, m, p, linux)
        else:
            L.mount(source, dest, None, L.MS_BIND | (p.flags & L.MS_REC))
        extra = p.flags & ~(L.MS_BIND | L.MS_REC | L.MS_REMOUNT)
        if extra:
            _remount(dest, L.MS_BIND | L.MS_REMOUNT | extra)
    else:
        dest = mkdir_all(rootfs, dest_c)
        flags = p.flags
        delayed_ro = os.path.normpath(dest_c) == "/dev" and flags & L.MS_RDONLY
        if delayed_ro:
            flags &= ~L.MS_RDONLY  # devices are created first; finalize() makes it read-only
        if "tmpcopyup" in p.extensions and mtype == "tmpfs":
            _tmpcopyup(dest, flags, ",".join(p.data) or None)
        else:
            L.mount(source or mtype, dest, mtype, flags, ",".join(p.data) or None)
    for prop in p.propagation:
        L.mount(None, dest, None, prop)
    if p.attr_set or p.attr_clr:
        from pyrunc.linux import mountapi
        mountapi.setattr_recursive(dest, p.attr_set, p.attr_clr)


def _tmpcopyup(dest: str, flags: int, data: str | None) -> None:
    """A tmpfs that starts with a copy of what the image had at dest."""
    staging = f"/tmp/.pyrunc-tmpcopyup-{os.getpid()}"
    os.mkdir(staging, 0o700)
    try:
        L.mount("tmpfs", staging, "tmpfs", flags, data)
        _copy_tree(dest, staging)
        st = os.stat(dest)
        os.chmod(staging, stat.S_IMODE(st.st_mode))
        os.chown(staging, st.st_uid, st.st_gid)
        L.mount(staging, dest, None, L.MS_MOVE)
    finally:
        os.rmdir(staging)


def _copy_tree(src: str, dst: str) -> None:
    for entry in os.scandir(src):
        s, d = entry.path, os.path.join(dst, entry.name)
        st = entry.stat(follow_symlinks=False)
        if entry.is_symlink():
            os.symlink(os.readlink(s), d)
        elif entry.is_dir(follow_symlinks=False):
            os.mkdir(d, stat.S_IMODE(st.st_mode))
            _copy_tree(s, d)
        elif entry.is_file(follow_symlinks=False):
            with open(s, "rb") as fi, open(d, "wb") as fo:
                fo.write(fi.read())
            os.chmod(d, stat.S_IMODE(st.st_mode))
        else:
            continue
        os.lchown(d, st.st_uid, st.st_gid)


def _idmapped_bind(source: str, dest: str, m: dict[str, Any], p: mountopts.Parsed,
                   linux: dict[str, Any]) -> None:
    """A bind mount whose ids are shifted (mount_setattr MOUNT_ATTR_IDMAP): by
    the mount's own uid/gidMappings, else by the container's user namespace."""
    from pyrunc.linux import mountapi

    if "uidMappings" in m or "gidMappings" in m:
        userns = _userns_with_maps(m.get("uidMappings", []), m.get("gidMappings", []))
    elif any(ns["type"] == "user" for ns in linux.get("namespaces", [])):
        userns = os.open("/proc/self/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    else:
        raise MountError(f"mount {m['destination']!r}: idmap needs uidMappings/gidMappings "
                         "or a user namespace")
    try:
        tree = mountapi.open_tree(source, bool(p.flags & L.MS_REC))
        try:
            mountapi.idmap(tree, userns, "ridmap" in p.extensions)
            mountapi.move_mount(tree, dest)
        finally:
            os.close(tree)
    finally:
        os.close(userns)


def _userns_with_maps(uid_maps: list[dict[str, int]], gid_maps: list[dict[str, int]]) -> int:
    """An fd of a new user namespace holding the given maps, made by a child
    that only lives long enough for us to open its namespace. /proc here may
    still be the host's (before pivot_root), so the child reports its pid as
    that /proc sees it."""
    r, w = os.pipe()
    back_r, back_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)
            os.close(back_r)
            L.unshare(L.CLONE_NEWUSER)
            os.write(back_w, os.readlink("/proc/self").encode())
            os.read(r, 1)  # until the parent has what it needs
        finally:
            os._exit(0)
    os.close(r)
    os.close(back_w)
    try:
        proc_pid = os.read(back_r, 32).decode()
        if not proc_pid:
            raise OSError("could not create a user namespace for an idmapped mount")
        write_id_maps(proc_pid, uid_maps, gid_maps)
        return os.open(f"/proc/{proc_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(w)
        os.close(back_r)
        os.waitpid(pid, 0)


def _remount(dest: str, flags: int) -> None:
    try:
        L.mount(None, dest, None, flags)
    except PermissionError:
        # Locked flags (a user namespace, or the source's own) must be kept.
        st = os.statvfs(dest)
        L.mount(None, dest, None, flags | _statvfs_flags(st.f_flag))


def _statvfs_flags(f_flag: int) -> int:
    out = 0
    for st_bit, ms in ((os.ST_RDONLY, L.MS_RDONLY), (os.ST_NOSUID, L.MS_NOSUID),
                       (os.ST_NODEV, L.MS_NODEV), (os.ST_NOEXEC, L.MS_NOEXEC),
                       (os.ST_NOATIME, L.MS_NOATIME), (os.ST_NODIRATIME, L.MS_NODIRATIME),
                       (os.ST_RELATIME, L.MS_RELATIME)):
        if f_flag & st_bit:
            out |= ms
    return out


def _mount_cgroup(dest_c: str, rootfs: str, p: mountopts.Parsed, linux: dict[str, Any]) -> None:
    """cgroup v2: mount cgroup2. v1: a tmpfs with one mount per hierarchy, each
    showing only the container's own cgroup (like runc)."""
    dest = mkdir_all(rootfs, dest_c)
    flags = p.flags & ~L.MS_RDONLY
    mounts = mountinfo.read()
    host_root = mountinfo.mount_of("/sys/fs/cgroup", mounts)
    if host_root and host_root.fstype == "cgroup2":
        L.mount("cgroup", dest, "cgroup2", p.flags)
        return
    own_ns = any(ns.get("type") == "cgroup" for ns in linux.get("namespaces", []))
    my_paths = _own_cgroup_paths()
    L.mount("tmpfs", dest, "tmpfs", flags, "mode=755")
    for m in mounts:
        if m.fstype != "cgroup" or not m.mountpoint.startswith("/sys/fs/cgroup/"):
            continue
        opts = set(m.super_options.split(","))
        match = next(((c, path) for c, path in my_paths.items() if set(c.split(",")) <= opts),
                     None)
        if match is None:
            continue
        ctrls, path = match
        target = os.path.join(dest, os.path.basename(m.mountpoint))
        os.mkdir(target, 0o755)
        if own_ns:
            L.mount("cgroup", target, "cgroup", flags, ctrls)
        else:
            src = os.path.normpath(os.path.join(m.mountpoint, os.path.relpath(path, m.root)))
            L.mount(src, target, None, L.MS_BIND | L.MS_REC)
        if p.flags & L.MS_RDONLY:
            _remount(target, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | flags)
    if p.flags & L.MS_RDONLY:
        L.mount(None, dest, None, L.MS_REMOUNT | L.MS_RDONLY | flags, "mode=755")


def _own_cgroup_paths() -> dict[str, str]:
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls:
                out[ctrls] = path
    return out


def create_devices(rootfs: str, devices: list[tuple[str, str, int, int, int]], in_userns: bool,
                   uid: int = 0, gid: int = 0) -> None:
    for path, dtype, major, minor, mode in devices:
        host = secure_join(rootfs, path)
        if in_userns:
            # mknod is not allowed in a user namespace: bind the host's node instead
            touch(rootfs, path)
            L.mount(path, host, None, L.MS_BIND)
            continue
        mkdir_all(rootfs, os.path.dirname(path))
        if os.path.lexists(host):
            if not stat.S_ISDIR(os.lstat(host).st_mode):
                os.unlink(host)
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[dtype]
        old = os.umask(0)
        try:
            os.mknod(host, kind | (mode & 0o7777), os.makedev(major, minor))
        finally:
            os.umask(old)
        os.chown(host, uid, gid)


def _dev_symlinks(rootfs: str) -> None:
    links = list(DEV_SYMLINKS)
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    for target, link in links:
        host = secure_join(rootfs, link)
        try:
            os.symlink(target, host)
        except FileExistsError:
            pass
    ptmx = secure_join(rootfs, "/dev/ptmx")
    if os.path.lexists(ptmx):
        os.unlink(ptmx)
    os.symlink("pts/ptmx", ptmx)


def enter(rootfs: str, no_pivot: bool) -> None:
    """Make rootfs the container's "/"."""
    os.chdir(rootfs)
    if no_pivot:
        L.mount(rootfs, "/", None, L.MS_MOVE)
        os.chroot(".")
        os.chdir("/")
        return
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        L.pivot_root(".", ".")
        # The old root now sits under "/": detach it without touching the host's mounts.
        os.fchdir(old)
        L.mount(None, ".", None, L.MS_SLAVE | L.MS_REC)
        L.umount2(".", L.MNT_DETACH)
        os.fchdir(new)
    finally:
        os.close(old)
        os.close(new)
    os.chdir("/")


def apply_root_propagation(linux: dict[str, Any]) -> None:
    """Like runc, a configured rootfsPropagation also applies to the new "/"."""
    prop = mountopts.PROPAGATION.get(linux.get("rootfsPropagation", ""))
    if prop:
        L.mount(None, "/", None, prop)


def finalize(cfg: dict[str, Any]) -> None:
    """After pivot_root: /dev and / read-only."""
    for m in cfg.get("mounts", []):
        if os.path.normpath(m["destination"]) == "/dev" and "ro" in m.get("options", []) \
                and m.get("type") != "bind":
            L.mount(None, "/dev", None, L.MS_REMOUNT | L.MS_RDONLY)
    if cfg.get("root", {}).get("readonly"):
        _remount("/", L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | L.MS_REC)


def protect_paths(linux: dict[str, Any]) -> None:
    """readonlyPaths, then maskedPaths (after sysctls are written, like runc)."""
    for path in linux.get("readonlyPaths", []):
        readonly_path(path)
    masked = linux.get("maskedPaths", [])
    if not masked:
        return
    null_fd = _dev_null_fd()
    try:
        for path in masked:
            mask_path(path, null_fd)
    finally:
        os.close(null_fd)


def readonly_path(path: str) -> None:
    try:
        L.mount(path, path, None, L.MS_BIND | L.MS_REC)
    except FileNotFoundError:
        return
    _remount(path, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | L.MS_REC)


def _dev_null_fd() -> int:
    """An O_PATH fd of /dev/null, refusing anything but the real 1:3 node: an
    image may plant a symlink there to get a host file bind-mounted over the
    masked paths (CVE-2025-31133)."""
    fd = os.open("/dev/null", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise MountError("/dev/null in the container is not the null device (1:3); refusing "
                         "to use it to mask paths")
    return fd


def mask_path(path: str, null_fd: int | None = None) -> None:
    src = f"/proc/self/fd/{null_fd}" if null_fd is not None else "/dev/null"
    try:
        L.mount(src, path, None, L.MS_BIND)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        pass
    else:
        return
    # directories get an empty read-only tmpfs
    L.mount("tmpfs", path, "tmpfs", L.MS_RDONLY)
