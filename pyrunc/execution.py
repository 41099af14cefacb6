"""`pyrunc exec`, parent side: build the process from config.process and the
flags (or a process.json), fork the joining child (pyrunc.init.exec_child),
put it in the container's cgroup, relay errors, the pty, signals and status.

Like runc 1.1: failures exit 255; a process.json's missing user.uid/gid are 0,
its missing capabilities/apparmorProfile/selinuxLabel are the container's; cwd
and args are required. On purpose unlike runc 1.1 (the spec wins): a
process.json's user.umask, oomScoreAdj, scheduler, ioPriority and
execCPUAffinity are applied (runc 1.1 ignores them), and messages drop runc's
"exec failed: unable to start container process: " prefix (the parts clients
match, e.g. "executable file not found", are the same)."""

from __future__ import annotations

import os

from pyrunc.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyrunc.early import EarlyChild
    from pyrunc.state import Root


class ExecOptions:
    """exec's flags. (A plain class: dataclasses costs ~14 ms to import.)"""

    def __init__(self, process_file: str | None = None, args: list[str] | None = None,
                 cwd: str | None = None, env: list[str] | None = None, tty: bool = False,
                 console_socket: str | None = None, user: str | None = None,
                 additional_gids: list[Any] | None = None, caps: list[str] | None = None,
                 detach: bool = False, pid_file: str | None = None, preserve_fds: int = 0,
                 no_new_privs: bool = False, apparmor: str | None = None,
                 process_label: str | None = None, cgroup: list[str] | str | None = None,
                 ignore_paused: bool = False) -> None:
        self.process_file = process_file
        self.args = args or []
        self.cwd = cwd
        self.env = env or []
        self.tty = tty
        self.console_socket = console_socket
        self.user = user
        self.additional_gids = additional_gids or []
        self.caps = caps or []
        self.detach = detach
        self.pid_file = pid_file
        self.preserve_fds = preserve_fds
        self.no_new_privs = no_new_privs
        self.apparmor = apparmor
        self.process_label = process_label
        self.cgroup = cgroup
        self.ignore_paused = ignore_paused


def _load_process_file(path: str) -> dict[str, Any]:
    from pyrunc import spec

    proc = spec.read_json(path, "process.json", f"no such file {path}")
    if not isinstance(proc, dict):
        raise PyruncError("process.json: must be a JSON object")
    user = proc.get("user")
    if isinstance(user, dict):  # runc (Go's zero values) takes a missing uid/gid as 0
        user.setdefault("uid", 0)
        user.setdefault("gid", 0)
    spec.validate_process(proc, source="process.json")
    _check_process(proc, "process.json")
    return proc


def _check_process(proc: dict[str, Any], src: str) -> None:
    args = proc.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise PyruncError(f"{src}: args: must be a non-empty list of strings")
    cwd = proc.get("cwd", "")
    if not isinstance(cwd, str) or not cwd:
        raise PyruncError(f"{src}: cwd: must not be empty")
    if not cwd.startswith("/"):
        raise PyruncError(f"{src}: cwd: must be an absolute path, got {cwd!r}")
    env = proc.get("env", [])
    if not isinstance(env, list) or not all(isinstance(e, str) and "=" in e for e in env):
        raise PyruncError(f"{src}: env: must be a list of KEY=VALUE strings")
    user = proc.get("user", {})
    if not isinstance(user, dict):
        raise PyruncError(f"{src}: user: must be an object")
    for k in ("uid", "gid"):
        if not isinstance(user.get(k, 0), int) or user.get(k, 0) < 0:
            raise PyruncError(f"{src}: user.{k}: must be a non-negative integer")


_ID_MAX = 2**31 - 1  # runc: "uids and gids must be in range 0-2147483647"


def _parse_user(spec: str) -> tuple[int, int | None]:
    uid_s, _, gid_s = spec.partition(":")
    try:
        uid, gid = int(uid_s), (int(gid_s) if gid_s else None)
    except ValueError:
        raise PyruncError(f"--user: invalid value {spec!r}: want uid[:gid] as numbers") from None
    for name, n in (("uid", uid), ("gid", gid)):
        if n is not None and not 0 <= n <= _ID_MAX:
            raise PyruncError(f"--user: {name} {n} is out of range 0-{_ID_MAX}")
    return uid, gid


