"""Building the container's root filesystem inside its mount namespace:
propagation, the rootfs bind, `mounts` in order, /dev, pivot_root, then the
read-only and masked paths. Runs in the container's init (child side)."""

from __future__ import annotations

import _stat as stat  # stat.py only re-exports it
import errno
import posix  # not os: see pyrunc.posixfs

from pyrunc import mountinfo, posixfs
from pyrunc.init import mountopts, paths
from pyrunc.linux import libc as L
from pyrunc.linux import mountapi
from pyrunc.linux.openat2 import open_child

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


# Mounts allowed strictly inside the container's /proc (what lxcfs provides),
# as runc's checkProcMount: anything else there would shadow what the
# kernel shows about the container, or undo a mask.
PROC_MOUNTS_OK = {"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat",
                  "/proc/swaps", "/proc/uptime", "/proc/loadavg", "/proc/slabinfo",
                  "/proc/pressure/cpu", "/proc/pressure/io", "/proc/pressure/memory",
                  "/proc/net/dev", "/proc/sys/kernel/ns_last_pid"}


class MountError(Exception):
    pass


def _mount_err(idx: int, m: dict[str, Any], e: OSError) -> MountError:
    return MountError(f"config.json: mounts[{idx}]: cannot mount {m.get('source', m.get('type'))!r}"
                      f" on {m['destination']!r}: {e.strerror}")


def _moved() -> OSError:
    return OSError(errno.EXDEV, "the destination changed while mounting (a symlink race?); "
                   "refusing")


class Root:
    """The rootfs as an O_PATH fd (every lookup starts there) and where the
    kernel says that fd is (to check where a resolved fd really is)."""

    def __init__(self, path: str) -> None:
        self.fd = paths.open_root(path)
        self.path = paths.location(self.fd)

    def inside(self, fd: int) -> str:
        """fd's path as the container will see it; OSError if fd is not
        inside the rootfs (a directory moved out under us)."""
        loc = paths.location(fd)
        if loc == self.path:
            return "/"
        if loc.startswith(self.path + "/") and self.path != "/":
            return loc[len(self.path):]
        if self.path == "/" and loc.startswith("/"):
            return loc
        raise OSError(errno.EXDEV, f"resolved to {loc!r}, outside the rootfs; refusing")

    def close(self) -> None:
        posix.close(self.fd)


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
    if not (prop & L.MS_REC and prop & (L.MS_SLAVE | L.MS_PRIVATE)):
        _make_parent_private(rootfs)  # else no mount is shared any more
    L.mount(rootfs, rootfs, "bind", L.MS_BIND | L.MS_REC)
    # Opened after the bind: mounts made through it land on the bind, which
    # pivot_root makes "/".
    root = Root(rootfs)
    try:
        _prepare(cfg, root, linux, in_userns, before_cgroup)
    finally:
        root.close()


def _prepare(cfg: dict[str, Any], root: Root, linux: dict[str, Any], in_userns: bool,
             before_cgroup: Callable[[], None] | None) -> None:
    dev_bound = False
    for idx, m in enumerate(cfg.get("mounts", [])):
        if m.get("type") == "cgroup" and before_cgroup is not None:
            before_cgroup()
        try:
            mount_one(m, root, linux)
        except OSError as e:
            raise _mount_err(idx, m, e) from None
        if posixfs.normpath(m["destination"]) == "/dev" and mountopts.is_bind(m):
            dev_bound = True
    if not dev_bound:
        create_devices(root, DEFAULT_DEVICES, in_userns)
        _dev_symlinks(root)
    for idx, dev in enumerate(linux.get("devices", [])):
        try:
            create_devices(root, [(dev["path"], dev["type"], dev.get("major", 0),
                                   dev.get("minor", 0), dev.get("fileMode", 0o666))],
                           in_userns, dev.get("uid", 0), dev.get("gid", 0))
        except OSError as e:
            raise MountError(f"config.json: linux.devices[{idx}]: cannot create "
                             f"{dev['path']!r}: {e.strerror}") from None
    if cfg.get("process", {}).get("terminal"):
        _console_placeholder(root)
    cwd = cfg.get("process", {}).get("cwd")
    if cwd:
        try:
            posix.close(paths.mkdir_all(root.fd, cwd))
        except OSError as e:
            raise MountError(f"config.json: process.cwd: cannot create {cwd!r}: "
                             f"{e.strerror}") from None


