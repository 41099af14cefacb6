"""The few os.path checks the one-shot commands need, on posix alone.

`state`, `start`, `kill` and `delete` each start a fresh interpreter, and
`import os` costs ~1 ms of it (os imports _collections_abc): a tenth of such
a command. So the modules they load (cli, log, state, container and
cgroups) use posix, the C module os wraps, and these helpers instead of
os.path. The create and exec paths import os freely."""

import posix

_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IFREG = 0o100000


def _mode(path: str) -> int:
    try:
        return posix.stat(path).st_mode & _S_IFMT
    except (OSError, ValueError):  # what os.path.exists also treats as "no"
        return 0


def exists(path: str) -> bool:
    return _mode(path) != 0


def isdir(path: str) -> bool:
    return _mode(path) == _S_IFDIR


def isfile(path: str) -> bool:
    return _mode(path) == _S_IFREG


def abspath(path: str) -> str:
    """os.path.abspath: absolute and normalised (no ".", "..", "//")."""
    if not path.startswith("/"):
        path = f"{posix.getcwd()}/{path}"
    parts: list[str] = []
    for p in path.split("/"):
        if p == "..":
            if parts:
                parts.pop()
        elif p and p != ".":
            parts.append(p)
    return "/" + "/".join(parts)
