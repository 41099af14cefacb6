"""checkpoint and restore through CRIU's command line, with runc's flags.

runc drives `criu swrk` over protobuf RPC; pyrunc runs `criu dump` and
`criu restore` instead: no protobuf dependency, and every option runc sets
has a command-line twin (runc's "setup-namespaces" notification, where it
runs the prestart and createRuntime hooks, is criu's --action-script step),
except the pty master hand-over (orphan_pts_master), so terminal containers
are refused with one clear line rather than half-done. Not a hot path: only
these two commands import this module.
"""

from __future__ import annotations

import os
import subprocess

from pyrunc.errors import PyruncError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.cgroups import Manager
    from pyrunc.cliparse import Namespace
    from pyrunc.state import Root, State


DESCRIPTORS = "descriptors.json"  # runc's file: the init's stdio, for restore
HOOK_ERROR = "criu-hook.err"  # a failing restore hook's message, for the one error line


class CriuError(PyruncError):
    """criu ran and failed; the message names its failing step from the log."""


# ---- criu itself ------------------------------------------------------------------
def find_criu(path: str) -> str:
    """The criu binary (--criu, default "criu" on PATH), or one clear line."""
    import shutil

    found = shutil.which(path)  # a path with a "/" is checked as it is
    if not found:
        raise PyruncError(f"criu binary {path!r} not found: install CRIU (Debian package "
                          "criu) or give its path with --criu PATH")
    return found


def log_failure(log_path: str) -> str:
    """'<last error> (after: <earlier errors>)' from a criu log. criu logs the
    step that gave up last; the root cause is one of the errors before it
    (not always the first: some errors are not fatal), so they are all named,
    the first two and the last two when there are more."""
    try:
        with open(log_path, errors="replace") as f:
            errors = [line.split("): ", 1)[-1].strip().rstrip(".")
                      for line in f if "Error (" in line]
    except OSError:
        return "no log written"
    if not errors:
        return "no error in its log"
    last, earlier = errors[-1], list(dict.fromkeys(e for e in errors[:-1] if e != errors[-1]))
    if len(earlier) > 4:
        earlier = [*earlier[:2], "...", *earlier[-2:]]
    return f"{last} (after: {'; '.join(earlier)})" if earlier else last


def _run_criu(argv: list[str], action: str, log_path: str, in_cgroup: Manager | None = None,
              keep_stdio: bool = False, pass_fds: list[int] | None = None) -> None:
    """Run criu; a non-zero exit becomes one CriuError line naming the step."""
    try:
        os.unlink(log_path)  # a stale log from an earlier run would mislead
    except FileNotFoundError:
        pass

    def join_cgroup() -> None:  # runc's criuApplyCgroups: restored tasks start there
        if in_cgroup is not None:
            in_cgroup.apply(os.getpid())

    # On restore criu's stdio is ours, as in runc: --inherit-fd hands it to the
    # restored init, so it must not be a pipe we wait on.
    quiet = None if keep_stdio else subprocess.DEVNULL
    try:
        p = subprocess.run(argv, stdin=quiet, stdout=quiet,
                           stderr=None if keep_stdio else subprocess.PIPE,
                           preexec_fn=join_cgroup, check=False, pass_fds=pass_fds or ())
    except subprocess.SubprocessError as e:  # join_cgroup failed in the child
        raise PyruncError(f"{action}: cannot start criu in the container's cgroup: {e}") \
            from None
    except OSError as e:
        raise PyruncError(f"{action}: cannot run {argv[0]}: {e.strerror}") from None
    if p.returncode != 0:
        why = log_failure(log_path)
        if why == "no log written" and p.stderr and p.stderr.strip():
            why = p.stderr.decode(errors="replace").strip().splitlines()[-1]
        raise CriuError(f"criu {argv[1]} failed: {why}; log file: {log_path}")


def _directory(path: str, flag: str, create: bool) -> str:
    path = os.path.abspath(path)
    if create:
        try:
            os.makedirs(path, 0o700, exist_ok=True)
        except FileExistsError:
            pass  # a file: reported below
        except OSError as e:
            raise PyruncError(f"{flag} {path}: {(e.strerror or str(e)).lower()}") from None
    if not os.path.isdir(path):
        raise PyruncError(f"{flag} {path}: " + (
            "not a directory" if os.path.exists(path) else "no such directory"))
    return path