def _make_parent_private(rootfs: str) -> None:
    """pivot_root refuses a shared parent mount; make just that one private."""
    mounts = mountinfo.read()
    parent = mountinfo.mount_of(posixfs.realpath(rootfs), mounts)
    if parent and any(o.startswith("shared:") for o in parent.optional):
        L.mount(None, parent.mountpoint, None, L.MS_PRIVATE)


def _check_proc(where: str, mtype: str, is_bind: bool) -> None:
    if where == "/proc":
        if mtype == "proc" or is_bind:
            return
        raise OSError(errno.EPERM, "only a proc mount may go on /proc")
    if where.startswith("/proc/") and where not in PROC_MOUNTS_OK:
        raise OSError(errno.EPERM, f"the destination resolves to {where!r}, inside /proc; "
                      "refusing")


def _landed(root: Root, dest_c: str, under: int, where: str, expect: int | None = None) -> int:
    """After mounting onto the fd `under`: look dest_c up again and check that
    it leads to the root of the new mount, at the same place (runc's mountFd
    check). Returns an O_PATH fd of that mount's root."""
    try:
        new = paths.resolve(root.fd, dest_c)
    except OSError:
        raise _moved() from None
    try:
        mnt, is_root = mountapi.mount_id(new)
        ok = is_root and paths.location(new) == paths.location(under)
        ok = ok and (mnt == expect if expect is not None else mnt != mountapi.mount_id(under)[0])
        if ok and root.inside(new) == where:
            return new
    except OSError:
        pass
    posix.close(new)
    raise _moved()


def mount_one(m: dict[str, Any], root: Root, linux: dict[str, Any]) -> None:
    dest_c = m["destination"]
    mtype = m.get("type", "")
    opts = list(m.get("options", []))
    if mtype == "bind" and "bind" not in opts and "rbind" not in opts:
        opts.append("bind")
    p = mountopts.parse(opts)
    source = m.get("source", "")
    if mtype == "cgroup":
        _mount_cgroup(dest_c, root, p, linux)
        return
    if p.is_bind:
        if posixfs.isdir(source):
            under = paths.mkdir_all(root.fd, dest_c)
        else:
            if not posixfs.exists(source):
                raise OSError(errno.ENOENT, "no such file or directory", source)
            under = paths.make_file(root.fd, dest_c)
        try:
            where = root.inside(under)
            _check_proc(where, mtype, True)
            if p.extensions & {"idmap", "ridmap"} or "uidMappings" in m:
                tree = _idmapped_tree(source, m, p, linux)
            else:
                tree = mountapi.open_tree(source, bool(p.flags & L.MS_REC))
            try:
                mountapi.move_mount(tree, under)
                posix.close(_landed(root, dest_c, under, where, mountapi.mount_id(tree)[0]))
            except BaseException:
                posix.close(tree)
                raise
        finally:
            posix.close(under)
        new = tree
        extra = p.flags & ~(L.MS_BIND | L.MS_REC | L.MS_REMOUNT)
        if extra:
            try:
                _remount(paths.fd_path(new), L.MS_BIND | L.MS_REMOUNT | extra)
            except BaseException:
                posix.close(new)
                raise
    else:
        under = paths.mkdir_all(root.fd, dest_c)
        try:
            where = root.inside(under)
            _check_proc(where, mtype, False)
            flags = p.flags
            delayed_ro = posixfs.normpath(dest_c) == "/dev" and flags & L.MS_RDONLY
            if delayed_ro:
                flags &= ~L.MS_RDONLY  # devices are created first; finalize() makes it read-only
            if "tmpcopyup" in p.extensions and mtype == "tmpfs":
                _tmpcopyup(under, flags, ",".join(p.data) or None)
            else:
                L.mount(source or mtype, paths.fd_path(under), mtype, flags,
                        ",".join(p.data) or None)
            # a remount changes the mount that is there: the same one must be found again
            same = mountapi.mount_id(under)[0] if flags & L.MS_REMOUNT else None
            new = _landed(root, dest_c, under, where, same)
        finally:
            posix.close(under)
    try:
        for prop in p.propagation:
            L.mount(None, paths.fd_path(new), None, prop)
        if p.attr_set or p.attr_clr:
            mountapi.setattr_fd(new, p.attr_set, p.attr_clr, recursive=True)
    finally:
        posix.close(new)


