"""Builds pyrunc.image's files: `python -m pyrunc.image_build` after each
install (scripts/setup.sh does). Each profile lists the modules a command
imports on every call, its own and its early child's; the modules these
import at their top level come along, each after what it imports
(built-in and extension modules too, by name).

A module left out still works (it imports as usual, ~50 us slower); one
listed that a command does not need costs its execution on every call. A
test checks that the commands import nothing of pyrunc's but from these."""

from __future__ import annotations

import ast
import marshal
import os
import sys

from pyrunc import image

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _cgroup_module() -> str:
    """The cgroup driver create uses here: v2 on a unified host, else v1
    (not both: each costs the other kind of host its execution)."""
    from pyrunc import mountinfo

    top = mountinfo.mount_of("/sys/fs/cgroup", mountinfo.read())
    return "pyrunc.cgroups.v2" if top and top.fstype == "cgroup2" else "pyrunc.cgroups.v1"


_ONE_SHOT = ("pyrunc.clicore", "pyrunc.container", "select")  # select: start's wait
_CREATE = (*_ONE_SHOT, "pyrunc.launch", "pyrunc.spec", "pyrunc.spec._validator",
           "pyrunc.spec.semantics", "pyrunc.sync", "pyrunc.init.plan", "pyrunc.init.lsm",
           "pyrunc.init.sysctl", "pyrunc.cgroups", "pyrunc.cgroups.fs", _cgroup_module())

PROFILES: dict[str, tuple[str, ...]] = {
    # pyrunc.__main__ loads the command's; start, state, kill and delete share one
    "one-shot": _ONE_SHOT,
    "create": _CREATE,
    "run": (*_CREATE, "pyrunc.linux.subreaper"),
    "exec": (*_ONE_SHOT, "pyrunc.execution", "pyrunc.launch", "pyrunc.sync",
             "pyrunc.init.plan", "pyrunc.init.lsm", "pyrunc.cgroups",
             "pyrunc.linux.subreaper"),
    # pyrunc.early's children: create's stage 1 (init's modules), exec's joiner
    "stage1": ("pyrunc.init.main", "pyrunc.init.lsm", "pyrunc.init.process",
               "pyrunc.init.rootfs", "pyrunc.linux.net"),
    "joiner": ("pyrunc.init.exec_child", "pyrunc.init.main", "pyrunc.init.lsm",
               "pyrunc.init.process", "pyrunc.init.sched"),
}


# Not pyrunc's, but imported by nearly every module of it (for annotations),
# and pure Python: an image carries it too.
ALONG = ("__future__",)


def source_of(name: str, package_dir: str) -> tuple[str, bool]:
    """The .py of module `name` (pyrunc's, or one of ALONG), and whether it
    is a package."""
    if name in ALONG:
        import importlib.util

        spec = importlib.util.find_spec(name)
        return (spec.origin if spec and spec.origin else ""), False
    base = os.path.join(os.path.dirname(package_dir), *name.split("."))
    if os.path.isdir(base):
        return os.path.join(base, "__init__.py"), True
    return base + ".py", False


def _ours(name: str) -> bool:
    return name == "pyrunc" or name.startswith("pyrunc.")


def native_origin(name: str) -> str | None:
    """"" for a built-in module, the shared library of an extension module,
    None for any other (Python code, frozen, missing): how an image carries
    the first two, which still cost the import system's search (~0.15 ms
    for _json) or its Python code (~25 us a built-in)."""
    if name in sys.builtin_module_names:
        return ""
    import importlib.machinery
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = spec.origin if spec else None
    if origin and origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        return origin
    return None


def top_level_imports(tree: ast.Module) -> list[str]:
    """The modules a module imports as it runs (not in functions, not for
    the type checkers only): pyrunc's, `from pyrunc.x import y` naming both
    pyrunc.x and, when it is one, the module pyrunc.x.y; and the others by
    their top-level name."""
    out: list[str] = []

    def visit(stmts: list[ast.stmt]) -> None:
        for st in stmts:
            if isinstance(st, ast.Import):
                out.extend(a.name for a in st.names)
            elif isinstance(st, ast.ImportFrom) and st.module and not st.level:
                out.append(st.module)
                if _ours(st.module):
                    out.extend(f"{st.module}.{a.name}" for a in st.names)
            elif isinstance(st, ast.If) and not (
                    isinstance(st.test, ast.Name) and st.test.id == "TYPE_CHECKING"):
                visit(st.body)
                visit(st.orelse)
            elif isinstance(st, ast.Try):
                visit(st.body)

    visit(tree.body)
    return [m for m in out if m != "pyrunc" and (_ours(m) or "." not in m)]