def _common_flags(args: Namespace) -> list[str]:
    out = []
    for flag in ("tcp_established", "ext_unix_sk", "shell_job", "file_locks", "auto_dedup",
                 "lazy_pages"):
        if getattr(args, flag, False):
            out.append("--" + flag.replace("_", "-"))
    if args.manage_cgroups_mode:
        out.append(f"--manage-cgroups={args.manage_cgroups_mode}")
    else:
        out.append("--manage-cgroups")  # runc always asks criu to manage them (soft)
    return out


def check_empty_ns(values: list[str]) -> None:
    """runc accepts only "network" (and always empties the network namespace)."""
    for v in values:
        if v != "network":
            raise UsageError(f"--empty-ns: namespace {v!r} is not supported "
                             "(only \"network\")")


def _bind_mounts(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    from pyrunc.init.mountopts import is_bind

    return [m for m in cfg.get("mounts", []) if is_bind(m)]


def _namespace(cfg: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for ns in cfg.get("linux", {}).get("namespaces", []):
        if ns.get("type") == kind:
            return ns
    return None


def _refuse_terminal(cfg: dict[str, Any], action: str) -> None:
    if cfg.get("process", {}).get("terminal"):
        raise PyruncError(f"{action}: a container with a terminal (process.terminal) cannot "
                          f"be {action}d by pyrunc: criu's command line cannot hand the pty "
                          "master over (runc uses criu's RPC for that)")


# ---- checkpoint ---------------------------------------------------------------------
def checkpoint(root: Root, cid: str, args: Namespace) -> None:
    from pyrunc.container import Container, manager_for

    check_empty_ns(args.empty_ns)
    page_server = _page_server(args.page_server) if args.page_server else []
    c = Container(root, cid)
    cdir, st, status = c.open()
    try:
        if status not in ("running", "paused"):
            raise PyruncError("Container cannot be checkpointed in created or stopped state")
        _refuse_terminal(st.config, "checkpoint")
        criu = find_criu(args.criu)
        image = _directory(args.image_path or os.path.join(os.getcwd(), "checkpoint"),
                           "--image-path", create=True)
        work = _directory(args.work_path, "--work-path", create=True) \
            if args.work_path else image
        mgr = manager_for(st)
        action = "pre-dump" if args.pre_dump else "dump"
        argv = [criu, action, "-t", str(st.pid), "-D", image, "-W", work,
                "-o", f"{action}.log", "-v4", "--root", st.rootfs, *_common_flags(args),
                *page_server]
        if args.lazy_pages and args.status_fd != -1:  # runc ignores it otherwise
            argv += ["--status-fd", str(args.status_fd)]
        if args.parent_path:
            argv += ["--prev-images-dir", _parent_dir(args.parent_path, image), "--track-mem"]
        elif args.pre_dump:
            argv.append("--track-mem")
        if args.leave_running and not args.pre_dump:
            argv.append("--leave-running")
        freezer = mgr.dir_of("freezer") if mgr else None
        if freezer:
            argv += ["--freeze-cgroup", freezer]
        argv += _dump_externals(st, mgr)
        _write_descriptors(image, st.pid)
        try:
            _run_criu(argv, "checkpoint", os.path.join(work, f"{action}.log"),
                      pass_fds=[args.status_fd] if "--status-fd" in argv else None)
        finally:
            if status == "running" and mgr is not None and mgr.is_frozen():
                mgr.thaw()  # criu thaws on failure; never leave a container frozen
    except BaseException:
        cdir.unlock()
        raise
    if args.leave_running or args.pre_dump:
        cdir.unlock()
        return
    # criu killed the tree; like runc, the container is destroyed.
    c.destroy(cdir, st, "stopped")


def _page_server(value: str) -> list[str]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port:
        raise UsageError("Use --page-server ADDRESS:PORT to specify page server")
    if not port.isdigit():
        raise UsageError("Invalid port number")
    return ["--page-server", "--address", host.strip("[]"), "--port", port]


def _parent_dir(parent: str, image: str) -> str:
    """criu wants the previous images relative to the image directory."""
    full = parent if os.path.isabs(parent) else os.path.join(image, parent)
    if not os.path.isdir(full):
        raise PyruncError(f"--parent-path {parent}: no such directory (relative paths are "
                          "taken from --image-path, as criu does)")
    return os.path.relpath(full, image)


def _cgroup_mount_dest(cfg: dict[str, Any], mgr: Manager | None) -> str | None:
    """Where the container sees cgroup v1 hierarchies bound from the host (no
    cgroup namespace): criu cannot dump such a bind of a host sub-directory."""
    if mgr is None or mgr.v2 or _namespace(cfg, "cgroup"):
        return None
    for m in cfg.get("mounts", []):
        if m.get("type") == "cgroup":
            return os.path.normpath(str(m["destination"]))
    return None


def _cgroup_binds(st: State, mgr: Manager | None) -> list[str]:
    dest = _cgroup_mount_dest(st.config, mgr)
    if dest is None:
        return []
    from pyrunc import mountinfo

    return [m.mountpoint for m in mountinfo.read(str(st.pid))
            if m.fstype == "cgroup" and m.mountpoint.startswith(dest + "/")]


def _dump_externals(st: State, mgr: Manager | None) -> list[str]:
    """Mounts criu cannot dump itself, as runc names them: bind mounts by their
    destination, masked files (bind mounts of /dev/null) as "/dev/null", the
    cgroup v1 hierarchies bound from the host by their mount point."""
    out = []
    for m in _bind_mounts(st.config):
        out += ["--external", f"mnt[{m['destination']}]:{m['destination']}"]
    for path in st.config.get("linux", {}).get("maskedPaths", []):
        target = os.path.join(f"/proc/{st.pid}/root", path.lstrip("/"))
        if os.path.exists(target) and not os.path.isdir(target):
            out += ["--external", f"mnt[{path}]:/dev/null"]
    for mp in _cgroup_binds(st, mgr):
        out += ["--external", f"mnt[{mp}]:{mp}"]
    net = _namespace(st.config, "network")
    if net and net.get("path"):  # joined, not ours: criu restores into the given one
        out += ["--external", f"net[{os.stat(net['path']).st_ino}]:extRootNetNS"]
    return out


def _write_descriptors(image: str, pid: int) -> None:
    from pyrunc.fastjson import dumps

    fds = []
    for n in range(3):
        try:
            fds.append(os.readlink(f"/proc/{pid}/fd/{n}"))
        except OSError:
            fds.append("/dev/null")
    path = os.path.join(image, DESCRIPTORS)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with open(fd, "w") as f:
        f.write(dumps(fds, compact=True))


# ---- restore ------------------------------------------------------------------------
def restore(root: Root, cid: str, args: Namespace) -> int:
    from pyrunc.launch import wait_exit

    if args.console_socket:
        raise PyruncError("restore: --console-socket: pyrunc cannot restore a terminal: criu's "
                          "command line cannot hand the pty master over (runc uses criu's RPC)")
    check_empty_ns(args.empty_ns)
    criu = find_criu(args.criu)
    image = _directory(args.image_path or os.path.join(os.getcwd(), "checkpoint"),
                       "--image-path", create=False)
    if not os.path.isfile(os.path.join(image, DESCRIPTORS)):
        raise PyruncError(f"--image-path {image}: no checkpoint there ({DESCRIPTORS} is "
                          "missing)")
    work = _directory(args.work_path, "--work-path", create=True) if args.work_path else image
    if not args.detach and not args.no_subreaper:
        from pyrunc.linux.subreaper import become_subreaper

        become_subreaper()  # criu's helpers exit; what they leave behind is ours to reap
    st = _restore(root, cid, args, criu, image, work)
    if args.detach:
        return 0
    from pyrunc.container import Container, force_delete
    from pyrunc.launch import forward_signals

    forward_signals(st.pid)
    status = wait_exit(st.pid)
    force_delete(Container(root, cid))
    return status


def _restore(root: Root, cid: str, args: Namespace, criu: str, image: str, work: str) -> State:
    from pyrunc import cgroups, log, spec
    from pyrunc.container import Container
    from pyrunc.launch import write_pid_file
    from pyrunc.state import State, proc_start_time

    bundle = os.path.abspath(args.bundle)
    cfg = spec.load_config(bundle)
    _refuse_terminal(cfg, "restore")
    hooks = cfg.get("hooks", {})
    rootfs = os.path.normpath(os.path.join(bundle, cfg["root"]["path"]))
    rootless = args.rootless == "true" or (args.rootless == "auto" and os.geteuid() != 0)
    if rootless:
        raise PyruncError("restore: cannot restore a rootless container (criu needs root)")
    cdir = root.make(cid)
    st = State(id=cid, bundle=bundle, rootfs=rootfs, created=log.now_rfc3339(),
               annotations=cfg.get("annotations", {}), config=cfg, creator_pid=os.getpid())
    mgr: Manager | None = None
    criu_root = os.path.join(cdir.path, "criu-root")
    pidfile = os.path.join(cdir.path, "criu.pid")
    mounted = False
    try:
        linux = cfg.get("linux", {})
        mgr = cgroups.open_manager(linux.get("cgroupsPath"), cid, systemd=args.systemd_cgroup)
        mgr.create()
        st.cgroup = mgr.to_state()
        cdir.save(st)
        mgr.set(linux.get("resources", {}))
        # criu wants the root to be a mount point whose parent is not over-mounted
        # (runc's trick: bind the rootfs to a fresh directory for the restore).
        from pyrunc.linux import libc

        os.mkdir(criu_root, 0o755)
        libc.mount(rootfs, criu_root, None, libc.MS_BIND | libc.MS_REC)
        mounted = True
        externals, keep_fds = _restore_externals(cfg, image)
        dest = _cgroup_mount_dest(cfg, mgr)
        for key, d in mgr.dirs.items() if dest else ():
            if key:  # the host's hierarchy named key, bound at dest/key in the container
                externals += ["--external", f"mnt[{dest}/{key}]:{d}"]
        argv = [criu, "restore", "-D", image, "-W", work, "-o", "restore.log", "-v4",
                "--root", criu_root, "--restore-detached", "--restore-sibling",
                "--pidfile", pidfile, *_common_flags(args),
                *externals]
        net = _namespace(cfg, "network")
        if net and not net.get("path"):
            argv += ["--empty-ns", "net"]  # runc does not manage network devices
        if args.lsm_profile:
            argv += ["--lsm-profile", args.lsm_profile]
        if args.lsm_mount_context:
            argv += ["--lsm-mount-context", args.lsm_mount_context]
        argv += _cgroup_roots(mgr)
        if hooks.get("prestart") or hooks.get("createRuntime"):
            argv += ["--action-script", _hook_script(cdir.path)]
        try:
            _run_criu(argv, "restore", os.path.join(work, "restore.log"), in_cgroup=mgr,
                      keep_stdio=True, pass_fds=keep_fds)
        except CriuError as e:
            try:
                with open(os.path.join(cdir.path, HOOK_ERROR)) as f:
                    hook_error = f.read().strip()
            except FileNotFoundError:
                raise e from None  # no hook failed: criu's own failure
            raise PyruncError(hook_error) from None
        finally:
            for fd in keep_fds:
                os.close(fd)
        with open(pidfile) as f:
            pid = int(f.read().strip())
        st.pid = pid
        st.init_start = proc_start_time(pid) or 0
        cdir.save(st)
        if args.pid_file:
            write_pid_file(args.pid_file, pid)
    except BaseException:
        _unbind(criu_root, mounted)
        Container(root, cid).rollback(cdir, mgr, 0)  # the cgroup kills what criu left
        raise
    finally:
        for name in (pidfile, os.path.join(cdir.path, "criu-hooks"),
                     os.path.join(cdir.path, HOOK_ERROR)):
            try:
                os.unlink(name)
            except OSError:
                pass
    _unbind(criu_root, mounted)
    cdir.unlock()
    return st


def _hook_script(cdir_path: str) -> str:
    """runc runs prestart and createRuntime hooks when criu has made the
    namespaces (its "setup-namespaces" notification); criu's command line
    runs an action script at that step, which calls restore_hooks below."""
    import shlex
    import sys

    import pyrunc

    site = os.path.dirname(os.path.dirname(os.path.abspath(pyrunc.__file__)))
    code = (f"import sys; sys.path.insert(0, {site!r}); "
            f"from pyrunc.checkpoint import restore_hooks; restore_hooks({cdir_path!r})")
    path = os.path.join(cdir_path, "criu-hooks")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700), "w") as f:
        f.write("#!/bin/sh\n# pyrunc restore: criu runs this at each restore step\n"
                '[ "$CRTOOLS_SCRIPT_ACTION" = setup-namespaces ] || exit 0\n'
                f"exec {shlex.quote(sys.executable)} -I -S -c {shlex.quote(code)}\n")
    return path


