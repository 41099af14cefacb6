"""Command line: runc's flags, subcommands, exit codes and error lines.
No container logic here; heavy modules are imported per command."""

from __future__ import annotations

import posix  # not os: see pyrunc.posixfs
import sys

from pyrunc import OCI_VERSION, __version__, log
from pyrunc.clicore import ABOUT, COMMANDS, GLOBAL_FLAGS, dispatch_with, leave, one, root_of
from pyrunc.cliparse import Command, Flag, Namespace, Parser
from pyrunc.errors import PyruncError, UsageError

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

    from pyrunc.early import EarlyChild


def _version_text() -> str:
    return (f"pyrunc version {__version__}\nspec: {OCI_VERSION}\n"
            f"python: {sys.version.split()[0]}\n")


def _owner_name(path: str) -> str:
    try:
        uid = posix.stat(path).st_uid
    except OSError:
        return ""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return f"#{uid}"


def cmd_list(args: Namespace) -> int:
    from pyrunc.container import Container
    from pyrunc.state import NotExist

    root = root_of(args)
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


def cmd_spec(args: Namespace) -> int:
    from pyrunc import spec
    from pyrunc.posixfs import exists

    path = f"{args.bundle or '.'}/config.json"
    if exists(path):
        raise PyruncError("File config.json exists. Remove it first")
    from pyrunc.fastjson import dumps_indent

    text = dumps_indent(spec.template(rootless=args.rootless), "\t")
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise PyruncError(f"spec: cannot write {path}: {e.strerror}") from None
    return 0


def cmd_features(args: Namespace) -> int:
    from pyrunc.fastjson import dumps_indent
    from pyrunc.features import features

    print(dumps_indent(features(), "    "))
    return 0


def cmd_pause(args: Namespace) -> int:
    from pyrunc.cgroup_cmds import pause

    pause(root_of(args), args.id)
    return 0


def cmd_resume(args: Namespace) -> int:
    from pyrunc.cgroup_cmds import resume

    resume(root_of(args), args.id)
    return 0


def cmd_ps(args: Namespace) -> int:
    from pyrunc.cgroup_cmds import ps

    sys.stdout.write(ps(root_of(args), args.id, args.format, args.ps_args))
    return 0


UPDATE_FLAGS = ("memory", "memory-swap", "memory-reservation", "cpu-quota", "cpu-period",
                "cpu-share", "cpuset-cpus", "cpuset-mems", "pids-limit", "blkio-weight",
                "cpu-rt-period", "cpu-rt-runtime", "cpu-idle", "cpu-burst")


def cmd_update(args: Namespace) -> int:
    from pyrunc.cgroup_cmds import read_resources, resources_from_flags, update

    given = {f: getattr(args, f.replace("-", "_")) for f in UPDATE_FLAGS}
    if args.resources:
        resources = read_resources(args.resources)
    else:
        resources = resources_from_flags(given)
    rdt = {k: v for k, v in (("l3CacheSchema", args.l3_cache_schema),
                             ("memBwSchema", args.mem_bw_schema)) if v}
    if not resources and not rdt:
        raise UsageError("update: nothing to update (give --resources or a resource flag)")
    if rdt:  # first, like runc's feature check: a refusal changes nothing
        from pyrunc import intelrdt
        intelrdt.update(root_of(args), args.id, rdt)
    if resources:
        update(root_of(args), args.id, resources)
    return 0


def cmd_events(args: Namespace) -> int:
    from pyrunc.cgroup_cmds import events, parse_interval

    events(root_of(args), args.id, args.stats, parse_interval(args.interval))
    return 0


def cmd_checkpoint(args: Namespace) -> int:
    from pyrunc.checkpoint import checkpoint

    checkpoint(root_of(args), args.id, args)
    return 0


def cmd_restore(args: Namespace) -> int:
    from pyrunc.checkpoint import restore

    return restore(root_of(args), args.id, args)


def _criu_flags() -> list[Flag]:
    """The flags runc's checkpoint and restore share."""
    return [
        Flag("--image-path", "str", help="path for criu image files (default ./checkpoint)"),
        Flag("--work-path", "str", help="path for saving work files and logs"),
        Flag("--tcp-established", help="allow open tcp connections"),
        Flag("--ext-unix-sk", help="allow external unix sockets"),
        Flag("--shell-job", help="allow shell jobs"),
        Flag("--file-locks", help="handle file locks, for safety"),
        Flag("--manage-cgroups-mode", "str", "", ("soft", "full", "strict", "ignore"),
             "cgroups mode: soft (default), full, strict or ignore"),
        Flag("--empty-ns", "list", help="create a namespace, but don't restore its properties"),
        Flag("--auto-dedup", help="enable auto deduplication of memory images"),
        Flag("--lazy-pages", help="use userfaultfd to lazily restore memory pages"),
    ]