def _tmpcopyup(under: int, flags: int, data: str | None) -> None:
    """A tmpfs that starts with a copy of what the image had at `under`."""
    staging = f"/tmp/.pyrunc-tmpcopyup-{posix.getpid()}"
    posix.mkdir(staging, 0o700)
    moved = False
    try:
        L.mount("tmpfs", staging, "tmpfs", flags, data)
        src = posix.open(paths.fd_path(under), posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        dst = posix.open(staging, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW
                         | posix.O_CLOEXEC)
        try:
            _copy_tree(src, dst)
            st = posix.fstat(src)
            posix.chmod(dst, stat.S_IMODE(st.st_mode))
            posix.chown(dst, st.st_uid, st.st_gid)
        finally:
            posix.close(src)
            posix.close(dst)
        L.mount(staging, paths.fd_path(under), None, L.MS_MOVE)
        moved = True
    finally:
        if not moved:
            try:
                L.umount2(staging, L.MNT_DETACH)
            except OSError:
                pass
        posix.rmdir(staging)


_COPY_CHUNK = 1 << 20


def _copy_tree(src: int, dst: int) -> None:
    """Copy directory src into dst, both fds; never follows a symlink (an
    entry swapped for one meanwhile is an error, not a copy of its target)."""
    nofollow = posix.O_NOFOLLOW | posix.O_CLOEXEC
    for entry in posix.scandir(src):
        name = entry.name
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            posix.symlink(posix.readlink(name, dir_fd=src), name, dir_fd=dst)
        elif stat.S_ISDIR(st.st_mode):
            posix.mkdir(name, stat.S_IMODE(st.st_mode), dir_fd=dst)
            s = posix.open(name, posix.O_RDONLY | posix.O_DIRECTORY | nofollow, dir_fd=src)
            try:
                d = posix.open(name, posix.O_RDONLY | posix.O_DIRECTORY | nofollow, dir_fd=dst)
                try:
                    _copy_tree(s, d)
                    posix.chmod(d, stat.S_IMODE(st.st_mode))
                finally:
                    posix.close(d)
            finally:
                posix.close(s)
        elif stat.S_ISREG(st.st_mode):
            fi = posix.open(name, posix.O_RDONLY | posix.O_NONBLOCK | nofollow, dir_fd=src)
            try:
                if not stat.S_ISREG(posix.fstat(fi).st_mode):
                    raise OSError(errno.EXDEV, "changed while copying", name)
                fo = posix.open(name, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | nofollow,
                             stat.S_IMODE(st.st_mode), dir_fd=dst)
                try:
                    while chunk := posix.read(fi, _COPY_CHUNK):
                        posix.write(fo, chunk)
                    posix.chmod(fo, stat.S_IMODE(st.st_mode))
                finally:
                    posix.close(fo)
            finally:
                posix.close(fi)
        else:
            continue
        posix.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)


def _idmapped_tree(source: str, m: dict[str, Any], p: mountopts.Parsed,
                   linux: dict[str, Any]) -> int:
    """A detached bind of source whose ids are shifted (mount_setattr
    MOUNT_ATTR_IDMAP): by the mount's own uid/gidMappings, else by the
    container's user namespace."""
    if "uidMappings" in m or "gidMappings" in m:
        userns = _userns_with_maps(m.get("uidMappings", []), m.get("gidMappings", []))
    elif any(ns["type"] == "user" for ns in linux.get("namespaces", [])):
        userns = posix.open("/proc/self/ns/user", posix.O_RDONLY | posix.O_CLOEXEC)
    else:
        raise MountError(f"mount {m['destination']!r}: idmap needs uidMappings/gidMappings "
                         "or a user namespace")
    try:
        tree = mountapi.open_tree(source, bool(p.flags & L.MS_REC))
        try:
            mountapi.idmap(tree, userns, "ridmap" in p.extensions)
        except BaseException:
            posix.close(tree)
            raise
        return tree
    finally:
        posix.close(userns)


