"""create and run, parent side: read and check the config, make the state
directory, hand stage 1 its plan (pyrunc.early), make the cgroups meanwhile,
wait for init to be ready; run then starts it and, in the foreground,
relays stdio, signals and the exit status. The child side lives in
pyrunc.init."""

from __future__ import annotations

import errno
import posix  # not os: see pyrunc.posixfs

from pyrunc import log, posixfs
from pyrunc.container import Container, force_delete, poststop
from pyrunc.errors import PyruncError
from pyrunc.state import Root, State, oci_state, proc_start_time

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    import _socket
    from typing import Any

    from pyrunc.cgroups import Manager
    from pyrunc.early import EarlyChild
    from pyrunc.init.plan import Plan


class CreateOptions:
    def __init__(self, bundle: str = ".", pid_file: str | None = None,
                 console_socket: str | None = None, no_pivot: bool = False,
                 no_new_keyring: bool = False, preserve_fds: int = 0, rootless: bool = False,
                 systemd_cgroup: bool = False) -> None:
        self.bundle = bundle
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds
        self.rootless = rootless
        self.systemd_cgroup = systemd_cgroup


def _listen_fds() -> int:
    """Socket-activation fds handed to us (systemd's LISTEN_FDS), passed on like runc."""
    try:
        if int(posix.environ.get(b"LISTEN_PID", b"0")) == posix.getpid():
            return int(posix.environ.get(b"LISTEN_FDS", b"0"))
    except ValueError:
        pass
    return 0


def write_pid_file(path: str, pid: int) -> None:
    path = posixfs.abspath(path)
    head, _, name = path.rpartition("/")
    tmp = f"{head}/.{name}"
    with open(tmp, "w") as f:
        f.write(str(pid))
    posix.rename(tmp, path)