# ---- parser -----------------------------------------------------------------
def _commands() -> list[Command]:
    return [
        *(COMMANDS[name]() for name in ("create", "run", "start", "state", "kill", "delete")),
        Command("list", cmd_list, "lists containers started by pyrunc with the given root",
                [Flag("-f,--format", "str", "table", ("table", "json"), "table or json"),
                 Flag("-q,--quiet", help="display only container IDs")], max_args=0),
        COMMANDS["exec"](),
        one("pause", cmd_pause, "pause suspends all processes inside the container"),
        one("resume", cmd_resume, "resumes all processes that have been previously paused"),
        Command("ps", cmd_ps, "ps displays the processes running inside a container",
                [Flag("-f,--format", "str", "table", ("table", "json"), "table or json")],
                args="<container-id> [ps options]", min_args=1, max_args=1, rest="ps_args"),
        one("update", cmd_update, "update container resource constraints", [
            Flag("-r,--resources", "str", help="path to a linux.resources JSON file, or -"),
            *[Flag("--" + f, "str", help=f"new {f.replace('-', ' ')}") for f in UPDATE_FLAGS],
            Flag("--kernel-memory", "str", help="ignored, as in runc"),
            Flag("--kernel-memory-tcp", "str", help="ignored, as in runc"),
            Flag("--l3-cache-schema", "str", help="new Intel RDT L3 cache schema"),
            Flag("--mem-bw-schema", "str", help="new Intel RDT memory bandwidth schema"),
        ]),
        one("events", cmd_events, "display container events such as OOM notifications and "
            "statistics", [Flag("--stats", help="display the container's stats then exit"),
                           Flag("--interval", "str", "5s",
                                help="stats collection interval (a duration: 5s, 500ms)")]),
        one("checkpoint", cmd_checkpoint, "checkpoint a running container", [
            *_criu_flags(),
            Flag("--parent-path", "str", help="path for previous criu image files in pre-dump"),
            Flag("--leave-running", help="leave the process running after checkpointing"),
            Flag("--status-fd", "int", -1, help="criu writes \\0 to this FD once lazy-pages "
                 "is ready"),
            Flag("--page-server", "str", help="ADDRESS:PORT of the page server"),
            Flag("--pre-dump", help="dump memory only, leave the container running"),
        ]),
        one("restore", cmd_restore, "restore a container from a previous checkpoint", [
            *_criu_flags(),
            Flag("--console-socket", "str", help="AF_UNIX socket to receive the pty master"),
            Flag("-b,--bundle", "str", ".", help="path to the root of the bundle directory"),
            Flag("-d,--detach", help="detach from the container's process"),
            Flag("--pid-file", "str", help="file to write the process id to"),
            Flag("--no-subreaper", help="do not become the subreaper of the restored process"),
            Flag("--no-pivot", help="accepted like runc (criu restores the mounts itself)"),
            Flag("--lsm-profile", "str", help="LSM profile for the restore (TYPE:NAME)"),
            Flag("--lsm-mount-context", "str", help="LSM mount context for the restore"),
        ]),
        Command("features", cmd_features, "show the enabled features", max_args=0),
        Command("spec", cmd_spec, "create a new specification file",
                [Flag("-b,--bundle", "str", help="path to the root of the bundle directory"),
                 Flag("--rootless", help="generate a configuration for a rootless container")],
                max_args=0),
    ]


def build_parser() -> Parser:
    return Parser("pyrunc", ABOUT, GLOBAL_FLAGS, _commands())


def main(argv: Sequence[str] | None = None, early: EarlyChild | None = None) -> NoReturn:
    """`early`: the child pyrunc.__main__ forked when the command line looked
    like create, run or exec; the command takes it (clicore._early), else
    it is closed here."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, cmd = parser.parse(argv)
    except UsageError as e:
        log.error(str(e))
        code = e.exit_code
    else:
        if args.version:
            sys.stdout.write(_version_text())
            code = 0
        elif cmd is None or args.help:
            sys.stdout.write(parser.usage(cmd if args.help else None))
            code = 0
        else:
            leave(dispatch_with(args, cmd, early))
    if early is not None:
        early.close()
    leave(code)
