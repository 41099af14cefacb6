"""The console script's pre-scan of the command line (pyrunc.__main__) and
the os.path stand-ins of the one-shot commands (pyrunc.posixfs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyrunc import __main__ as entry
from pyrunc import cli, posixfs


@pytest.mark.parametrize(("argv", "kind"), [
    (["create", "-b", "b", "x"], "create"),
    (["run", "x"], "create"),
    (["exec", "x", "true"], "exec"),
    (["--root", "/r", "create", "x"], "create"),
    (["--root=/r", "--debug", "exec", "x", "ls"], "exec"),
    (["-root", "/r", "--log-format", "json", "run", "x"], "create"),
    (["--log", "exec", "state", "x"], None),  # "exec" is the log file's name
    (["--criu", "run", "--rootless", "true", "list"], None),
    (["--systemd-cgroup", "run", "x"], "create"),  # a bool flag takes no value
    (["--", "create", "x"], "create"),
    (["state", "create"], None),
    (["delete", "x"], None),
    (["--root", "/r"], None),
    ([], None),
    (["-"], None),
])
def test_kind_of_finds_the_command_as_the_parser_does(argv: list[str], kind: str | None) -> None:
    assert entry.kind_of(argv) == kind


def test_value_flags_are_clis() -> None:
    """The pre-scan skips exactly the values of cli's global flags."""
    takes_value = {max(f.names, key=len) for f in cli.GLOBAL_FLAGS if f.kind != "bool"}
    assert set(entry._VALUE_FLAGS) == takes_value


@pytest.mark.parametrize("path", [
    "a", "a/b/../c", "./a//b/", "/", "//x/./y/..", "/a/../../b", "..", "../..", "a/./.",
])
def test_abspath_is_os_paths(path: str) -> None:
    assert posixfs.abspath(path) == os.path.abspath(path).replace("//", "/")


def test_kind_checks_are_os_paths(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to("d")
    (tmp_path / "dangling").symlink_to("nowhere")
    for name in ("f", "d", "l", "dangling", "missing", "f/below"):
        p = str(tmp_path / name)
        assert (posixfs.exists(p), posixfs.isdir(p), posixfs.isfile(p)) == \
            (os.path.exists(p), os.path.isdir(p), os.path.isfile(p)), name
    assert not posixfs.exists("bad\0path")  # ValueError, as os.path.exists