def restore_hooks(cdir_path: str) -> None:
    """In criu's action script: the prestart and createRuntime hooks, with the
    restored init's pid in the state they get (pyrunc restore holds the lock)."""
    import sys

    from pyrunc import hooks as H
    from pyrunc.state import ContainerDir, oci_state

    try:
        st = ContainerDir(cdir_path).load()
        st.pid = int(os.environ["CRTOOLS_INIT_PID"])
        state = oci_state(st, "creating")
        hooks = st.config.get("hooks", {})
        H.run_all(hooks.get("prestart", []), state, "prestart")
        H.run_all(hooks.get("createRuntime", []), state, "createRuntime")
    except (PyruncError, KeyError, ValueError) as e:
        with open(os.path.join(cdir_path, HOOK_ERROR), "w") as f:
            f.write(str(e) if isinstance(e, PyruncError) else f"restore hooks: {e!r}")
        sys.exit(1)
    sys.exit(0)


def _unbind(path: str, mounted: bool) -> None:
    if mounted:
        from pyrunc.linux import libc

        libc.umount2(path, libc.MNT_DETACH)
    try:
        os.rmdir(path)
    except OSError:
        pass


def _restore_externals(cfg: dict[str, Any], image: str) -> tuple[list[str], list[int]]:
    """criu's --external/--inherit-fd arguments, and the fds criu must inherit."""
    from pyrunc import fastjson

    out = []
    keep = []
    for m in _bind_mounts(cfg):
        out += ["--external", f"mnt[{m['destination']}]:{m['source']}"]
    if cfg.get("linux", {}).get("maskedPaths"):
        out += ["--external", "mnt[/dev/null]:/dev/null"]
    net = _namespace(cfg, "network")
    if net and net.get("path"):
        try:
            fd = os.open(net["path"], os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise PyruncError(f"config.json: linux.namespaces: {net['path']}: "
                              f"{e.strerror}") from None
        keep.append(fd)
        out += ["--inherit-fd", f"fd[{fd}]:extRootNetNS"]
    # The init's stdio pipes at checkpoint time become ours (runc does the same).
    with open(os.path.join(image, DESCRIPTORS)) as f:
        try:
            fds = fastjson.loads(f.read())
        except ValueError:
            raise PyruncError(f"{image}/{DESCRIPTORS}: not valid JSON") from None
    for n, name in enumerate(fds[:3] if isinstance(fds, list) else []):
        if isinstance(name, str) and name.startswith("pipe:"):
            out += ["--inherit-fd", f"fd[{n}]:{name}"]
    return out, keep


def _cgroup_roots(mgr: Manager) -> list[str]:
    """--cgroup-root per hierarchy: criu puts the restored tasks in our cgroup."""
    from pyrunc.cgroups import ROOT

    if mgr.v2:
        mnt = ROOT
        return ["--cgroup-root", "/" + os.path.relpath(mgr.dirs[""], mnt).lstrip(".")]
    out = []
    for key, d in mgr.dirs.items():
        if not key:
            continue  # the hybrid layout's unified mount: criu keys it by its own name
        rel = os.path.relpath(d, os.path.join(ROOT, key))
        out += ["--cgroup-root", f"{key}:/{rel if rel != '.' else ''}"]
    return out
