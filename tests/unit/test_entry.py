"""The console script's pre-scan of the command line (pyrunc.__main__) and
the os.path stand-ins of the one-shot commands (pyrunc.posixfs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyrunc import __main__ as entry
from pyrunc import cli, clicore, posixfs
from pyrunc.errors import UsageError


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
    """The pre-scan skips exactly the values of the global flags, and knows
    which commands clicore runs."""
    takes_value = {max(f.names, key=len) for f in clicore.GLOBAL_FLAGS if f.kind != "bool"}
    assert set(entry._VALUE_FLAGS) == takes_value
    assert set(entry._CORE) == set(clicore.COMMANDS)
    assert cli.GLOBAL_FLAGS is clicore.GLOBAL_FLAGS


@pytest.mark.parametrize("argv", [
    ["create", "x"], ["--root", "r", "create", "-b=/b", "--pid-file", "p", "x"],
    ["run", "-d", "--keep", "--no-pivot", "x"], ["run", "--preserve-fds", "two", "x"],
    ["exec", "-e", "A=1", "-t", "--cwd", "/", "x", "ls", "-l"], ["exec", "x"],
    ["exec", "--bogus", "x", "ls"], ["create", "-b"], ["create", "x", "y"],
    ["state", "x"], ["--root", "/r", "start", "x"], ["--root=/r", "-log", "l", "kill", "x"],
    ["--log-format", "json", "--debug", "kill", "-a", "x", "9"], ["-debug=false", "state", "x"],
    ["delete", "-f", "x"], ["delete", "--force=true", "x"], ["--systemd-cgroup", "delete", "x"],
    ["--rootless", "true", "--criu", "c", "state", "x"], ["kill", "--", "x", "-9"],
    ["start"], ["start", "a", "b"], ["kill", "a", "b", "c"], ["state", "--bogus", "x"],
    ["--log-format", "xml", "state", "x"], ["delete", "-f"], ["kill", "-a"],
])
def test_clicore_parses_its_commands_as_cli_does(argv: list[str]) -> None:
    """The same commands under the same parser: the same result, or the
    same usage error."""
    name = entry.command_of(argv)
    assert name in clicore.COMMANDS
    full = cli.build_parser()
    core = clicore.Parser("pyrunc", clicore.ABOUT, clicore.GLOBAL_FLAGS,
                          [clicore.COMMANDS[name]()])
    results = []
    for parser in (full, core):
        try:
            ns, cmd = parser.parse(argv)
            results.append((vars(ns), cmd and cmd.name))
        except UsageError as e:
            results.append((str(e), e.exit_code))
    assert results[0] == results[1]


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


_REPO = Path(__file__).resolve().parents[2]


def _os_modules_after(code: str, *args: str, also: tuple[str, ...] = ()) -> list[str]:
    """Run `code` in a fresh `python -I -S` with sys.argv[1:] put first on
    sys.path (the source tree, then args); what of os (and `also`) it left
    imported."""
    import subprocess
    import sys

    watch = ("os", "posixpath", "_collections_abc", *also)
    code = ("import sys; sys.path[:0] = sys.argv[1:]\n" + code
            + f"print(' '.join(m for m in {watch!r} if m in sys.modules))\n")
    return subprocess.run([sys.executable, "-I", "-S", "-c", code, str(_REPO), *args],
                          capture_output=True, text=True, check=True).stdout.split()


def test_create_parent_path_stays_off_os(tmp_path: Path) -> None:
    """What create's parent imports, up to sending the plan, does without os
    (stage 1 waits for that plan; pyrunc.posixfs says why)."""
    root = tmp_path / "root"
    assert _os_modules_after(
        "import pyrunc.__main__, pyrunc.early, pyrunc.clicore, pyrunc.launch\n"
        "from pyrunc import cgroups, spec, sync\n"
        "from pyrunc.cgroups import fs, v1  # Manager.set\n"
        "from pyrunc.init import lsm, plan, sysctl\n"
        "from pyrunc.linux import seccomp\n"
        f"cfg = spec.load_config({str(_REPO / 'bundles' / 'busybox')!r})\n"
        "seccomp.compile_filter({'defaultAction': 'SCMP_ACT_ERRNO', 'syscalls': [\n"
        "    {'names': ['read'], 'action': 'SCMP_ACT_ALLOW'}]})\n"
        "cgroups.open_manager(None, 'x')\n"
        f"from pyrunc.state import Root; Root({str(root)!r}).make('c').remove()\n") == []


def test_init_side_stays_off_os() -> None:
    """What stage 1 imports for init (and exec's joiner) does without os
    too (~2 ms of stage 1, which create waits for), and without _json, a
    shared library (pyrunc.sync marshals)."""
    import _prctl  # python-prctl's C part, found without site (-S)

    assert _os_modules_after(
        "import pyrunc.early\n"
        "from pyrunc.init import main, exec_child\n"
        "main._preload_common()\n", str(Path(_prctl.__file__).parent),
        also=("_json", "pyrunc.fastjson")) == []


@pytest.mark.parametrize("path", ["", "a", "/", "//", "/a", "/a/", "a/b", "/a/b/", "//a//b//",
                                  "a//", "/a/b/c.d"])
def test_name_splits_are_os_paths(path: str) -> None:
    assert (posixfs.basename(path), posixfs.dirname(path)) == \
        (os.path.basename(path), os.path.dirname(path))


@pytest.mark.parametrize(("path", "start"), [
    ("/a/b/c", "/a"), ("/a", "/a/b/c"), ("/a/b", "/a/b"), ("/x/y", "/a/b"), ("/", "/a"),
    ("/a/b/", "/"), ("/a/./b/../c", "/a/c/d"),
])
def test_relpath_is_os_paths(path: str, start: str) -> None:
    assert posixfs.relpath(path, start) == os.path.relpath(path, start)


def test_fsencode_is_os_fsencode() -> None:
    for name in ("plain", "caf\u00e9", "bad\udcff", b"raw\xff"):
        assert posixfs.fsencode(name) == os.fsencode(name)


def test_makedirs_is_os_makedirs(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    posixfs.makedirs(str(target) + "/", 0o711)
    assert target.is_dir() and (target.stat().st_mode & 0o777) == 0o711
    posixfs.makedirs(str(target), 0o711)  # exists: fine
    (tmp_path / "f").write_text("")
    with pytest.raises(FileExistsError):
        posixfs.makedirs(str(tmp_path / "f"))
    with pytest.raises(NotADirectoryError):
        posixfs.makedirs(str(tmp_path / "f" / "x"))
