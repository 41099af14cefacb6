"""Command line: runc's flags, subcommands, exit codes and error lines.
No container logic here; heavy modules are imported per command."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence

from pyrunc import OCI_VERSION, __version__, log
from pyrunc.errors import PyruncError, UsageError

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any, NoReturn

USAGE_EXIT = 1
UNKNOWN_COMMAND_EXIT = 3  # runc (urfave/cli): "No help topic for 'x'"


# argparse translates every message through gettext, which searches the disk
# for catalogues on each call; pyrunc speaks English only.
argparse._ = lambda text: text  # type: ignore[attr-defined]
argparse.ngettext = lambda one, many, n: one if n == 1 else many  # type: ignore[attr-defined]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _version_text() -> str:
    return (f"pyrunc version {__version__}\nspec: {OCI_VERSION}\n"
            f"python: {sys.version.split()[0]}\n")


def _parse_signal(text: str) -> int:
    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 < n < signal.NSIG:
            return n
    else:
        name = t if t.startswith("SIG") else "SIG" + t
        try:
            return int(signal.Signals[name])
        except KeyError:
            pass
    raise UsageError(f"unknown signal {text!r}")


def _root(args: argparse.Namespace) -> Any:
    from pyrunc.state import Root

    return Root(args.root)


def _create_opts(args: argparse.Namespace) -> Any:
    from pyrunc.container import CreateOptions

    if args.preserve_fds < 0:
        raise UsageError("--preserve-fds must be a non-negative number")
    return CreateOptions(bundle=args.bundle, pid_file=args.pid_file,
                         console_socket=args.console_socket, no_pivot=args.no_pivot,
                         no_new_keyring=args.no_new_keyring, preserve_fds=args.preserve_fds,
                         rootless=args.rootless == "true"
                         or (args.rootless == "auto" and os.geteuid() != 0),
                         systemd_cgroup=args.systemd_cgroup)


# ---- commands -----------------------------------------------------------------
def cmd_create(args: argparse.Namespace) -> int:
    from pyrunc.container import Container

    Container(_root(args), args.id).create(_create_opts(args))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from pyrunc.container import run

    return run(_root(args), args.id, _create_opts(args), args.detach, args.keep)


def cmd_start(args: argparse.Namespace) -> int:
    from pyrunc.container import Container

    Container(_root(args), args.id).start()
    return 0


def cmd_state(args: argparse.Namespace) -> int:
    from pyrunc.container import Container
    from pyrunc.fastjson import dumps_indent

    print(dumps_indent(Container(_root(args), args.id).state()))
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    from pyrunc.container import Container

    Container(_root(args), args.id).kill(_parse_signal(args.signal), args.all)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from pyrunc.container import Container
    from pyrunc.state import NotExist

    try:
        Container(_root(args), args.id).delete(force=args.force)
    except NotExist:
        if not args.force:
            raise
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    from pyrunc.execution import ExecOptions, exec_process

    if args.preserve_fds < 0:
        raise UsageError("--preserve-fds must be a non-negative number")
    if not args.process and not args.command_args:
        raise UsageError("exec: arguments or --process FILE are required")
    opts = ExecOptions(
        process_file=args.process, args=list(args.command_args), cwd=args.cwd,
        env=list(args.env), tty=args.tty, console_socket=args.console_socket, user=args.user,
        additional_gids=list(args.additional_gids), caps=list(args.cap), detach=args.detach,
        pid_file=args.pid_file, preserve_fds=args.preserve_fds, no_new_privs=args.no_new_privs,
        apparmor=args.apparmor, process_label=args.process_label, cgroup=args.cgroup,
        ignore_paused=args.ignore_paused)
    return exec_process(_root(args), args.id, opts)


def _owner_name(path: str) -> str:
    try:
        uid = os.stat(path).st_uid
    except OSError:
        return ""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return f"#{uid}"


def cmd_list(args: argparse.Namespace) -> int:
    from pyrunc.container import Container
    from pyrunc.state import NotExist

    root = _root(args)
    rows = []
    for cid in root.ids():
        try:
            st = Container(root, cid).state()
        except (NotExist, PyruncError):
            continue
        st["owner"] = _owner_name(root.dir(cid))
        rows.append(st)
    if args.quiet:
        for r in rows:
            print(r["id"])
    elif args.format == "json":
        from pyrunc.fastjson import dumps

        print(dumps(rows or None, compact=True))
    else:
        table = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        table += [[r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]]
                  for r in rows]
        widths = [max(12, max(len(row[i]) for row in table) + 3) for i in range(6)]
        for row in table:
            print("".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False))
                  + row[-1])
    return 0


def cmd_spec(args: argparse.Namespace) -> int:
    from pyrunc import spec

    path = os.path.join(args.bundle or ".", "config.json")
    if os.path.exists(path):
        raise PyruncError("File config.json exists. Remove it first")
    from pyrunc.fastjson import dumps_indent

    text = dumps_indent(spec.template(rootless=args.rootless), "\t")
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise PyruncError(f"spec: cannot write {path}: {e.strerror}") from None
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from pyrunc.fastjson import dumps_indent
    from pyrunc.features import features

    print(dumps_indent(features(), "    "))
    return 0


# ---- parser -----------------------------------------------------------------
def _add_create_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-b", "--bundle", default=".", help="path to the bundle directory")
    p.add_argument("--console-socket", help="AF_UNIX socket to receive the pty master")
    p.add_argument("--pid-file", help="file to write the init process id to")
    p.add_argument("--no-pivot", action="store_true", help="use MS_MOVE + chroot, not pivot_root")
    p.add_argument("--no-new-keyring", action="store_true",
                   help="do not create a new session keyring")
    p.add_argument("--preserve-fds", type=int, default=0,
                   help="pass N additional file descriptors to the container")


Handler = Callable[[argparse.Namespace], int]


class _Skipped:
    """Stands in for the parsers of the commands not being run: building all
    of argparse's subparsers costs more than the rest of a `pyrunc state`."""

    def add_argument(self, *args: object, **kwargs: object) -> None:
        pass


