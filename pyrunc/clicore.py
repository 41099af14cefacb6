"""What every command shares (runc's global flags; running a command's
handler with runc's error lines and exit codes) and the commands on every
container's path: create, run, start, state, kill, delete and exec.

pyrunc.__main__ runs those from here, parsing with the one command's
flags: importing pyrunc.cli and building its table of every command and
flag costs ~0.6 ms of each call. Help, --version and usage errors go to
pyrunc.cli, which lists these same commands with the rest."""

from __future__ import annotations

import posix  # not os: see pyrunc.posixfs
import sys

from pyrunc import log
from pyrunc.cliparse import Command, Flag, Namespace, Parser
from pyrunc.errors import PyruncError, UsageError

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from pyrunc.early import EarlyChild

ABOUT = "an OCI container runtime in Python (a drop-in for runc)"

GLOBAL_FLAGS = [
    Flag("--root", "str", help="root directory for container state (default /run/pyrunc)"),
    Flag("--log", "str", help="log file (default stderr)"),
    Flag("--log-format", "str", "text", ("text", "json"), "text (default) or json"),
    Flag("--debug", help="enable debug logging"),
    Flag("--systemd-cgroup", help="use the systemd cgroup driver (not supported yet)"),
    Flag("--rootless", "str", "auto", ("true", "false", "auto"),
         help="ignore cgroup permission errors (true, false or auto)"),
    Flag("--criu", "str", "criu", help="path to the criu binary"),
    Flag("-v,--version", help="print the version"),
]


def root_of(args: Namespace) -> Any:
    from pyrunc.state import Root

    return Root(args.root)


def parse_signal(text: str) -> int:
    import _signal  # not `signal`: its enums cost ~1.5 ms on every `kill`

    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 < n < _signal.NSIG:
            return n
    else:
        name = t if t.startswith("SIG") else "SIG" + t
        num = getattr(_signal, name, None) if "_" not in name else None  # not SIG_IGN etc.
        if isinstance(num, int) and 0 < num < _signal.NSIG:
            return num
    raise UsageError(f"unknown signal {text!r}")


# ---- the commands --------------------------------------------------------------
def _create_opts(args: Namespace) -> Any:
    from pyrunc.launch import CreateOptions
    from pyrunc.posixfs import abspath

    if args.preserve_fds < 0:
        raise UsageError("--preserve-fds must be a non-negative number")
    def absolute(path: str | None) -> str | None:  # create chdirs into the bundle
        return abspath(path) if path else path

    return CreateOptions(bundle=args.bundle, pid_file=absolute(args.pid_file),
                         console_socket=absolute(args.console_socket), no_pivot=args.no_pivot,
                         no_new_keyring=args.no_new_keyring, preserve_fds=args.preserve_fds,
                         rootless=args.rootless == "true"
                         or (args.rootless == "auto" and posix.geteuid() != 0),
                         systemd_cgroup=args.systemd_cgroup)


def _early(args: Namespace, kind: str) -> EarlyChild:
    """The child pyrunc.__main__ forked for this command, else a new one:
    first thing, as it works in parallel with everything after."""
    if args.early:  # taken from main's list, which closes what is left in it
        child: EarlyChild = args.early.pop()
        if child.kind == kind:
            return child
        child.close()
    from pyrunc.early import EarlyChild

    return EarlyChild(kind)


def cmd_create(args: Namespace) -> int:
    with _early(args, "create") as s1:
        from pyrunc.launch import create

        create(root_of(args), args.id, _create_opts(args), s1)
    return 0


def cmd_run(args: Namespace) -> int:
    with _early(args, "create") as s1:
        from pyrunc.launch import run

        return run(root_of(args), args.id, _create_opts(args), args.detach, args.keep, s1)


def cmd_exec(args: Namespace) -> int:
    if args.preserve_fds < 0:
        raise UsageError("--preserve-fds must be a non-negative number")
    if args.command_args[:1] == ["--"]:
        args.command_args = args.command_args[1:]
    if not args.process and not args.command_args:
        raise UsageError("exec: arguments or --process FILE are required")
    with _early(args, "exec") as child:  # imports while we read the state (and the rest below)
        from pyrunc.execution import ExecOptions, exec_process

        opts = ExecOptions(
            process_file=args.process, args=list(args.command_args), cwd=args.cwd,
            env=list(args.env), tty=args.tty, console_socket=args.console_socket, user=args.user,
            additional_gids=list(args.additional_gids), caps=list(args.cap), detach=args.detach,
            pid_file=args.pid_file, preserve_fds=args.preserve_fds, no_new_privs=args.no_new_privs,
            apparmor=args.apparmor, process_label=args.process_label, cgroup=args.cgroup,
            ignore_paused=args.ignore_paused)
        return exec_process(root_of(args), args.id, opts, child)


def cmd_start(args: Namespace) -> int:
    from pyrunc.container import Container

    Container(root_of(args), args.id).start()
    return 0


def cmd_state(args: Namespace) -> int:
    from pyrunc.container import Container
    from pyrunc.fastjson import dumps_indent

    print(dumps_indent(Container(root_of(args), args.id).state()))
    return 0


def cmd_kill(args: Namespace) -> int:
    from pyrunc.container import Container

    Container(root_of(args), args.id).kill(parse_signal(args.signal), args.all)
    return 0


def cmd_delete(args: Namespace) -> int:
    from pyrunc.container import Container
    from pyrunc.state import NotExist

    try:
        Container(root_of(args), args.id).delete(force=args.force)
    except NotExist:
        if not args.force:
            raise
    return 0


