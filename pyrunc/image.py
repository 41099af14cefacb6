"""Preloaded modules: the modules a command always imports, compiled at
install time into one file per command (pyrunc.image_build, which
scripts/setup.sh runs) and executed here in one go. Importing them one by
one costs ~50 us each over this (finding the file, stat calls, reading and
checking its .pyc, the import system's own Python code): ~1 ms of create's
critical path, ~0.3 ms of a start or a delete.

Like a .pyc, an image is used only while it matches: written by this
Python (its bytecode magic) and every source as it was then (mtime, size).
At the first module that changed, loading stops, and that module and the
rest import as usual, as everything does without an image. Only built-in
modules here: this runs before anything else."""

import _frozen_importlib_external  # always loaded (frozen)
import marshal
import posix
import sys

FORMAT = 1
TAG = sys.implementation.cache_tag
MAGIC = _frozen_importlib_external.MAGIC_NUMBER
_DIR = __file__.rpartition("/")[0]


def path(profile: str, package_dir: str = _DIR) -> str:
    return f"{package_dir}/__pycache__/{profile}.{TAG}.image"


def load(profile: str) -> None:
    """Execute the modules of `profile`'s image not imported yet, in order;
    silently nothing (the usual imports follow) where it is missing, not
    this Python's or out of date, or PYRUNC_NO_IMAGES is set (to rule the
    images out, and what the tests run pyrunc without them with)."""
    if b"PYRUNC_NO_IMAGES" in posix.environ:
        return
    try:
        fd = posix.open(path(profile), posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return
    try:
        chunks = []
        while chunk := posix.read(fd, 1 << 20):
            chunks.append(chunk)
        fmt, magic, optimize, entries = marshal.loads(b"".join(chunks))
    except (OSError, ValueError, EOFError, TypeError):
        return
    finally:
        posix.close(fd)
    if (fmt, magic, optimize) != (FORMAT, MAGIC, sys.flags.optimize):
        return
    modules = sys.modules
    for name, source, mtime_ns, size, is_package, code in entries:
        if name in modules:
            continue
        try:
            st = posix.stat(source)
        except OSError:
            return
        parent, _, child = name.rpartition(".")
        if st.st_mtime_ns != mtime_ns or st.st_size != size or parent and parent not in modules:
            return
        module = type(sys)(name)
        module.__file__ = source
        if is_package:
            module.__path__ = [source.rpartition("/")[0]]
            module.__package__ = name
        else:
            module.__package__ = parent
        modules[name] = module
        try:
            exec(code, module.__dict__)
        except Exception:  # noqa: BLE001 - the usual import reports it, where it is used
            del modules[name]
            return
        if parent:
            setattr(modules[parent], child, module)
