"""The console script (and `python -m pyrunc`). For create, run and exec it
forks the command's early child (pyrunc.early) before anything else is
imported, then hands over to pyrunc.cli. Every command imports this module:
it stays small, and imports nothing but sys."""

import sys

# cli.GLOBAL_FLAGS that take a value (a unit test keeps the two in step).
_VALUE_FLAGS = ("--root", "--log", "--log-format", "--rootless", "--criu")
_KINDS = {"create": "create", "run": "create", "exec": "exec"}


def kind_of(argv: list[str]) -> str | None:
    """The early child `argv` calls for, found as pyrunc.cliparse finds the
    command (after the global flags). A wrong guess costs a fork, or the
    head start; pyrunc.cli decides."""
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
    return _KINDS.get(argv[i]) if i < len(argv) else None


def main() -> None:
    kind = kind_of(sys.argv[1:])
    early = None
    if kind is not None:
        from pyrunc.early import EarlyChild

        try:
            early = EarlyChild(kind)
        except OSError:
            pass  # the command forks again, and reports a failure
    from pyrunc.cli import main as cli_main

    cli_main(early=early)


if __name__ == "__main__":
    main()