def _userns_with_maps(uid_maps: list[dict[str, int]], gid_maps: list[dict[str, int]]) -> int:
    """An fd of a new user namespace holding the given maps, made by a child
    that only lives long enough for us to open its namespace. /proc here may
    still be the host's (before pivot_root), so the child reports its pid as
    that /proc sees it."""
    from pyrunc.linux.userns import write_id_maps  # idmapped mounts only

    r, w = posix.pipe()
    back_r, back_w = posix.pipe()
    pid = posix.fork()
    if pid == 0:
        try:
            posix.close(w)
            posix.close(back_r)
            L.unshare(L.CLONE_NEWUSER)
            posix.write(back_w, posix.readlink("/proc/self").encode())
            posix.read(r, 1)  # until the parent has what it needs
        finally:
            posix._exit(0)
    posix.close(r)
    posix.close(back_w)
    try:
        proc_pid = posix.read(back_r, 32).decode()
        if not proc_pid:
            raise OSError("could not create a user namespace for an idmapped mount")
        write_id_maps(proc_pid, uid_maps, gid_maps)
        return posix.open(f"/proc/{proc_pid}/ns/user", posix.O_RDONLY | posix.O_CLOEXEC)
    finally:
        posix.close(w)
        posix.close(back_r)
        posix.waitpid(pid, 0)


def _remount(dest: str, flags: int) -> None:
    try:
        L.mount(None, dest, None, flags)
    except PermissionError:
        # Locked flags (a user namespace, or the source's own) must be kept.
        st = posix.statvfs(dest)
        L.mount(None, dest, None, flags | _statvfs_flags(st.f_flag))


def _statvfs_flags(f_flag: int) -> int:
    out = 0
    for st_bit, ms in ((posix.ST_RDONLY, L.MS_RDONLY), (posix.ST_NOSUID, L.MS_NOSUID),
                       (posix.ST_NODEV, L.MS_NODEV), (posix.ST_NOEXEC, L.MS_NOEXEC),
                       (posix.ST_NOATIME, L.MS_NOATIME), (posix.ST_NODIRATIME, L.MS_NODIRATIME),
                       (posix.ST_RELATIME, L.MS_RELATIME)):
        if f_flag & st_bit:
            out |= ms
    return out


def _mount_cgroup(dest_c: str, root: Root, p: mountopts.Parsed, linux: dict[str, Any]) -> None:
    """cgroup v2: mount cgroup2. v1: a tmpfs with one mount per hierarchy, each
    showing only the container's own cgroup (like runc)."""
    under = paths.mkdir_all(root.fd, dest_c)
    try:
        where = root.inside(under)
        _check_proc(where, "cgroup", False)
        flags = p.flags & ~L.MS_RDONLY
        mounts = mountinfo.read()
        host_root = mountinfo.mount_of("/sys/fs/cgroup", mounts)
        if host_root and host_root.fstype == "cgroup2":
            L.mount("cgroup", paths.fd_path(under), "cgroup2", p.flags)
            posix.close(_landed(root, dest_c, under, where))
            return
        L.mount("tmpfs", paths.fd_path(under), "tmpfs", flags, "mode=755")
        top = _landed(root, dest_c, under, where)
    finally:
        posix.close(under)
    try:
        _mount_cgroup_v1(top, mounts, p, flags, linux)
    finally:
        posix.close(top)


def _mount_cgroup_v1(top: int, mounts: list[mountinfo.Mount], p: mountopts.Parsed, flags: int,
                     linux: dict[str, Any]) -> None:
    """The hierarchies inside `top`, our fresh tmpfs (nobody else reaches it)."""
    own_ns = any(ns.get("type") == "cgroup" for ns in linux.get("namespaces", []))
    my_paths = _own_cgroup_paths()
    names = []
    for m in mounts:
        if m.fstype != "cgroup" or not m.mountpoint.startswith("/sys/fs/cgroup/"):
            continue
        opts = set(m.super_options.split(","))
        match = next(((c, path) for c, path in my_paths.items() if set(c.split(",")) <= opts),
                     None)
        if match is None:
            continue
        ctrls, path = match
        name = posixfs.basename(m.mountpoint)
        posix.mkdir(name, 0o755, dir_fd=top)
        target = open_child(top, name)
        try:
            if own_ns:
                L.mount("cgroup", paths.fd_path(target), "cgroup", flags, ctrls)
            else:
                src = posixfs.normpath(posixfs.join(m.mountpoint, posixfs.relpath(path, m.root)))
                L.mount(src, paths.fd_path(target), None, L.MS_BIND | L.MS_REC)
        finally:
            posix.close(target)
        names.append(name)
    if p.flags & L.MS_RDONLY:
        _cgroup_v1_readonly(top, names, flags)


