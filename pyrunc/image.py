"""Preloaded modules: the modules a command always imports, compiled at
install time into one file per command (pyrunc.image_build, which
scripts/setup.sh runs) and executed here in one go. Importing them one by
one costs ~50 us each over this (finding the file, stat calls, reading and
checking its .pyc, the import system's own Python code): ~1 ms of create's
critical path, ~0.3 ms of a start or a delete.

The built-in and extension modules these import come along by name (and
shared library): made here as the import system makes them, without its
search of sys.path (~0.15 ms for _json, ~25 us a built-in).

Like a .pyc, an image is used only while it matches: written by this
Python (its bytecode magic) and every file as it was then (mtime, size).
At the first module that changed, loading stops, and that module and the
rest import as usual, as everything does without an image. Only built-in
modules here: this runs before anything else."""

import _frozen_importlib  # always loaded (frozen), as the next
import _frozen_importlib_external
import marshal
import posix
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FORMAT = 2
TAG = sys.implementation.cache_tag
MAGIC = _frozen_importlib_external.MAGIC_NUMBER
_DIR = __file__.rpartition("/")[0]


def path(profile: str, package_dir: str = _DIR) -> str:
    return f"{package_dir}/__pycache__/{profile}.{TAG}.image"


def load(profile: str) -> None:
    """Execute the modules of `profile`'s image not imported yet, in order
    (run); silently nothing, and the usual imports follow, where it is
    missing."""
    try:
        fd = posix.open(path(profile), posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return
    try:  # one read of its size: no chunks to join (~40 us for create's)
        image = marshal.loads(posix.read(fd, posix.fstat(fd).st_size))
    except (OSError, ValueError, EOFError, TypeError):  # a short read is cut data too
        return
    finally:
        posix.close(fd)
    run(image)


def run(image: "Any") -> None:
    """load's, and the launcher's (for pyrunc, pyrunc.image and
    pyrunc.__main__: see pyrunc.image_build.LAUNCHER): silently nothing
    where the image is not this Python's or out of date, or PYRUNC_NO_IMAGES
    is set (to rule the images out, and what the tests run pyrunc without
    them with)."""
    if b"PYRUNC_NO_IMAGES" in posix.environ:
        return
    try:
        fmt, magic, optimize, entries = image
    except (TypeError, ValueError):
        return
    if (fmt, magic, optimize) != (FORMAT, MAGIC, sys.flags.optimize):
        return
    modules = sys.modules
    for name, source, mtime_ns, size, is_package, code in entries:
        if name in modules:
            continue
        parent, _, child = name.rpartition(".")
        if source:  # "": a built-in module
            try:
                st = posix.stat(source)
            except OSError:
                return
            if st.st_mtime_ns != mtime_ns or st.st_size != size:
                return
        if parent and parent not in modules:
            return
        if code is None:
            try:
                _native(name, source)
            except Exception:  # noqa: BLE001 - as below
                return
            continue
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


def _native(name: str, library: str) -> None:
    """A built-in module, or the extension module in `library`, made as the
    import system makes it once found: without its search of sys.path."""
    loader: Any = (_frozen_importlib_external.ExtensionFileLoader(name, library) if library
                   else _frozen_importlib.BuiltinImporter)
    spec = _frozen_importlib.ModuleSpec(name, loader, origin=library or "built-in")
    spec.has_location = bool(library)  # __file__, as an extension module has
    module = _frozen_importlib.module_from_spec(spec)
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
