"""The part of ctypes that pyrunc/linux uses, defined on _ctypes (ctypes' C
core) the way ctypes/__init__.py defines it.

Why not `import ctypes`: it costs ~1.5-2.5 ms here (about 30 types, the
function-type caches and several foreign functions built at import), and
the children of create and exec import the syscall layer on the critical
path of every container start; this module costs ~0.5 ms. Linux on LP64
(x86_64, aarch64) only, as is the rest of this package.
"""

from __future__ import annotations

import _ctypes
from _ctypes import (
    FUNCFLAG_CDECL,
    FUNCFLAG_PYTHONAPI,
    FUNCFLAG_USE_ERRNO,
    RTLD_LOCAL,
    Structure,
    _SimpleCData,
    addressof,
    byref,
    get_errno,
    sizeof,
)
from _ctypes import CFuncPtr as _CFuncPtr

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["CDLL", "Structure", "addressof", "byref", "c_char", "c_int", "c_int32", "c_long",
           "c_uint", "c_uint32", "c_uint64", "c_ulong", "c_ushort", "c_size_t", "c_void_p",
           "create_string_buffer", "get_errno", "sizeof"]


class c_int(_SimpleCData):
    _type_ = "i"


class c_uint(_SimpleCData):
    _type_ = "I"


class c_long(_SimpleCData):
    _type_ = "l"


class c_ulong(_SimpleCData):
    _type_ = "L"


class c_ushort(_SimpleCData):
    _type_ = "H"


class c_char(_SimpleCData):
    _type_ = "c"


class c_void_p(_SimpleCData):
    _type_ = "P"


# LP64: int is 32 bits, long and size_t 64 (ctypes picks the same classes).
c_int32 = c_int
c_uint32 = c_uint
c_uint64 = c_ulong
c_size_t = c_ulong


def create_string_buffer(init: bytes | int, size: int | None = None) -> Any:
    """A mutable char array (its .raw and .value as in ctypes): of `init`
    bytes (and a NUL if size is not given), or of `init` zero bytes. Any:
    mypy knows the char array's attributes only for ctypes' own c_char."""
    if isinstance(init, int):
        return (c_char * init)()
    buf: Any = (c_char * (len(init) + 1 if size is None else size))()
    buf.value = init
    return buf


class _CFunc(_CFuncPtr):
    _flags_ = FUNCFLAG_CDECL | FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class _PyFunc(_CFuncPtr):  # called holding the GIL, as PyDLL's are
    _flags_ = FUNCFLAG_CDECL | FUNCFLAG_PYTHONAPI | FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class CDLL:
    """The running program's symbols (dlopen(NULL): libc and the interpreter),
    errno saved after every call for get_errno(). hold_gil: call with the
    GIL held (ctypes.PyDLL), for the interpreter's own C API."""

    def __init__(self, hold_gil: bool = False) -> None:
        self._handle = _ctypes.dlopen(None, RTLD_LOCAL)  # type: ignore[arg-type]  # NULL: us
        self._func = _PyFunc if hold_gil else _CFunc

    def __getattr__(self, name: str) -> _CFuncPtr:
        if name.startswith("__"):
            raise AttributeError(name)
        func = self._func((name, self))  # type: ignore[arg-type]  # any object with _handle
        setattr(self, name, func)
        return func