def create(root: Root, cid: str, opts: CreateOptions, s1: EarlyChild,
           console: _socket.socket | None = None) -> State:
    """`s1`: stage 1, forked by the caller as early as it could (the caller
    closes it). It imports init's modules while we read the config and make
    the cgroups, then waits for the plan (EOF if we fail first)."""
    from pyrunc import cgroups, spec, sync
    from pyrunc.init.plan import Plan

    psock = s1.sock
    bundle = posixfs.abspath(opts.bundle)
    try:
        posix.chdir(bundle)
    except OSError as e:
        raise PyruncError(f"chdir {opts.bundle}: {(e.strerror or str(e)).lower()}") from None
    cfg = spec.load_config(bundle)
    rootfs = posixfs.normpath(posixfs.join(bundle, cfg["root"]["path"]))
    proc = cfg["process"]
    if proc.get("terminal") and console is None and not opts.console_socket:
        raise PyruncError("cannot allocate tty if pyrunc will detach without setting "
                          "console socket")
    if not proc.get("terminal"):
        if opts.console_socket:
            raise PyruncError("cannot use console socket if pyrunc will not detach or "
                              "allocate tty")
        console = None
    _check_host_support(cfg)
    rdt = None
    if "intelRdt" in cfg.get("linux", {}):
        from pyrunc import intelrdt

        rdt = intelrdt.open_for(cfg["linux"]["intelRdt"], cid)
    cdir = root.make(cid)
    st = State(id=cid, bundle=bundle, rootfs=rootfs, created=log.now_rfc3339(),
               annotations=cfg.get("annotations", {}), config=cfg,
               creator_pid=posix.getpid())
    mgr = None
    init_pid = 0
    try:
        linux = cfg.get("linux", {})
        posix.mkfifo(cdir.creating_fifo, 0o622)
        posix.chmod(cdir.creating_fifo, 0o622)  # not narrowed by our umask
        # init opens it as the container's root, which may be another host uid
        posix.chown(cdir.creating_fifo, _host_id(linux.get("uidMappings"), 0),
                    _host_id(linux.get("gidMappings"), 0))
        if opts.console_socket and console is None:
            import socket

            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                console.connect(opts.console_socket)
            except OSError as e:
                raise PyruncError(f"--console-socket {opts.console_socket}: "
                                  f"{e.strerror}") from None
        listen = _listen_fds()
        hooks = cfg.get("hooks", {})
        plan = Plan(cid=cid, cfg=cfg, rootfs=posixfs.realpath(rootfs),
                    no_pivot=opts.no_pivot, no_new_keyring=opts.no_new_keyring,
                    console=console, keep_fds=listen + opts.preserve_fds,
                    sync_hooks=any(hooks.get(k) for k in (
                        "prestart", "createRuntime", "createContainer", "startContainer")))
        if listen:
            plan.extra_env = {"LISTEN_FDS": str(listen), "LISTEN_PID": "1"}
        # Opened here: init may not be able to walk to --root once in its
        # user namespace; it reopens this fd through /proc/self/fd.
        plan.fifo_fd = posix.open(cdir.creating_fifo, posix.O_PATH | posix.O_CLOEXEC)
        try:
            s1.send_plan(plan)
        finally:
            posix.close(plan.fifo_fd)
            if console is not None:
                console.close()
        # The cgroups now, while stage 1 sets up the namespaces: it takes
        # the join (a second message) just before it forks init.
        mgr = cgroups.open_manager(linux.get("cgroupsPath"), cid,
                                   rootless=opts.rootless, systemd=opts.systemd_cgroup)
        mgr.create()
        st.cgroup = mgr.to_state()
        mgr.set(linux.get("resources", {}))
        if rdt is not None:
            st.extra["intelRdt"] = rdt.setup(linux["intelRdt"], cid)
        parent_joins = _plan_cgroup_join(plan, mgr, linux)
        try:
            plan.send_cgroup_join(psock)
        finally:
            if plan.cgroup_v2_fd >= 0:
                posix.close(plan.cgroup_v2_fd)
        # First written now, while stage 1 works (a write is a file and a
        # rename: ~0.4 ms on ext4): from here on, a create killed midway
        # leaves `delete` the record of its cgroups and resctrl group.
        cdir.save(st)
        child = s1.pid
        try:
            if parent_joins:
                # The first cgroup move in a while waits for an RCU grace
                # period in the kernel (~10 ms; runc waits too). Stage 1
                # does not wait for it: this move only starts the clock
                # while it works; init is moved below, and builds the
                # rootfs meanwhile.
                try:
                    mgr.apply(child)
                except PyruncError:
                    pass  # stage 1 may be gone already; init's move below decides
            msg = sync.recv(psock)[0]
            if msg.get("type") == "userns":
                _write_id_maps(child, linux)
                sync.send(psock, {"type": "maps"})
                msg = sync.recv(psock)[0]
            if "error" in msg:
                raise PyruncError(msg["error"])
            if msg.get("type") != "pid":
                how = _exit_description(child)
                s1.pid = 0  # reaped: never signal a pid that may be reused
                raise PyruncError(f"container init exited unexpectedly ({how})")
            init_pid = int(msg["pid"])
            st.pid = init_pid
            st.init_start = proc_start_time(init_pid) or 0
            cdir.save(st)
            try:
                if parent_joins:
                    mgr.apply(init_pid)
                elif msg.get("cgroup_v2") == "move":  # stage 1 could not clone3
                    mgr.apply(init_pid, v2_only=True)
                if rdt is not None:  # before init may fork: children inherit it
                    rdt.join(st.extra["intelRdt"], init_pid)
                sync.send(psock, {"type": "cgroup"})
            except (PyruncError, OSError):
                if proc_start_time(init_pid) == st.init_start:
                    raise  # init is alive: the move itself failed
                sync.expect(psock, "ready")  # init is gone: raises its own error
                raise
        except BaseException:
            s1.reap(kill=True)
            raise
        s1.reap(kill=False)  # it has forked init and exits
        # A seccomp filter compiles in ~3 ms (podman's profile); here it is done
        # while init builds the rootfs, and init loads it when we say "created".
        seccomp_program = _precompiled_seccomp(linux)
        if linux.get("netDevices"):
            from pyrunc.netdev import move_devices
            move_devices(linux["netDevices"], init_pid)
        if plan.sync_hooks:
            sync.expect(psock, "hooks")
            state = oci_state(st, "creating")
            from pyrunc import hooks as H
            H.run_all(hooks.get("prestart", []), state, "prestart")
            H.run_all(hooks.get("createRuntime", []), state, "createRuntime")
            sync.send(psock, {"type": "hooks-done", "state": state})
        if linux.get("seccomp") and _uses_notify(linux["seccomp"]):
            from pyrunc.seccomp_notify import forward_listener

            msg = sync.expect(psock, "seccomp")
            forward_listener(linux["seccomp"], msg.get("fds", []), oci_state(st, "creating"))
        sync.expect(psock, "ready")
        if opts.pid_file:
            write_pid_file(opts.pid_file, init_pid)
        posix.rename(cdir.creating_fifo, cdir.fifo)  # created (pyrunc.state)
        if seccomp_program is None:
            sync.send(psock, {"type": "created"})
        else:
            memfd = sync.memfd_with("pyrunc-seccomp", seccomp_program)
            try:
                sync.send(psock, {"type": "created"}, [memfd])
            finally:
                posix.close(memfd)
        psock.close()
    except BaseException as e:
        from pyrunc.hooks import HookError

        s1.reap(kill=True)  # before the cgroups go: it may be in them
        Container(root, cid).rollback(cdir, mgr, init_pid, st.extra.get("intelRdt"))
        if isinstance(e, HookError):  # lifecycle step 3-5 failed: go on at 12-13
            poststop(st, "stopped")
        raise
    cdir.unlock()
    return st