_VALUE_FLAGS = {"--root", "--log", "--log-format", "--rootless", "--criu"}


def _command_of(argv: list[str]) -> str | None:
    it = iter(argv)
    for arg in it:
        if arg in _VALUE_FLAGS:
            next(it, None)
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(only: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    p = _Parser(prog="pyrunc", description="An OCI container runtime in Python "
                "(a drop-in replacement for runc).")
    p.add_argument("--root", default=None, help="state directory (default /run/pyrunc)")
    p.add_argument("--log", default=None, help="log file (default stderr)")
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true")
    p.add_argument("--rootless", default="auto", choices=["true", "false", "auto"])
    p.add_argument("--criu", default="criu", help="path to criu (checkpoint/restore)")
    p.add_argument("-v", "--version", action="store_true")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    handlers: dict[str, Handler] = {}

    def add(name: str, fn: Handler, helptext: str, *aliases: str) -> Any:
        handlers[name] = fn
        for a in aliases:
            handlers[a] = fn
        if only is not None and only != name and only not in aliases:
            return _Skipped()
        return sub.add_parser(name, help=helptext, description=helptext, aliases=list(aliases))

    sp = add("create", cmd_create, "create a container")
    _add_create_flags(sp)
    sp.add_argument("id")
    sp = add("run", cmd_run, "create and run a container")
    _add_create_flags(sp)
    sp.add_argument("-d", "--detach", action="store_true")
    sp.add_argument("--keep", action="store_true", help="do not delete the container on exit")
    sp.add_argument("id")
    sp = add("start", cmd_start, "start the user process of a created container")
    sp.add_argument("id")
    sp = add("state", cmd_state, "output the state of a container")
    sp.add_argument("id")
    sp = add("kill", cmd_kill, "send a signal (default SIGTERM) to the container's init")
    sp.add_argument("-a", "--all", action="store_true", help="signal every process")
    sp.add_argument("id")
    sp.add_argument("signal", nargs="?", default="SIGTERM")
    sp = add("delete", cmd_delete, "delete a container and its resources")
    sp.add_argument("-f", "--force", action="store_true")
    sp.add_argument("id")
    sp = add("list", cmd_list, "list containers under --root")
    sp.add_argument("-f", "--format", default="table", choices=["table", "json"])
    sp.add_argument("-q", "--quiet", action="store_true")
    sp = add("exec", cmd_exec, "execute a new process inside the container")
    sp.add_argument("-p", "--process", help="process.json (the spec's process object)")
    sp.add_argument("--cwd")
    sp.add_argument("-e", "--env", action="append", default=[])
    sp.add_argument("-t", "--tty", action="store_true")
    sp.add_argument("--console-socket")
    sp.add_argument("-u", "--user", help="uid[:gid]")
    sp.add_argument("-g", "--additional-gids", action="append", type=int, default=[])
    sp.add_argument("-c", "--cap", action="append", default=[])
    sp.add_argument("-d", "--detach", action="store_true")
    sp.add_argument("--pid-file")
    sp.add_argument("--preserve-fds", type=int, default=0)
    sp.add_argument("--no-new-privs", action="store_true")
    sp.add_argument("--apparmor")
    sp.add_argument("--process-label")
    sp.add_argument("--cgroup", action="append", default=[],
                    help="sub-cgroup to join: PATH or CONTROLLER[,CONTROLLER]:PATH")
    sp.add_argument("--ignore-paused", action="store_true")
    sp.add_argument("id")
    sp.add_argument("command_args", nargs=argparse.REMAINDER)
    add("features", cmd_features, "show the enabled features")
    sp = add("spec", cmd_spec, "create a new config.json template")
    sp.add_argument("-b", "--bundle", default=None)
    sp.add_argument("--rootless", action="store_true")
    return p, handlers


def main(argv: Sequence[str] | None = None) -> NoReturn:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, handlers = build_parser(_command_of(argv))
    if args_command := _command_of(argv):
        if args_command not in handlers:  # let argparse list the choices
            parser, handlers = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        code = USAGE_EXIT
        msg = str(e)
        if "invalid choice" in msg and "command" in msg:
            code = UNKNOWN_COMMAND_EXIT
        log.error(msg)
        sys.exit(code)
    if args.version:
        sys.stdout.write(_version_text())
        sys.exit(0)
    log.configure(args.log, args.log_format, args.debug)
    if not args.command:
        parser.print_help()
        sys.exit(0)
    if args.root is None:
        from pyrunc.state import default_root

        args.root = default_root()
    if args.systemd_cgroup and args.command in ("create", "run"):
        log.error("--systemd-cgroup: the systemd cgroup driver is not supported by pyrunc yet; "
                  "use the cgroupfs driver (drop --systemd-cgroup)")
        sys.exit(1)
    try:
        code = handlers[args.command](args)
    except PyruncError as e:
        log.error(str(e))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:
        log.error(f"{args.command}: {e}")
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - a bug must still end in one clear line
        if args.debug:
            import traceback

            traceback.print_exc()
        log.error(f"{args.command}: internal error: {type(e).__name__}: {e} "
                  "(run with --debug for a traceback)")
        sys.exit(1)
    sys.exit(code)
