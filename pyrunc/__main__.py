"""The console script (and `python -m pyrunc`). The commands on every
container's path run from pyrunc.clicore, the rest from pyrunc.cli; for
create, run and exec it first forks the command's early child
(pyrunc.early), before anything else is imported. Every command imports
this module: it stays small, and imports nothing but sys (and
pyrunc.image, which preloads the command's modules)."""

import sys

# clicore.GLOBAL_FLAGS that take a value (a unit test keeps the two in step).
_VALUE_FLAGS = ("--root", "--log", "--log-format", "--rootless", "--criu")
_KINDS = {"create": "create", "run": "create", "exec": "exec"}
_CORE = ("create", "run", "start", "state", "kill", "delete", "exec")  # clicore.COMMANDS
_IMAGES = {"create": "create", "run": "run", "exec": "exec"}  # pyrunc.image; else one-shot


def command_of(argv: list[str]) -> str | None:
    """The command word of `argv`, found as pyrunc.cliparse finds it (after
    the global flags). A wrong guess costs a fork, or the head start, or a
    detour through pyrunc.clicore: the parser decides."""
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            i += 1
            break
        if not tok.startswith("-") or tok == "-":
            break
        name, eq, _ = tok.partition("=")
        if not name.startswith("--"):
            name = "-" + name  # -root, like --root
        i += 2 if name in _VALUE_FLAGS and not eq else 1
    return argv[i] if i < len(argv) else None


def kind_of(argv: list[str]) -> str | None:
    """The early child `argv` calls for."""
    return _KINDS.get(command_of(argv) or "")


def main() -> None:
    argv = sys.argv[1:]
    command = command_of(argv)
    kind = _KINDS.get(command or "")
    early = None
    if kind is not None:
        from pyrunc.early import EarlyChild

        try:
            early = EarlyChild(kind)
        except OSError:
            pass  # the command forks again, and reports a failure
    if command in _CORE:
        from pyrunc import image

        image.load(_IMAGES.get(command or "", "one-shot"))
        from pyrunc.clicore import main as core_main

        core_main(argv, command, early)
    from pyrunc.cli import main as cli_main

    cli_main(argv, early)


if __name__ == "__main__":
    main()
