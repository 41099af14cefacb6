"""A small command-line parser with runc's (urfave/cli, Go flag) rules.

argparse drags in re, enum, gettext and shutil: ~15 ms on every call, more
than the rest of `pyrunc state`. runc's surface is fixed and small, so this
parses it directly: global flags, one command, its flags until the first
positional (Go's rule, which also lets `exec ID cmd -l` pass `-l` on), long
flags with one or two dashes, `--flag=value`, `--` to end flags.
"""

from __future__ import annotations

import sys

from pyrunc.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Flag:
    """kind: "bool", "str", "int", "list" (repeatable str) or "intlist"."""

    def __init__(self, names: str, kind: str = "bool", default: Any = None,
                 choices: tuple[str, ...] = (), help: str = "", metavar: str = "") -> None:
        self.names = names.split(",")
        self.dest = max(self.names, key=len).lstrip("-").replace("-", "_")
        self.kind = kind
        if default is None:
            default = {"bool": False, "list": [], "intlist": []}.get(kind)
        self.default = default
        self.choices = choices
        self.help = help
        self.metavar = metavar or ("value" if kind != "bool" else "")


class Command:
    def __init__(self, name: str, handler: Callable[[Namespace], int], help: str,
                 flags: list[Flag] | None = None, args: str = "", min_args: int = 0,
                 max_args: int | None = None, rest: str = "") -> None:
        self.name = name
        self.handler = handler
        self.help = help
        self.flags = flags or []
        self.args = args          # usage text for positionals, e.g. "<container-id>"
        self.min_args = min_args
        self.max_args = max_args  # None: unlimited
        self.rest = rest          # dest for everything after the positionals (exec)


if TYPE_CHECKING:
    from types import SimpleNamespace as _SimpleNamespace
else:  # without importing `types` (~0.2 ms on every call): `types` takes it from here too
    _SimpleNamespace = type(sys.implementation)


class Namespace(_SimpleNamespace):
    """The parsed flags, as attributes named after the long flag."""


def _lookup(flags: list[Flag], token: str) -> tuple[Flag | None, str | None]:
    name, eq, value = token.partition("=")
    if not name.startswith("--") and len(name) > 2:
        name = "-" + name  # Go accepts -root as well as --root
    for f in flags:
        if name in f.names or (name.startswith("--") and name[1:] in f.names):
            return f, (value if eq else None)
    return None, None


def _set(ns: Namespace, f: Flag, raw: str | None, argv: list[str], i: int) -> int:
    if f.kind == "bool":
        if raw is not None and raw not in ("true", "false"):
            raise UsageError(f'invalid boolean value "{raw}" for flag {f.names[-1]}')
        setattr(ns, f.dest, raw != "false")
        return i
    if raw is None:
        if i >= len(argv):
            raise UsageError(f"flag needs an argument: {f.names[-1]}")
        raw = argv[i]
        i += 1
    value: Any = raw
    if f.kind in ("int", "intlist"):
        try:
            value = int(raw)
        except ValueError:
            raise UsageError(f'invalid value "{raw}" for flag {f.names[-1]}: parse error') \
                from None
    if f.choices and value not in f.choices:
        raise UsageError(f"{f.names[-1]}: invalid value {raw!r} (choose from "
                         f"{', '.join(f.choices)})")
    if f.kind in ("list", "intlist"):
        getattr(ns, f.dest).append(value)
    else:
        setattr(ns, f.dest, value)
    return i


class Parser:
    def __init__(self, prog: str, about: str, global_flags: list[Flag],
                 commands: list[Command]) -> None:
        self.prog = prog
        self.about = about
        self.global_flags = [*global_flags, Flag("-h,--help", help="show help")]
        self.commands = {c.name: c for c in commands}

    def parse(self, argv: list[str]) -> tuple[Namespace, Command | None]:
        ns = Namespace()
        for f in self.global_flags:
            setattr(ns, f.dest, list(f.default) if isinstance(f.default, list) else f.default)
        i = self._flags(ns, self.global_flags, argv, 0, None)
        if i >= len(argv):
            return ns, None
        name = argv[i]
        cmd = self.commands.get(name)
        if cmd is None:
            raise UsageError(f"No help topic for '{name}'", exit_code=3)
        flags = [*cmd.flags, Flag("-h,--help")]
        for f in flags:
            setattr(ns, f.dest, list(f.default) if isinstance(f.default, list) else f.default)
        i = self._flags(ns, flags, argv, i + 1, cmd)
        if ns.help:
            return ns, cmd
        positional = argv[i:]
        if cmd.rest:
            n = min(len(positional), cmd.max_args or len(positional))
            setattr(ns, cmd.rest, positional[n:])
            positional = positional[:n]
        if len(positional) < cmd.min_args or (cmd.max_args is not None
                                              and len(positional) > cmd.max_args):
            if cmd.min_args == cmd.max_args and not cmd.rest:  # rest takes any extra
                need = f"exactly {cmd.min_args}"
            elif len(positional) < cmd.min_args:
                need = f"a minimum of {cmd.min_args}"
            else:
                need = f"a maximum of {cmd.max_args}"
            raise UsageError(f'{self.prog}: "{name}" requires {need} argument(s)')
        ns.positional = positional
        return ns, cmd

    def _flags(self, ns: Namespace, flags: list[Flag], argv: list[str], i: int,
               cmd: Command | None) -> int:
        while i < len(argv):
            tok = argv[i]
            if tok == "--":
                return i + 1
            if not tok.startswith("-") or tok == "-":
                return i
            f, raw = _lookup(flags, tok)
            if f is None:
                raise UsageError(f"flag provided but not defined: {tok.partition('=')[0]}")
            i = _set(ns, f, raw, argv, i + 1)
        return i

    def usage(self, cmd: Command | None = None) -> str:
        def flag_lines(flags: list[Flag]) -> list[str]:
            out = []
            for f in flags:
                names = ", ".join(sorted(f.names, key=len, reverse=True))
                left = f"   {names}" + (f" {f.metavar}" if f.metavar else "")
                out.append(f"{left:<34} {f.help}")
            return out
        if cmd is None:
            lines = [f"NAME:\n   {self.prog} - {self.about}", "",
                     f"USAGE:\n   {self.prog} [global options] command [command options] "
                     "[arguments...]", "", "COMMANDS:"]
            lines += [f"   {c.name:<11} {c.help}" for c in self.commands.values()]
            lines += ["", "GLOBAL OPTIONS:", *flag_lines(self.global_flags)]
        else:
            lines = [f"NAME:\n   {self.prog} {cmd.name} - {cmd.help}", "",
                     f"USAGE:\n   {self.prog} {cmd.name} [command options] {cmd.args}".rstrip(),
                     "", "OPTIONS:", *flag_lines([*cmd.flags, Flag("-h,--help",
                                                                    help="show help")])]
        return "\n".join(lines) + "\n"