def _cgroup_v1_readonly(top: int, names: list[str], flags: int) -> None:
    """The tmpfs and every hierarchy in it read-only, with the mount's
    nosuid/nodev/noexec: one recursive mount_setattr (Linux 5.12+) instead
    of a remount each."""
    attrs = mountapi.MOUNT_ATTR_RDONLY
    for ms, attr in ((L.MS_NOSUID, mountapi.MOUNT_ATTR_NOSUID),
                     (L.MS_NODEV, mountapi.MOUNT_ATTR_NODEV),
                     (L.MS_NOEXEC, mountapi.MOUNT_ATTR_NOEXEC)):
        if flags & ms:
            attrs |= attr
    try:
        mountapi.setattr_fd(top, attrs, recursive=True)
        return
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
    for name in names:
        sub = posix.open(name, posix.O_PATH | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=top)
        try:
            _remount(paths.fd_path(sub), L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | flags)
        finally:
            posix.close(sub)
    L.mount(None, paths.fd_path(top), None, L.MS_REMOUNT | L.MS_RDONLY | flags, "mode=755")


def _own_cgroup_paths() -> dict[str, str]:
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls:
                out[ctrls] = path
    return out


_NODE_KIND = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def create_devices(root: Root, devices: list[tuple[str, str, int, int, int]], in_userns: bool,
                   uid: int = 0, gid: int = 0) -> None:
    parents: dict[str, int] = {}  # each directory resolved once (runc's six: all in /dev)
    old = posix.umask(0)
    try:
        for path, dtype, major, minor, mode in devices:
            where, name = paths.split(path)
            parent = parents.get(where)
            if parent is None:
                parent = parents[where] = paths.mkdir_all(root.fd, where)
                root.inside(parent)
            if in_userns:
                # mknod is not allowed in a user namespace: bind the host's node instead
                fd = paths.create_in(parent, name, "file")
                try:
                    mountapi.attach(mountapi.open_tree(path, False), fd)
                finally:
                    posix.close(fd)
                continue
            fd = paths.create_in(parent, name, "node", _NODE_KIND[dtype] | (mode & 0o7777),
                                 posix.makedev(major, minor))
            try:
                posix.chown(paths.fd_path(fd), uid, gid)  # the node made, whatever is at name now
            finally:
                posix.close(fd)
    finally:
        posix.umask(old)
        for fd in parents.values():
            posix.close(fd)


def _dev_symlinks(root: Root) -> None:
    links = list(DEV_SYMLINKS)
    if posixfs.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    dev = paths.mkdir_all(root.fd, "/dev")
    try:
        root.inside(dev)
        for target, link in links:
            try:
                posix.symlink(target, posixfs.basename(link), dir_fd=dev)
            except FileExistsError:
                pass
        posix.close(paths.create_in(dev, "ptmx", "symlink", target="pts/ptmx"))
    finally:
        posix.close(dev)


def _console_placeholder(root: Root) -> None:
    """An empty /dev/console for mount_console to cover later (/dev may be
    read-only by then)."""
    dev = paths.mkdir_all(root.fd, "/dev")
    try:
        root.inside(dev)
        posix.close(posix.open("console", posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW
                               | posix.O_WRONLY | posix.O_CLOEXEC, 0o600, dir_fd=dev))
    except FileExistsError:
        pass
    finally:
        posix.close(dev)


def mount_console(slave: int) -> None:
    """/dev/console becomes the container's pty (spec: the pty is bind-mounted
    there). The source is the slave fd itself, the target is the "console"
    entry of /dev, opened without following a symlink: an image's symlink
    there must not get the pty (or a remount) onto another file (the
    CVE-2025-52565 class). After pivot_root, so no /proc path is used."""
    st = posix.fstat(slave)
    if not stat.S_ISCHR(st.st_mode) or not 136 <= posix.major(st.st_rdev) < 144:
        raise MountError("the console is not a pty slave; refusing to mount it")
    root = paths.open_root("/")
    try:
        dev = paths.resolve(root, "/dev")
    finally:
        posix.close(root)
    try:
        try:
            target = open_child(dev, "console")
        except FileNotFoundError:
            target = paths.create_in(dev, "console", "file", 0o600)
        try:
            kind = posix.fstat(target).st_mode
            if not (stat.S_ISREG(kind) or stat.S_ISCHR(kind)):
                raise MountError("/dev/console in the container is not a file or a device "
                                 "(a symlink?); refusing to mount the console there")
            mountapi.attach(mountapi.open_tree("", False, dirfd=slave), target)
        finally:
            posix.close(target)
    finally:
        posix.close(dev)


