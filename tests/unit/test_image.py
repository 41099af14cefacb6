"""pyrunc.image_build and pyrunc.image on a copy of the package: what an
image holds and in which order, and that a stale, foreign or broken image
is never used (the imports then go as usual)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pyrunc
from pyrunc import image, image_build


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    dest = tmp_path / "site" / "pyrunc"
    shutil.copytree(Path(pyrunc.__file__).parent, dest,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _load(pkg: Path, profile: str = "one-shot",
          env: dict[str, str] | None = None) -> dict[str, bool]:
    """In a fresh interpreter: image.load(profile) from pkg; the pyrunc
    modules (and __future__) then imported, each True when it came from the
    image."""
    code = (f"import sys; sys.path.insert(0, {str(pkg.parent)!r})\n"
            f"from pyrunc import image; image.load({profile!r})\n"
            "import json; print(json.dumps({n: m.__spec__ is None for n, m in "
            "sys.modules.items() if n.startswith('pyrunc.') and n != 'pyrunc.image' "
            "or n == '__future__'}))")
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                       text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert not p.stderr
    return json.loads(p.stdout)


def _order(profile: str, pkg: Path) -> list[str]:
    """The Python modules of a profile's image, in order (as _load reports them)."""
    return [name for name, _, _, text in image_build.ordered(image_build.PROFILES[profile],
                                                             str(pkg)) if text is not None]


def test_every_profile_runs_each_module_after_its_imports(pkg: Path) -> None:
    for profile, entries in image_build.PROFILES.items():
        records = image_build.ordered(entries, str(pkg))
        names = [name for name, *_ in records]
        assert set(entries) <= set(names), profile
        for i, (name, _src, _, text) in enumerate(records):
            if text is None:  # built-in or extension: imports nothing of ours
                assert not name.startswith("pyrunc"), name
                continue
            deps = [d for d in image_build.top_level_imports(ast.parse(text)) if d in names]
            assert all(names.index(d) < i for d in deps), (profile, name, deps)
            parent = name.rpartition(".")[0]
            assert parent in ("", "pyrunc") or names.index(parent) < i, (profile, name)


def test_a_built_image_loads_every_module_of_its_profile(pkg: Path) -> None:
    assert _load(pkg) == {}  # nothing built yet: nothing preloaded
    written = image_build.build(str(pkg))
    assert sorted(written) == sorted(image.path(p, str(pkg))
                                     for p in [*image_build.PROFILES, "boot"])
    assert all(os.stat(w).st_mode & 0o777 == 0o644 for w in written)
    assert _load(pkg) == {name: True for name in _order("one-shot", pkg)}


def test_built_in_and_extension_modules_come_along_by_name(pkg: Path) -> None:
    """_json (a shared library) and fcntl (built in): made without the
    search of sys.path, and working."""
    image_build.build(str(pkg))
    code = (f"import sys; sys.path.insert(0, {str(pkg.parent)!r})\n"
            "from pyrunc import image; image.load('one-shot')\n"
            "from pyrunc import fastjson\n"
            "import _json, fcntl\n"
            "print(_json.__file__, _json.__spec__.loader.__class__.__name__, fcntl.__spec__.origin,"
            " fastjson.loads('{\"a\": [1, true]}'))")
    p = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", "-c", code],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    lib, loader, origin, parsed = p.stdout.split(" ", 3)
    assert lib == image_build.native_origin("_json") and lib.endswith(".so")
    assert (loader, origin, parsed.strip()) == ("ExtensionFileLoader", "built-in",
                                                "{'a': [1, True]}")
    imported = {line.split("|")[2].strip() for line in p.stderr.splitlines() if "|" in line}
    assert not {"_json", "fcntl", "pyrunc.state"} & imported  # none went through the search


def test_a_changed_module_and_what_follows_it_import_as_usual(pkg: Path) -> None:
    image_build.build(str(pkg))
    names = _order("one-shot", pkg)
    changed = names.index("pyrunc.state")
    st = os.stat(pkg / "state.py")
    os.utime(pkg / "state.py", ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert _load(pkg) == {name: True for name in names[:changed]}


def test_foreign_broken_or_disabled_images_are_not_used(pkg: Path) -> None:
    image_build.build(str(pkg))
    path = Path(image.path("one-shot", str(pkg)))
    assert _load(pkg, env={**os.environ, "PYRUNC_NO_IMAGES": "1"}) == {}
    good = path.read_bytes()
    path.write_bytes(good[:len(good) // 2])  # cut short
    assert _load(pkg) == {}
    path.write_bytes(b"\x00garbage")
    assert _load(pkg) == {}
    import marshal

    fmt, _magic, optimize, records = marshal.loads(good)
    path.write_bytes(marshal.dumps((fmt, b"\x00\x00\r\n", optimize, records)))  # another Python
    assert _load(pkg) == {}


def test_a_module_that_fails_to_run_stops_the_load_quietly(pkg: Path) -> None:
    """The usual import then raises it, where the command imports it."""
    names = _order("one-shot", pkg)
    broken = names.index("pyrunc.posixfs")
    (pkg / "posixfs.py").write_text("raise RuntimeError('broken')\n")
    image_build.build(str(pkg))
    assert _load(pkg) == {name: True for name in names[:broken]}


def test_an_import_cycle_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "pyrunc"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "a.py").write_text("from pyrunc import b\n")
    (fake / "b.py").write_text("import pyrunc.a\n")
    with pytest.raises(SystemExit, match="imports itself"):
        image_build.ordered(("pyrunc.a",), str(fake))
    with pytest.raises(SystemExit, match="no such module"):
        image_build.ordered(("pyrunc.c",), str(fake))


def _launch(launcher: Path, root: Path) -> tuple[str, set[str]]:
    """`state` of a missing container through the launcher: its error line,
    and the pyrunc modules the import system loaded (-X importtime)."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-I", "-S", str(launcher),
                        "--root", str(root), "state", "nope"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1, p.stderr
    mods = {line.split("|")[2].strip() for line in p.stderr.splitlines() if "|" in line}
    return p.stderr.splitlines()[-1], {m for m in mods if m.split(".")[0] == "pyrunc"}


def test_the_launcher_boots_from_its_image_and_without(pkg: Path, tmp_path: Path) -> None:
    """pyrunc, pyrunc.image and pyrunc.__main__ from the boot image, then the
    one-shot image: nothing of pyrunc's through the import system. Stale or
    broken, the imports go as usual, with the same result."""
    image_build.build(str(pkg))
    launcher = tmp_path / "pyrunc"
    image_build.write_launcher(str(launcher), sys.executable, str(pkg))
    assert os.access(launcher, os.X_OK)
    line, mods = _launch(launcher, tmp_path / "root")
    assert "container does not exist" in line and mods == set()
    main = pkg / "__main__.py"
    st = main.stat()
    os.utime(main, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    line, mods = _launch(launcher, tmp_path / "root")
    assert "container does not exist" in line and "pyrunc.__main__" in mods
    Path(image.path("boot", str(pkg))).write_bytes(b"\x00garbage")
    line, mods = _launch(launcher, tmp_path / "root")
    assert "container does not exist" in line and {"pyrunc", "pyrunc.image"} <= mods