def build_process(cfg_proc: dict[str, Any], opts: ExecOptions) -> dict[str, Any]:
    """runc's getProcess: the container's process overridden by the flags."""
    from pyrunc.fastjson import copy_tree

    if opts.process_file:
        p = _load_process_file(opts.process_file)
        # Like runc: what a process.json leaves out of these comes from the container.
        for key in ("capabilities", "apparmorProfile", "selinuxLabel"):
            if key not in p and key in cfg_proc:
                p[key] = copy_tree(cfg_proc[key])
        return p
    p = copy_tree(cfg_proc)
    p["args"] = list(opts.args)
    if opts.cwd:
        p["cwd"] = opts.cwd
    p["env"] = list(p.get("env", [])) + list(opts.env)
    p["terminal"] = bool(opts.tty)
    if opts.no_new_privs:
        p["noNewPrivileges"] = True
    if opts.apparmor:
        p["apparmorProfile"] = opts.apparmor
    if opts.process_label:
        p["selinuxLabel"] = opts.process_label
    user = p.setdefault("user", {})
    if opts.user:
        uid, gid = _parse_user(opts.user)
        user["uid"] = uid
        if gid is not None:
            user["gid"] = gid
    for g in opts.additional_gids:
        try:
            gid_n = int(g)
        except ValueError:
            raise PyruncError(f"--additional-gids: invalid gid {g!r}") from None
        if not 0 <= gid_n <= _ID_MAX:
            raise PyruncError(f"--additional-gids: gid {gid_n} is out of range 0-{_ID_MAX}")
        user.setdefault("additionalGids", []).append(gid_n)
    if opts.caps:
        from pyrunc.linux.caps import to_numbers

        try:
            to_numbers(opts.caps, "--cap")
        except ValueError as e:
            raise PyruncError(str(e)) from None
        caps = p.setdefault("capabilities", {})
        for c in opts.caps:
            for key in ("bounding", "effective", "permitted", "inheritable", "ambient"):
                caps.setdefault(key, []).append(c)
    p.setdefault("cwd", "/")
    _check_process(p, "exec")
    return p


def _check_lsm(proc: dict[str, Any], opts: ExecOptions) -> None:
    """Labels this host cannot apply are refused, like create does."""
    from pyrunc.init import lsm

    src = _src(opts)
    if not opts.process_file and (opts.apparmor or opts.process_label):
        src = "exec: process."
    try:
        lsm.check(proc, {}, src)
    except lsm.LsmError as e:
        raise PyruncError(str(e)) from None


def _check_status(status: str, ignore_paused: bool) -> None:
    if status == "stopped":
        raise PyruncError("cannot exec in a stopped container")
    if status == "paused" and not ignore_paused:
        raise PyruncError("cannot exec in a paused container (use --ignore-paused to override)")


def exec_process(root: Root, cid: str, opts: ExecOptions, child: EarlyChild) -> int:
    """Run the process; its exit status, or PyruncError with exit code 255 (runc's
    "exec failed" code, which clients tell apart from the process's own status).
    `child`: the joiner, forked by the caller as early as it could (the caller closes it)."""
    try:
        return _exec(root, cid, opts, child)
    except PyruncError as e:
        if e.exit_code == 1:
            e.exit_code = 255
        raise


def _src(opts: ExecOptions) -> str:
    """How errors name a process field: from the process.json, or config.json's."""
    return "process.json: " if opts.process_file else "config.json: process."