def one(name: str, fn: Callable[[Namespace], int], about: str,
        flags: list[Flag] | None = None) -> Command:
    """A command on one container (`<container-id>`)."""
    return Command(name, fn, about, flags, args="<container-id>", min_args=1, max_args=1)


def _create_flags() -> list[Flag]:
    return [
        Flag("-b,--bundle", "str", ".", help="path to the root of the bundle directory"),
        Flag("--console-socket", "str", help="AF_UNIX socket to receive the pty master"),
        Flag("--pid-file", "str", help="file to write the init process id to"),
        Flag("--no-pivot", help="use MS_MOVE + chroot instead of pivot_root"),
        Flag("--no-new-keyring", help="do not create a new session keyring"),
        Flag("--preserve-fds", "int", 0, help="pass N additional file descriptors"),
    ]


def _exec_command() -> Command:
    return Command("exec", cmd_exec, "execute new process inside the container", [
        Flag("-p,--process", "str", help="process.json (the spec's process object)"),
        Flag("--cwd", "str", help="current working directory in the container"),
        Flag("-e,--env", "list", help="set environment variables"),
        Flag("-t,--tty", help="allocate a pseudo-TTY"),
        Flag("--console-socket", "str", help="AF_UNIX socket to receive the pty master"),
        Flag("-u,--user", "str", help="UID (format: <uid>[:<gid>])"),
        Flag("-g,--additional-gids", "intlist", help="additional gids"),
        Flag("-c,--cap", "list", help="add a capability to the bounding set"),
        Flag("-d,--detach", help="detach from the process"),
        Flag("--pid-file", "str", help="file to write the process id to"),
        Flag("--preserve-fds", "int", 0, help="pass N additional file descriptors"),
        Flag("--no-new-privs", help="set the no new privileges value for the process"),
        Flag("--apparmor", "str", help="set the apparmor profile for the process"),
        Flag("--process-label", "str", help="set the asm process label"),
        Flag("--cgroup", "list", help="sub-cgroup: PATH or CONTROLLER[,CONTROLLER]:PATH"),
        Flag("--ignore-paused", help="allow exec in a paused container"),
    ], args="<container-id> <command> [command options]", min_args=1, max_args=1,
        rest="command_args")


# Built when asked for: a command's flags cost ~2 us each to make.
COMMANDS: dict[str, Callable[[], Command]] = {
    "create": lambda: one("create", cmd_create, "create a container", _create_flags()),
    "run": lambda: one("run", cmd_run, "create and run a container", [
        *_create_flags(), Flag("-d,--detach", help="detach from the container"),
        Flag("--keep", help="do not delete the container after it exits")]),
    "start": lambda: one("start", cmd_start,
                         "executes the user defined process in a created container"),
    "state": lambda: one("state", cmd_state, "output the state of a container"),
    "kill": lambda: Command(
        "kill", cmd_kill, "send a signal (default: SIGTERM) to the container's init",
        [Flag("-a,--all", help="send the signal to all processes in the container")],
        args="<container-id> [signal]", min_args=1, max_args=2),
    "delete": lambda: one("delete", cmd_delete, "delete any resources held by the container",
                          [Flag("-f,--force", help="kill the container first if it is running")]),
    "exec": _exec_command,
}


# ---- running a command --------------------------------------------------------
def dispatch(args: Namespace, cmd: Command) -> int:
    """The parsed command's handler, its failures as runc reports them: one
    log line and an exit code."""
    log.configure(args.log, args.log_format, args.debug)
    pos = args.positional
    args.id = pos[0] if pos else None
    args.signal = pos[1] if len(pos) > 1 else "SIGTERM"
    if args.root is None:
        from pyrunc.state import default_root

        args.root = default_root()
    if args.systemd_cgroup and cmd.name in ("create", "run"):
        log.error("--systemd-cgroup: the systemd cgroup driver is not supported by pyrunc yet; "
                  "use the cgroupfs driver (drop --systemd-cgroup)")
        return 1
    try:
        return cmd.handler(args)
    except PyruncError as e:
        log.error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        log.error(f"{cmd.name}: {e}")
        return 1
    except Exception as e:  # noqa: BLE001 - a bug must still end in one clear line
        if args.debug:
            import traceback

            traceback.print_exc()
        log.error(f"{cmd.name}: internal error: {type(e).__name__}: {e} "
                  "(run with --debug for a traceback)")
        return 1


def leave(code: int) -> NoReturn:
    """Exit without the interpreter's teardown (~3 ms of freeing what the
    kernel frees anyway). Our files are closed by now (log lines are written
    with os.write); only stdio may hold buffered output."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    posix._exit(code)


def main(argv: list[str], name: str, early: EarlyChild | None = None) -> NoReturn:
    """Run command `name` (a key of COMMANDS, found by pyrunc.__main__);
    pyrunc.cli takes help, --version and usage errors. `early`: the child
    __main__ forked for create, run or exec."""
    try:
        args, cmd = Parser("pyrunc", ABOUT, GLOBAL_FLAGS, [COMMANDS[name]()]).parse(argv)
    except UsageError:
        cmd = None  # pyrunc.cli reports it, with the same parser code
    if cmd is None or args.help or args.version:
        from pyrunc.cli import main as full

        full(argv, early)
    leave(dispatch_with(args, cmd, early))


def dispatch_with(args: Namespace, cmd: Command, early: EarlyChild | None) -> int:
    """dispatch(), handing the command the early child; one it does not take is
    closed (killed and reaped) here."""
    args.early = [early] if early is not None else []
    try:
        return dispatch(args, cmd)
    finally:
        for child in args.early:
            child.close()
