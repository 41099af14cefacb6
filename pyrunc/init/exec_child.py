"""`pyrunc exec`, child side. Two forked processes that never return:

  joiner: non-dumpable at once (CVE-2019-5736), joins the container's v1
      cgroups itself (pyrunc.init.cgjoin), opens every namespace of the
      container's init, joins them user first, enters its root, then forks
      (into the v2 cgroup); setns(pid) only applies to children, so the fork
      lands inside.
  final: pty; waits for the parent's word that it is in every cgroup (the
      parent moves it where the children could not); cwd, env, rlimits, umask,
      oom score, scheduler, I/O priority, LSM, seccomp (its notify fd to the
      parent), user and caps; closes every fd not asked for; execve.
      Errors go to the parent over the sync socket, which is close-on-exec:
      EOF there means execve succeeded.
"""

from __future__ import annotations

import fcntl
import posix  # not os: see pyrunc.posixfs
import sys

from pyrunc import sync
from pyrunc.init import cgjoin
from pyrunc.init.plan import ExecPlan, receive
from pyrunc.linux import libc as L

TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket
    from typing import Any, NoReturn

# config type -> (/proc/<pid>/ns name, setns flag); user first, mount last so
# the /proc paths stay valid while we join.
NS_ORDER = [("user", "user", L.CLONE_NEWUSER), ("ipc", "ipc", L.CLONE_NEWIPC),
            ("uts", "uts", L.CLONE_NEWUTS), ("network", "net", L.CLONE_NEWNET),
            ("pid", "pid", L.CLONE_NEWPID), ("cgroup", "cgroup", L.CLONE_NEWCGROUP),
            ("time", "time", L.CLONE_NEWTIME), ("mount", "mnt", L.CLONE_NEWNS)]


def _fail(sock: _socket.socket, e: BaseException) -> NoReturn:
    from pyrunc.init.main import describe

    if posix.environ.get(b"PYRUNC_DEBUG_INIT"):
        import traceback

        traceback.print_exc()
    try:
        sync.send(sock, {"error": describe(e).replace("container init: ", "exec: ", 1)})
    except OSError:
        print(f"pyrunc exec: {describe(e)}", file=sys.stderr)
    posix._exit(1)


