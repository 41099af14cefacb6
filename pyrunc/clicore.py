"""What every command shares (runc's global flags; running a command's handler
with runc's error lines and exit codes), and the four commands a shim calls
around every container: start, state, kill and delete.

pyrunc.__main__ runs those four from here, with a parser of their own
flags only: importing pyrunc.cli and building its table of every command
and flag costs ~0.6 ms of each call. Their help and --version go to
pyrunc.cli, which lists these same Command objects with the rest."""

from __future__ import annotations

import posix  # not os: see pyrunc.posixfs
import sys

from pyrunc import log
from pyrunc.cliparse import Command, Flag, Namespace, Parser
from pyrunc.errors import PyruncError, UsageError

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any, NoReturn

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


# ---- the four commands --------------------------------------------------------
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


def _one(name: str, fn: Any, about: str, flags: list[Flag] | None = None) -> Command:
    return Command(name, fn, about, flags, args="<container-id>", min_args=1, max_args=1)


START = _one("start", cmd_start, "executes the user defined process in a created container")
STATE = _one("state", cmd_state, "output the state of a container")
KILL = Command("kill", cmd_kill, "send a signal (default: SIGTERM) to the container's init",
               [Flag("-a,--all", help="send the signal to all processes in the container")],
               args="<container-id> [signal]", min_args=1, max_args=2)
DELETE = _one("delete", cmd_delete, "delete any resources held by the container",
              [Flag("-f,--force", help="kill the container first if it is running")])
ONESHOT = {c.name: c for c in (START, STATE, KILL, DELETE)}


# ---- running a command --------------------------------------------------------
def run(args: Namespace, cmd: Command) -> int:
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


def main(argv: list[str]) -> NoReturn:
    """Run start, state, kill or delete; pyrunc.cli takes any other command
    line (help, --version, another command)."""
    try:
        args, cmd = Parser("pyrunc", ABOUT, GLOBAL_FLAGS, list(ONESHOT.values())).parse(argv)
    except UsageError:
        cmd = None  # pyrunc.cli reports it, with the same parser code
    if cmd is None or args.help or args.version:
        from pyrunc.cli import main as full

        full(argv)
    leave(run(args, cmd))