def _exec(root: Root, cid: str, opts: ExecOptions, child: EarlyChild) -> int:
    from pyrunc import sync
    from pyrunc.container import Container
    from pyrunc.init.plan import ExecPlan
    from pyrunc.launch import forward_signals, wait_exit, write_pid_file

    if opts.console_socket and not opts.tty and not opts.process_file:
        raise PyruncError("cannot use console socket if runc will not detach or allocate tty")
    cdir, st, status = Container(root, cid).open()
    try:
        _check_status(status, opts.ignore_paused)
        proc = build_process(st.config.get("process", {}), opts)
        _check_lsm(proc, opts)
        mgr = None
        if st.cgroup:
            from pyrunc.container import manager_for
            mgr = manager_for(st)
    finally:
        cdir.unlock()
    subs = _parse_sub_cgroups(opts.cgroup)
    if subs and mgr is None:
        raise PyruncError("--cgroup: the container has no cgroup")
    if proc.get("terminal") and opts.detach and not opts.console_socket:
        raise PyruncError("cannot allocate tty if runc will detach without setting console socket")
    plan = ExecPlan(pid=st.pid, cfg=st.config, proc=proc, keep_fds=opts.preserve_fds,
                    src=_src(opts))
    if not opts.detach:
        from pyrunc.linux.subreaper import become_subreaper

        become_subreaper()  # the grandchild becomes ours to reap
    parent_joins = mgr is not None and (bool(subs) or not plan.let_children_join(mgr))
    try:
        child.send_plan(plan)
    finally:
        if plan.cgroup_v2_fd >= 0:
            os.close(plan.cgroup_v2_fd)
    pid = child.pid
    parent_sock = child.sock
    exec_pid = 0
    try:
        if parent_joins and mgr is not None:
            # The first cgroup move in a while waits for the kernel (an RCU
            # grace period, ~10 ms): moving the joiner starts that wait while
            # it joins the namespaces; the final process is moved below.
            try:
                mgr.apply(pid)
            except PyruncError:
                pass  # the joiner may be gone already; its error comes below
        msg = sync.expect(parent_sock, "pid")
        exec_pid = msg["pid"]
        master = -1
        if proc.get("terminal"):
            master = sync.expect(parent_sock, "pty")["fds"][0]
        if parent_joins and mgr is not None:
            mgr.apply(exec_pid)
            if subs:
                _join_sub_cgroups(mgr, subs, exec_pid)
        elif mgr is not None and msg.get("cgroup_v2") == "move":  # no clone3 there
            mgr.apply(exec_pid, v2_only=True)
        if "intelRdt" in st.extra:
            from pyrunc import intelrdt
            intelrdt.join(st.extra["intelRdt"], exec_pid)
        sync.send(parent_sock, {"type": "cgroup"})
        msg, fds = sync.recv(parent_sock)  # EOF: execve happened (socket is close-on-exec)
        if msg.get("type") == "seccomp":
            from pyrunc.seccomp_notify import forward_listener
            from pyrunc.state import oci_state

            forward_listener(st.config["linux"]["seccomp"], fds, oci_state(st, "running"),
                             exec_pid)
            sync.send(parent_sock, {"type": "seccomp-done"})
            msg, _ = sync.recv(parent_sock)
        if "error" in msg:
            raise PyruncError(msg["error"])
    except BaseException:
        parent_sock.close()  # a child still waiting for "cgroup" sees EOF and exits
        if exec_pid:
            from pyrunc.container import kill_and_wait
            kill_and_wait(exec_pid)
        child.reap(kill=False)
        raise
    finally:
        parent_sock.close()
    child.reap(kill=False)
    if opts.pid_file:
        write_pid_file(opts.pid_file, exec_pid)
    if master >= 0 and opts.console_socket:
        sync.send_fd_over_unix(opts.console_socket, master, "/dev/ptmx")
        os.close(master)
        master = -1
    if opts.detach:
        if master >= 0:
            os.close(master)
        return 0
    forward_signals(exec_pid)
    if master < 0:
        return wait_exit(exec_pid)
    return _wait_with_proxy(exec_pid, master)


def _parse_sub_cgroups(values: list[str] | str | None) -> dict[str, str]:
    """runc's --cgroup: PATH (every controller) or CTRL[,CTRL]:PATH; "" keys all."""
    if not values:
        return {}
    out: dict[str, str] = {}
    for v in [values] if isinstance(values, str) else values:
        ctrls, sep, path = v.rpartition(":")
        if not path or os.path.isabs(path) or ".." in path.split("/"):
            raise PyruncError(f"--cgroup: invalid sub-cgroup path in {v!r}: want a relative "
                              "path without '..'")
        for c in (ctrls.split(",") if sep else [""]):
            if c in out:
                raise PyruncError(f"--cgroup: controller {c or 'all'!r} given twice")
            out[c] = path
    return out


def _join_sub_cgroups(mgr: Any, subs: dict[str, str], pid: int) -> None:
    dirs: dict[str, str] = getattr(mgr, "dirs", {})
    used: set[str] = set()
    for key, d in dirs.items():
        ctrls = key.split(",") if key else [""]
        path = next((subs[c] for c in ctrls if c in subs), subs.get(""))
        used.update(c for c in ctrls if c in subs)
        if path is None:
            continue
        target = os.path.join(d, path, "cgroup.procs")
        try:
            with open(target, "w") as f:
                f.write(str(pid))
        except OSError as e:
            raise PyruncError(f"--cgroup: cannot join {os.path.join(d, path)}: "
                              f"{e.strerror}") from None
    unknown = set(subs) - used - {""}
    if unknown:
        raise PyruncError(f"--cgroup: controller {sorted(unknown)[0]!r} is not in use "
                          "by the container")


def _wait_with_proxy(pid: int, master: int) -> int:
    import threading

    from pyrunc.launch import wait_exit
    from pyrunc.terminal import prepare_proxy, proxy, restore

    saved = prepare_proxy(master)
    stop = [False]
    t = threading.Thread(target=proxy, args=(master, stop), daemon=True)
    t.start()
    try:
        status = wait_exit(pid)
        t.join(1.0)
        stop[0] = True
    finally:
        restore(saved)
    return status