def enter(rootfs: str, no_pivot: bool) -> None:
    """Make rootfs the container's "/"."""
    posix.chdir(rootfs)
    if no_pivot:
        L.mount(rootfs, "/", None, L.MS_MOVE)
        posix.chroot(".")
        posix.chdir("/")
        return
    old = posix.open("/", posix.O_DIRECTORY | posix.O_RDONLY | posix.O_CLOEXEC)
    new = posix.open(rootfs, posix.O_DIRECTORY | posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        L.pivot_root(".", ".")
        # The old root now sits under "/": detach it without touching the host's mounts.
        posix.fchdir(old)
        L.mount(None, ".", None, L.MS_SLAVE | L.MS_REC)
        L.umount2(".", L.MNT_DETACH)
        posix.fchdir(new)
    finally:
        posix.close(old)
        posix.close(new)
    posix.chdir("/")


def apply_root_propagation(linux: dict[str, Any]) -> None:
    """Like runc, a configured rootfsPropagation also applies to the new "/"."""
    prop = mountopts.PROPAGATION.get(linux.get("rootfsPropagation", ""))
    if prop:
        L.mount(None, "/", None, prop)


def finalize(cfg: dict[str, Any]) -> None:
    """After pivot_root: /dev and / read-only."""
    for m in cfg.get("mounts", []):
        if posixfs.normpath(m["destination"]) == "/dev" and "ro" in m.get("options", []) \
                and m.get("type") != "bind":
            L.mount(None, "/dev", None, L.MS_REMOUNT | L.MS_RDONLY)
    if cfg.get("root", {}).get("readonly"):
        _remount("/", L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | L.MS_REC)


def protect_paths(linux: dict[str, Any]) -> None:
    """readonlyPaths, then maskedPaths (after sysctls are written, like runc).
    After pivot_root: each path is resolved inside "/" to an fd and the
    mount goes onto that fd (open_tree/move_mount), never through /proc,
    which is the container's now."""
    readonly = linux.get("readonlyPaths", [])
    masked = linux.get("maskedPaths", [])
    if not readonly and not masked:
        return
    root = paths.open_root("/")
    try:
        for idx, path in enumerate(readonly):
            try:
                readonly_path(root, path)
            except OSError as e:
                raise MountError(f"config.json: linux.readonlyPaths[{idx}]: cannot make "
                                 f"{path!r} read-only: {e.strerror}") from None
        if not masked:
            return
        null_fd = _dev_null_fd(root)
        try:
            for idx, path in enumerate(masked):
                try:
                    mask_path(root, path, null_fd)
                except OSError as e:
                    raise MountError(f"config.json: linux.maskedPaths[{idx}]: cannot mask "
                                     f"{path!r}: {e.strerror}") from None
        finally:
            posix.close(null_fd)
    finally:
        posix.close(root)


def readonly_path(root: int, path: str) -> None:
    """A recursive bind of path onto itself, its top mount read-only (as runc)."""
    try:
        fd = paths.resolve(root, path)
    except FileNotFoundError:
        return
    try:
        tree = mountapi.open_tree("", True, dirfd=fd)
        try:
            mountapi.setattr_fd(tree, mountapi.MOUNT_ATTR_RDONLY)
        except BaseException:
            posix.close(tree)
            raise
        mountapi.attach(tree, fd)
    finally:
        posix.close(fd)


def _dev_null_fd(root: int) -> int:
    """An O_PATH fd of /dev/null, refusing anything but the real 1:3 node: an
    image may plant a symlink there to get a host file bind-mounted over the
    masked paths (CVE-2025-31133). The mask is made from this very fd."""
    try:
        fd = paths.resolve(root, "/dev/null", nofollow=True)
    except OSError as e:
        raise MountError(f"/dev/null in the container cannot be opened ({e.strerror}); "
                         "refusing to mask paths without it") from None
    st = posix.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != posix.makedev(1, 3):
        posix.close(fd)
        raise MountError("/dev/null in the container is not the null device (1:3); refusing "
                         "to use it to mask paths")
    return fd


def mask_path(root: int, path: str, null_fd: int) -> None:
    """/dev/null over a file, an empty read-only tmpfs over a directory."""
    try:
        fd = paths.resolve(root, path)
    except FileNotFoundError:
        return
    try:
        if stat.S_ISDIR(posix.fstat(fd).st_mode):
            tree = mountapi.empty_tmpfs_ro()
        else:
            tree = mountapi.open_tree("", False, dirfd=null_fd)
        mountapi.attach(tree, fd)
    finally:
        posix.close(fd)