def joiner(sock: _socket.socket, caller_cpus: set[int]) -> NoReturn:
    """Forked as exec starts (pyrunc.early): imports what the final process
    needs while the parent reads the state, then takes the plan (or EOF: the
    parent gave up, and reports why). `caller_cpus`: the caller's CPUs, which
    the parent narrowed to start us on another one."""
    # Before anything else, and before we are in the container's pid namespace.
    L.prctl(L.PR_SET_DUMPABLE, 0)
    L.prctl(L.PR_SET_PDEATHSIG, 9)
    try:
        # Everything the final child needs, imported while host files are reachable.
        import _socket

        from pyrunc.init import lsm, main, process, sched  # noqa: F401
        plan = receive(sock, ExecPlan, caller_cpus)
        if plan is None:
            posix._exit(0)
        if plan.proc.get("terminal"):
            from pyrunc import terminal  # noqa: F401
        if plan.cfg.get("linux", {}).get("seccomp"):
            from pyrunc.linux import seccomp  # noqa: F401
        if plan.cgroup_tasks:  # before forking the final process, which inherits them
            cgjoin.join_self(plan.cgroup_tasks, plan.rootless)
        # The sync fd must sit above the preserved fds so close_fds keeps it apart.
        high = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 3 + plan.keep_fds)
        sock.close()
        sock = _socket.socket(fileno=high)
        affinity = plan.proc.get("execCPUAffinity", {})
        sched.apply_affinity(affinity.get("initial"), "initial", plan.src)
        # No waiting for the cgroup here: the parent moves the final child
        # (its pid comes below) while we join the namespaces.
        types = {ns["type"] for ns in plan.cfg.get("linux", {}).get("namespaces", [])}
        fds: list[tuple[int, int, str]] = []
        for t, name, flag in NS_ORDER:
            if t not in types:
                continue
            path = f"/proc/{plan.pid}/ns/{name}"
            if posix.stat(path).st_ino == posix.stat(f"/proc/self/ns/{name}").st_ino:
                continue  # already there (setns to our own user ns is EINVAL)
            fds.append((posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC), flag, path))
        root = posix.open(f"/proc/{plan.pid}/root",
                          posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        for fd, flag, path in fds:
            L.setns(fd, flag, path)
            posix.close(fd)
            if flag == L.CLONE_NEWUSER:
                posix.setresgid(0, 0, 0)
                posix.setresuid(0, 0, 0)
        posix.fchdir(root)
        posix.chroot(".")
        posix.close(root)
        posix.chdir("/")
        note: dict[str, str] = {}
        sync.fork_then_report(sock, lambda: _final(sock, plan),
                              cgjoin.fork_into(plan.cgroup_v2_fd, note), note)
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent
        _fail(sock, e)
    posix._exit(0)


def _final(sock: _socket.socket, plan: ExecPlan) -> NoReturn:
    from pyrunc.init import lsm, process, sched

    proc = plan.proc
    src = plan.src
    linux = plan.cfg.get("linux", {})
    try:
        if plan.cgroup_v2_fd >= 0:
            posix.close(plan.cgroup_v2_fd)
        if proc.get("terminal"):
            from pyrunc.terminal import make_controlling, open_pty_in_container, set_winsize

            posix.setsid()
            master, slave, _path = open_pty_in_container()
            if "consoleSize" in proc:
                set_winsize(master, proc["consoleSize"]["height"], proc["consoleSize"]["width"])
            sync.send(sock, {"type": "pty"}, [master])
            posix.close(master)
            make_controlling(slave)
            posix.close(slave)
        if sync.recv(sock)[0].get("type") != "cgroup":
            posix._exit(1)  # the parent gave up (its error is the one to report)
        # In the container's cgroup now, whose cpuset may have reset our affinity.
        sched.apply_affinity(proc.get("execCPUAffinity", {}).get("final"), "final", src)
        env = process.build_env(proc.get("env", []))
        user = proc.get("user", {})
        if "HOME" not in env:
            env["HOME"] = process.home_for(user.get("uid", 0))
        args = proc["args"]
        cwd = proc.get("cwd", "/")
        try:
            posix.chdir(cwd)
        except OSError as e:
            raise process.ProcessError(
                f'chdir to cwd ("{cwd}") set in config.json failed: '
                f"{(e.strerror or str(e)).lower()}") from None
        exe = process.look_path(args[0], env.get("PATH"))
        sets = process.cap_sets(proc.get("capabilities"))
        process.set_rlimits(proc.get("rlimits", []))
        posix.umask(user.get("umask", 0o022))
        # The same steps, in the same order, as create's init (pyrunc.init.main).
        if "oomScoreAdj" in proc:
            process.set_oom_score_adj(proc["oomScoreAdj"], src)
        if "scheduler" in proc:
            sched.apply_scheduler(proc["scheduler"], src)
        if "ioPriority" in proc:
            sched.apply_io_priority(proc["ioPriority"], src)
        lsm.apply_on_exec(proc)
        seccomp_cfg = linux.get("seccomp")
        if seccomp_cfg:
            if not proc.get("noNewPrivileges"):
                _install_seccomp(sock, seccomp_cfg)  # needs CAP_SYS_ADMIN, dropped next
                seccomp_cfg = None
        process.apply_user_and_caps(proc, sets)
        if seccomp_cfg:
            _install_seccomp(sock, seccomp_cfg)  # under no_new_privs: as late as possible
        pause = posix.environ.get(b"PYRUNC_TEST_EXEC_PAUSE")
        if pause:
            import time
            time.sleep(float(pause))  # tests: inspect the joining process before execve
        process.close_fds(2 + plan.keep_fds, also_keep=sock.fileno())
        posix.execve(exe, args, env)
    except BaseException as e:  # noqa: BLE001
        _fail(sock, e)
    posix._exit(1)


def _install_seccomp(sock: _socket.socket, cfg: dict[str, Any]) -> None:
    """Load the filter; a notify listener goes to the parent, which hands it to
    the agent (listenerPath) before we may execve, as create does."""
    from pyrunc.linux import seccomp

    listener = seccomp.install(cfg)
    if listener is not None:
        sync.send(sock, {"type": "seccomp"}, [listener])
        posix.close(listener)
        if sync.recv(sock)[0].get("type") != "seccomp-done":
            posix._exit(1)  # the parent gave up (its error is the one to report)