def _write_id_maps(pid: int, linux: dict[str, Any]) -> None:
    from pyrunc.linux.userns import set_container_maps

    try:
        set_container_maps(pid, linux.get("uidMappings", []), linux.get("gidMappings", []))
    except OSError as e:
        raise PyruncError(f"config.json: linux.uidMappings/gidMappings: cannot write id "
                          f"maps: {e.strerror}") from None


def _uses_notify(seccomp_cfg: dict[str, Any]) -> bool:
    from pyrunc.linux import seccomp

    return seccomp.uses_notify(seccomp_cfg)


def _precompiled_seccomp(linux: dict[str, Any]) -> bytes | None:
    """The filter init loads after `ready`, compiled here. Not one with a
    notify listener: init loads that before `ready`, compiling it itself."""
    cfg = linux.get("seccomp")
    if not cfg or _uses_notify(cfg):
        return None
    from pyrunc.linux import seccomp

    return seccomp.compile_filter(cfg)


def _plan_cgroup_join(plan: Plan, mgr: Manager, linux: dict[str, Any]) -> bool:
    """Who puts the container in its cgroups. Writing a pid to cgroup.procs
    waits on the kernel (an RCU grace period: 10-20 ms), so where it can, the
    child goes without that write: stage 1 joins the v1 hierarchies itself
    (pyrunc.init.cgjoin) and forks init straight into the v2 one
    (pyrunc.linux.clone). Not from a new user namespace, whose root may not
    write there: then the parent moves stage 1 and init (True)."""
    if any(ns["type"] == "user" and not ns.get("path") for ns in linux.get("namespaces", [])):
        return True
    return not plan.let_children_join(mgr)


def _exit_description(pid: int) -> str:
    """How a child we are about to give up on ended (reaped here)."""
    try:
        _, status = posix.waitpid(pid, 0)
    except ChildProcessError:
        return "already reaped"
    if posix.WIFSIGNALED(status):
        return f"killed by signal {posix.WTERMSIG(status)}"
    return f"exit status {posix.WEXITSTATUS(status)}"


