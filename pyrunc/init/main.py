"""The child side of create. Two forked processes, never returning to the
caller's stack (they leave with posix._exit):

  stage 1 ("namespace step"): forked as create starts, imports init's
      modules meanwhile, takes the plan, joins its cgroups where it can
      (pyrunc.init.cgjoin), joins/creates the namespaces, user first (the
      parent writes the id maps), then forks stage 2 (into its cgroup v2
      directory: pyrunc.linux.clone) and exits; unshare of a pid namespace
      applies to children, which makes stage 2 PID 1.
  stage 2 (init): builds the rootfs, sets the process up, tells the parent
      it is ready, drops its privileges (seccomp, user, caps), waits on
      exec.fifo for `start`, runs startContainer hooks and execs the user's
      process.
"""

from __future__ import annotations

import posix  # not os: see pyrunc.posixfs
import sys

from pyrunc import sync
from pyrunc.init import cgjoin
from pyrunc.init.plan import Plan, receive
from pyrunc.linux import libc as L

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    import _socket
    from typing import Any, NoReturn

NS_FLAGS = {
    "pid": L.CLONE_NEWPID, "network": L.CLONE_NEWNET, "mount": L.CLONE_NEWNS,
    "ipc": L.CLONE_NEWIPC, "uts": L.CLONE_NEWUTS, "user": L.CLONE_NEWUSER,
    "cgroup": L.CLONE_NEWCGROUP, "time": L.CLONE_NEWTIME,
}


def describe(e: BaseException) -> str:
    """One line for the user: our syscall errors already name the call and path."""
    if isinstance(e, OSError) and e.strerror:
        where = f": {e.filename}" if e.filename else ""
        return f"container init: {e.strerror}{where}"
    return str(e) or type(e).__name__


def _fail(sock: _socket.socket, e: BaseException) -> NoReturn:
    msg = describe(e)
    if posix.environ.get(b"PYRUNC_DEBUG_INIT"):
        import traceback

        traceback.print_exc()
    # by name: importing pyrunc.hooks may be impossible after pivot_root
    hook = type(e).__name__ == "HookError"
    try:
        sync.send(sock, {"error": msg, "hook": hook})
    except OSError:
        print(f"pyrunc init: {msg}", file=sys.stderr)
    posix._exit(1)


def _uses_sched(proc: dict[str, Any], linux: dict[str, Any]) -> bool:
    """The config sets what pyrunc.init.sched applies."""
    return bool({"scheduler", "ioPriority"} & proc.keys()
                or {"personality", "memoryPolicy"} & linux.keys())


def _preload_common() -> None:
    """Import everything init needs while the host's files are still reachable:
    after unshare(CLONE_NEWUSER) we may lose access to the interpreter's own
    directories (e.g. /root/.pyenv), and after pivot_root sys.path points into
    the container. (_preload: what only some configs need.)"""
    from pyrunc.init import lsm, process, rootfs  # noqa: F401
    from pyrunc.linux import net  # noqa: F401


def _preload(cfg: dict[str, Any]) -> None:
    proc, linux = cfg.get("process", {}), cfg.get("linux", {})
    if proc.get("terminal"):
        from pyrunc import terminal  # noqa: F401
    if _uses_sched(proc, linux):
        from pyrunc.init import sched  # noqa: F401
    if linux.get("sysctl"):
        from pyrunc.init import sysctl  # noqa: F401
    if linux.get("seccomp"):
        from pyrunc.linux import seccomp  # noqa: F401

    hooks = cfg.get("hooks", {})
    if hooks.get("createContainer") or hooks.get("startContainer"):
        from pyrunc import hooks as _hooks  # noqa: F401


def stage1(sock: _socket.socket, caller_cpus: set[int]) -> NoReturn:
    """Forked when create starts (pyrunc.early): imports what init needs
    while the parent reads the config and makes the cgroups, then takes the
    plan (or EOF: the parent gave up, and reports why). `caller_cpus`: the
    caller's CPUs, which the parent narrowed to start us on another one."""
    # Not dumpable from here on: nothing in the container may ptrace us or
    # open /proc/<pid>/exe of the runtime (CVE-2019-5736).
    L.prctl(L.PR_SET_DUMPABLE, 0)
    L.prctl(L.PR_SET_PDEATHSIG, 9)
    try:
        _preload_common()
        plan = receive(sock, Plan, caller_cpus)
        if plan is None:
            posix._exit(0)
        _preload(plan.cfg)
        nss = {ns["type"]: ns.get("path") for ns in plan.cfg.get("linux", {})
               .get("namespaces", [])}
        # Open every namespace path before joining any: later ones may be
        # unreachable from inside the earlier ones.
        joined = {t: _open_ns(t, p, plan.cfg) for t, p in nss.items() if p}
        joining = True  # the cgroup join is still to come (below)
        if "user" in nss:
            # Here the join comes first: the parent sends it before it reads
            # our "userns", and from inside a user namespace we may not write
            # to the host's cgroups (the parent moves us itself from a new one).
            _join_cgroups(sock, plan)
            joining = False
            if "user" in joined:
                L.setns(joined.pop("user"), L.CLONE_NEWUSER, nss["user"])
            else:
                L.unshare(L.CLONE_NEWUSER)
                # An unprivileged parent can only write the maps of a dumpable
                # child; nothing else is in this new user namespace yet.
                L.prctl(L.PR_SET_DUMPABLE, 1)
                sync.send(sock, {"type": "userns"})
                sync.expect(sock, "maps")
                L.prctl(L.PR_SET_DUMPABLE, 0)
            posix.setresgid(0, 0, 0)
            posix.setresuid(0, 0, 0)
        flags = 0
        for t, p in nss.items():
            if not p and t not in ("user", "cgroup"):  # cgroup: in stage 2
                flags |= NS_FLAGS[t]
        if flags:
            L.unshare(flags)
        if "time" in nss and not nss["time"]:
            _write_time_offsets(plan.cfg.get("linux", {}).get("timeOffsets", {}))
        if joining:  # the parent made the cgroups meanwhile
            _join_cgroups(sock, plan)
        for t, fd in joined.items():
            L.setns(fd, NS_FLAGS[t], nss[t])
            posix.close(fd)
        note: dict[str, str] = {}
        # lazy: init builds the rootfs while we report its pid
        sync.fork_then_report(sock, lambda: stage2(sock, plan, in_userns="user" in nss),
                              cgjoin.fork_into(plan.cgroup_v2_fd, note), note, lazy=True)
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent
        _fail(sock, e)
    posix._exit(0)