def ordered(entries: tuple[str, ...],
            package_dir: str) -> list[tuple[str, str, bool, str | None]]:
    """`entries` and what they import at their top level, each after its
    imports: (name, source path, is a package, source text); a built-in
    or extension module has no text (and a built-in no path)."""
    done: dict[str, tuple[str, str, bool, str | None]] = {}
    visiting: set[str] = set()

    def add(name: str) -> None:
        if name in done:
            return
        if name in visiting:  # the order would not be the import system's
            raise SystemExit(f"image_build: {name} imports itself through {sorted(visiting)}")
        if not _ours(name) and name not in ALONG:
            native = native_origin(name)
            if native is not None:
                done[name] = (name, native, False, None)
            return  # else Python code outside pyrunc: imported as usual
        src, is_pkg = source_of(name, package_dir)
        if not os.path.isfile(src):
            return  # `from pyrunc.x import name` of a function, not a module
        visiting.add(name)
        with open(src, encoding="utf-8") as f:
            text = f.read()
        for dep in top_level_imports(ast.parse(text, src)):
            add(dep)
        parent = name.rpartition(".")[0]
        if parent not in ("", "pyrunc"):
            add(parent)  # a package runs before its modules
        visiting.discard(name)
        done[name] = (name, src, is_pkg, text)

    for name in entries:
        if _ours(name) and not os.path.isfile(source_of(name, package_dir)[0]) \
                or not _ours(name) and native_origin(name) is None:
            raise SystemExit(f"image_build: {name}: no such module")
        add(name)
    return list(done.values())


# What every command imports before it knows which image it needs (and
# pyrunc.early too, ahead of its fork): the launcher runs them from "boot"
# (~0.25 ms less than importing them).
BOOT = ("pyrunc", "pyrunc.posixfs", "pyrunc.image", "pyrunc.__main__")

# The console script: -I -S, no site (pip's console script runs it and
# imports `re`: ~9 ms a call). Its boot image (after this Python's magic:
# another's marshal data is never read) holds pyrunc.image's own code, which
# it runs in a throwaway namespace to run the image (pyrunc.image.run checks
# it like any other); anything amiss, and the imports go as usual.
LAUNCHER = """#!{python} -IS
# pyrunc launcher, written by pyrunc.image_build (scripts/setup.sh runs it).
import sys
sys.path.insert(0, {site!r})
try:
    import marshal
    with open({boot!r}, "rb") as f:
        data = f.read()
    if data[:{n}] == {magic!r}:
        loader, boot = marshal.loads(data[{n}:])
        namespace = {{"__name__": "pyrunc.image", "__file__": {image!r}}}
        exec(loader, namespace)
        namespace["run"](boot)
except Exception:
    pass
from pyrunc.__main__ import main
main()
"""


def _image(entries: tuple[str, ...], package_dir: str) -> tuple[Any, ...]:
    records = []
    for name, src, is_pkg, text in ordered(entries, package_dir):
        st = os.stat(src) if src else None
        code = None if text is None else compile(text, src, "exec", dont_inherit=True,
                                                 optimize=sys.flags.optimize)
        records.append((name, src, st.st_mtime_ns if st else 0, st.st_size if st else 0,
                        is_pkg, code))
    return (image.FORMAT, image.MAGIC, sys.flags.optimize, records)


def _write(dest: str, data: bytes) -> None:
    tmp = f"{dest}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)  # as the .pyc files: any user may run pyrunc
    os.replace(tmp, dest)


def build(package_dir: str) -> list[str]:
    """Write every profile's image, and the boot image, for the pyrunc
    installed at package_dir; returns their paths."""
    written = []
    os.makedirs(os.path.join(package_dir, "__pycache__"), exist_ok=True)
    for profile, entries in PROFILES.items():
        dest = image.path(profile, package_dir)
        _write(dest, marshal.dumps(_image(entries, package_dir)))
        written.append(dest)
    dest = image.path("boot", package_dir)
    src = os.path.join(package_dir, "image.py")
    with open(src, encoding="utf-8") as f:
        loader = compile(f.read(), src, "exec", dont_inherit=True, optimize=sys.flags.optimize)
    _write(dest, image.MAGIC + marshal.dumps((loader, _image(BOOT, package_dir))))
    written.append(dest)
    return written


def write_launcher(dest: str, python: str, package_dir: str) -> None:
    """The console script at dest, for the pyrunc at package_dir."""
    text = LAUNCHER.format(python=python, site=os.path.dirname(package_dir),
                           boot=image.path("boot", package_dir), n=len(image.MAGIC),
                           magic=image.MAGIC, image=os.path.join(package_dir, "image.py"))
    tmp = f"{dest}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)


def main() -> None:
    """python -m pyrunc.image_build [--launcher PATH]: the images, and the
    console script at PATH (for this Python, as sys.executable names it)."""
    package_dir = os.path.dirname(os.path.abspath(image.__file__))
    for p in build(package_dir):
        print(p)
    if sys.argv[1:2] == ["--launcher"] and len(sys.argv) == 3:
        write_launcher(sys.argv[2], sys.executable, package_dir)
        print(sys.argv[2])
    elif sys.argv[1:]:
        raise SystemExit("usage: python -m pyrunc.image_build [--launcher PATH]")


if __name__ == "__main__":
    main()