def _host_id(maps: list[dict[str, int]] | None, cid: int) -> int:
    """The host id that container id `cid` maps to (itself without a user namespace)."""
    for m in maps or []:
        if m["containerID"] <= cid < m["containerID"] + m["size"]:
            return m["hostID"] + cid - m["containerID"]
    return cid if not maps else -1


def _check_host_support(cfg: dict[str, Any]) -> None:
    """Config that this host cannot honour is refused before anything exists."""
    from pyrunc.init import lsm, sysctl

    linux = cfg.get("linux", {})
    try:
        lsm.check(cfg["process"], linux)
        sysctl.check(linux)
        if linux.get("seccomp"):
            from pyrunc.linux import seccomp

            seccomp.validate(linux["seccomp"])
    except (lsm.LsmError, sysctl.SysctlError) as e:
        raise PyruncError(str(e)) from None


def wait_exit(pid: int) -> int:
    """Wait for our child (or reparented orphan) pid; return its shell-style status."""
    while True:
        try:
            _, status = posix.waitpid(pid, 0)
        except ChildProcessError:
            return 255
        except OSError as e:
            if e.errno == errno.EINTR:
                continue
            raise
        if posix.WIFEXITED(status):
            return posix.WEXITSTATUS(status)
        if posix.WIFSIGNALED(status):
            return 128 + posix.WTERMSIG(status)


def run(root: Root, cid: str, opts: CreateOptions, detach: bool, keep: bool,
        s1: EarlyChild) -> int:
    """create + start; in the foreground, relay stdio, signals and the exit status.
    `s1` as for create()."""
    import _socket

    c = Container(root, cid)
    console_parent = console_child = None
    if not detach:
        # Init's parent exits early; as subreaper we inherit and can reap it.
        from pyrunc.linux.subreaper import become_subreaper

        become_subreaper()
        if not opts.console_socket:
            console_parent, console_child = _socket.socketpair(_socket.AF_UNIX,
                                                               _socket.SOCK_STREAM)
    # create() keeps console_child only if the config asks for a terminal.
    st = create(root, cid, opts, s1, console=console_child)
    if console_child is not None:
        console_child.close()
    master = None
    saved = None
    if not detach:
        forward_signals(st.pid)  # before start: the process may get signals at once
    try:
        if console_parent is not None and st.config["process"].get("terminal"):
            from pyrunc.terminal import prepare_proxy, recv_master
            master = recv_master(console_parent)
            # raw mode, and our window size unless the config gives one
            saved = prepare_proxy(master, "consoleSize" not in st.config["process"])
        cdir = root.open(cid)
        try:
            c.release(cdir, st)
            c.poststart(st)
        finally:
            cdir.unlock()
    except BaseException:
        if saved is not None:
            from pyrunc.terminal import restore
            restore(saved)
        if not keep:
            force_delete(c)
        raise
    if detach:
        return 0
    stop = [False]
    proxy_thread = None
    if master is not None:
        import threading

        from pyrunc.terminal import proxy
        proxy_thread = threading.Thread(target=proxy, args=(master, stop), daemon=True)
        proxy_thread.start()
    status = wait_exit(st.pid)
    if proxy_thread is not None:
        from pyrunc.terminal import restore

        proxy_thread.join(1.0)
        stop[0] = True
        restore(saved)
    if not keep:
        force_delete(c)
    return status


def forward_signals(pid: int) -> None:
    import _signal  # not `signal`: its enums cost ~5 ms

    skip = {_signal.SIGKILL, _signal.SIGSTOP, _signal.SIGCHLD, _signal.SIGWINCH,
            _signal.SIGURG}
    forwarded = [s for s in range(1, _signal.NSIG) if s not in skip]

    def handler(sig: int, _frame: object) -> None:
        try:
            posix.kill(pid, sig)
        except ProcessLookupError:
            pass
    for s in forwarded:
        try:
            _signal.signal(s, handler)
        except (OSError, ValueError):
            pass