def _join_cgroups(sock: _socket.socket, plan: Plan) -> None:
    """Take the parent's cgroup join (pyrunc.init.plan) and join the v1
    hierarchies: before forking init, which inherits them, and before any
    setns into a mount namespace where their paths may not lead there."""
    plan.receive_cgroup_join(sock)
    if plan.cgroup_tasks:
        cgjoin.join_self(plan.cgroup_tasks, plan.rootless)


def stage2(sock: _socket.socket, plan: Plan, in_userns: bool) -> NoReturn:
    # Imported by _preload (stage 1): these are dictionary look-ups.
    from pyrunc.init import lsm, process, rootfs

    cfg = plan.cfg
    hooks = cfg.get("hooks", {})
    if hooks.get("createContainer") or hooks.get("startContainer"):
        from pyrunc import hooks as H
    proc = cfg.get("process", {})
    linux = cfg.get("linux", {})
    nstypes = {ns["type"] for ns in linux.get("namespaces", [])}
    joined = False

    def join_cgroup() -> None:
        """Wait for the parent's word that we are in the container's cgroups
        (the kernel may take ~10 ms: we build the rootfs meanwhile). Before a
        cgroup mount, which shows our cgroups, and before anything forks; a
        new cgroup namespace is rooted there."""
        nonlocal joined
        if not joined:
            joined = True
            sync.expect(sock, "cgroup")
            if "cgroup" in nstypes and not _ns_path(linux, "cgroup"):
                L.unshare(L.CLONE_NEWCGROUP)

    try:
        if plan.cgroup_v2_fd >= 0:
            posix.close(plan.cgroup_v2_fd)
        posix.setsid()
        # process.execCPUAffinity "is not applicable to the container's init
        # process" (config.md): only `exec` applies it (pyrunc.init.exec_child).
        if not plan.no_new_keyring:
            L.join_session_keyring(f"_ses.{plan.cid}")
        if "network" in nstypes and not _ns_path(linux, "network"):
            from pyrunc.linux.net import link_up
            link_up("lo")
        fifo_fd = plan.fifo_fd
        if "mount" in nstypes:
            rootfs.prepare(cfg, plan.rootfs, in_userns, before_cgroup=join_cgroup)
        join_cgroup()
        state: dict[str, Any] = {}
        if plan.sync_hooks:
            sync.send(sock, {"type": "hooks"})
            state = sync.expect(sock, "hooks-done")["state"]
        if hooks.get("createContainer"):
            H.run_all(hooks["createContainer"], state, "createContainer")
        if "mount" in nstypes:
            rootfs.enter(plan.rootfs, plan.no_pivot)
            rootfs.apply_root_propagation(linux)
            rootfs.finalize(cfg)
        else:
            posix.chroot(plan.rootfs)
            posix.chdir("/")
        if "hostname" in cfg:
            L.sethostname(cfg["hostname"])
        if "domainname" in cfg:
            L.setdomainname(cfg["domainname"])
        if linux.get("sysctl"):
            from pyrunc.init import sysctl

            sysctl.apply(linux["sysctl"])
        if "mount" in nstypes:
            rootfs.protect_paths(linux)
        if "oomScoreAdj" in proc:
            process.set_oom_score_adj(proc["oomScoreAdj"])
        env = process.build_env(proc.get("env", []))
        env.update(plan.extra_env)
        user = proc.get("user", {})
        if "HOME" not in env:
            env["HOME"] = process.home_for(user.get("uid", 0))
        args = proc["args"]
        exe = process.look_path(args[0], env.get("PATH"))
        sets = process.cap_sets(proc.get("capabilities"))
        process.set_rlimits(proc.get("rlimits", []))
        cwd = proc.get("cwd", "/")
        posix.chdir(cwd)
        if proc.get("terminal"):
            from pyrunc.terminal import (
                make_controlling,
                open_pty_in_container,
                send_fd,
                set_winsize,
            )

            master, slave, slave_path = open_pty_in_container()
            if "mount" in nstypes:
                rootfs.mount_console(slave)
            if "consoleSize" in proc:
                set_winsize(master, proc["consoleSize"]["height"], proc["consoleSize"]["width"])
            if plan.console is None:
                raise RuntimeError("terminal requested but no console socket")
            send_fd(plan.console, master)
            plan.console.close()
            posix.close(master)
            make_controlling(slave)
            posix.close(slave)
        if "umask" in user:
            posix.umask(user["umask"])
        else:
            posix.umask(0o022)
        # What needs privilege goes before `ready`: a failure fails create.
        if _uses_sched(proc, linux):
            from pyrunc.init import sched

            if "scheduler" in proc:
                sched.apply_scheduler(proc["scheduler"])
            if "ioPriority" in proc:
                sched.apply_io_priority(proc["ioPriority"])
            if "personality" in linux:
                sched.apply_personality(linux["personality"])
            if "memoryPolicy" in linux:
                sched.apply_memory_policy(linux["memoryPolicy"])
        lsm.apply_on_exec(proc)
        seccomp_cfg = linux.get("seccomp")
        if seccomp_cfg:
            from pyrunc.linux import seccomp
            if seccomp.uses_notify(seccomp_cfg):
                # The agent must get the listener while the parent is still here,
                # so this filter goes in now (runc does the same).
                if proc.get("noNewPrivileges"):
                    L.prctl(L.PR_SET_NO_NEW_PRIVS, 1)
                listener = seccomp.install(seccomp_cfg)
                sync.send(sock, {"type": "seccomp"}, [listener] if listener else None)
                if listener is not None:
                    posix.close(listener)
                seccomp_cfg = None
        sync.send(sock, {"type": "ready"})
        msg, fds = sync.recv(sock)  # the parent closes its end once create is committed
        sock.close()
        if not msg.get("eof") and msg.get("type") != "created":
            posix._exit(1)
        # the filter below, compiled by the parent meanwhile (pyrunc.launch)
        program = sync.memfd_read(fds[0]) if fds else None
    except BaseException as e:  # noqa: BLE001
        _fail(sock, e)
    failed: BaseException | None = None
    # Every fd but stdio, the ones passed on and the fifo's goes now, not
    # after `start`: its wait for our execve is that much (~0.05-0.1 ms) shorter.
    process.close_fds(2 + plan.keep_fds, also_keep=fifo_fd)
    try:
        # The privileges go now, while `start` is awaited (runc drops them
        # before the fifo too), and after our last socket message: the filter
        # then has to allow only what runc's does (the fifo, hooks, execve).
        if seccomp_cfg and not proc.get("noNewPrivileges"):
            # needs CAP_SYS_ADMIN, which the next step drops
            seccomp.install(seccomp_cfg, program)
            seccomp_cfg = None
        process.apply_user_and_caps(proc, sets)
        if seccomp_cfg:
            seccomp.install(seccomp_cfg, program)  # under no_new_privs: after the caps
    except BaseException as e:  # noqa: BLE001
        failed = e  # told to `start` through the fifo, below
    try:
        # Blocks until `start` opens the fifo for reading. The fd stays open
        # (close-on-exec) so `start` sees EOF only once execve has happened,
        # and reads an error from us if anything before it fails.
        fd = posix.open(f"/proc/self/fd/{fifo_fd}", posix.O_WRONLY | posix.O_CLOEXEC)
        posix.write(fd, b"0")
        posix.close(fifo_fd)
    except BaseException as e:  # noqa: BLE001
        print(f"pyrunc: container init failed: {describe(e)}", file=sys.stderr)
        posix._exit(1)
    try:
        if failed is not None:
            raise failed
        if hooks.get("startContainer"):
            H.run_all(hooks["startContainer"], state, "startContainer")
        posix.execve(exe, args, env)
    except BaseException as e:  # noqa: BLE001
        try:
            posix.write(fd, b"E" + describe(e).encode())
        except OSError:
            pass
        posix._exit(127 if isinstance(e, OSError) else 1)
    posix._exit(1)


def _write_time_offsets(offsets: dict[str, dict[str, int]]) -> None:
    """Clock offsets of a new time namespace: set before its first process exists."""
    lines = "".join(f"{clock} {o.get('secs', 0)} {o.get('nanosecs', 0)}\n"
                    for clock, o in offsets.items())
    if lines:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write(lines)


def _open_ns(t: str, path: str, cfg: dict[str, Any]) -> int:
    try:
        return posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError as e:
        idx = [ns["type"] for ns in cfg["linux"]["namespaces"]].index(t)
        raise OSError(f"config.json: linux.namespaces[{idx}].path: cannot open {path!r}: "
                      f"{e.strerror}") from None


def _ns_path(linux: dict[str, Any], t: str) -> str | None:
    for ns in linux.get("namespaces", []):
        if ns["type"] == t:
            return ns.get("path")
    return None
