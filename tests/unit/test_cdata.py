"""pyrunc.linux.cdata against ctypes itself: same sizes, layouts, buffers and
foreign-call behaviour (errno, the GIL-holding variant)."""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any

import pytest

from pyrunc.linux import cdata

PAIRS = [("c_int", ctypes.c_int), ("c_int32", ctypes.c_int32), ("c_uint", ctypes.c_uint),
         ("c_uint32", ctypes.c_uint32), ("c_long", ctypes.c_long), ("c_ulong", ctypes.c_ulong),
         ("c_uint64", ctypes.c_uint64), ("c_size_t", ctypes.c_size_t),
         ("c_ushort", ctypes.c_ushort), ("c_char", ctypes.c_char),
         ("c_void_p", ctypes.c_void_p)]


@pytest.mark.parametrize(("name", "ref"), PAIRS)
def test_types_match_ctypes(name: str, ref: type) -> None:
    ours = getattr(cdata, name)
    assert cdata.sizeof(ours) == ctypes.sizeof(ref)
    assert ctypes.alignment(ours) == ctypes.alignment(ref)
    assert ours._type_ == ref._type_  # type: ignore[attr-defined]


def test_structure_layout_matches_ctypes() -> None:
    fields = [("a", "c_ushort"), ("b", "c_void_p"), ("c", "c_uint32"), ("d", "c_uint64"),
              ("e", "c_int")]

    class Ours(cdata.Structure):
        _fields_ = [(n, getattr(cdata, t)) for n, t in fields]

    class Ref(ctypes.Structure):
        _fields_ = [(n, getattr(ctypes, t)) for n, t in fields]

    assert cdata.sizeof(Ours) == ctypes.sizeof(Ref)
    for n, _ in fields:
        assert getattr(Ours, n).offset == getattr(Ref, n).offset
    s = Ours(1, 2, 3, 4, -5)
    assert bytes(s) == bytes(Ref(1, 2, 3, 4, -5))


@pytest.mark.parametrize("args", [(b"abc",), (b"a\0b", 3), (b"xy", 8), (16,)])
def test_create_string_buffer_matches_ctypes(args: tuple[Any, ...]) -> None:
    ours = cdata.create_string_buffer(*args)
    ref = ctypes.create_string_buffer(*args)
    assert ours.raw == ref.raw
    assert ours.value == ref.value
    assert cdata.sizeof(ours) == ctypes.sizeof(ref)


def test_foreign_calls_and_errno() -> None:
    libc = cdata.CDLL()
    assert libc.getpid() == os.getpid()
    assert libc.close(-1) == -1
    assert cdata.get_errno() == errno.EBADF
    libc.syscall.restype = cdata.c_long
    getpid_nr = {"x86_64": 39, "aarch64": 172}[os.uname().machine]
    assert libc.syscall(cdata.c_long(getpid_nr)) == os.getpid()
    buf = cdata.create_string_buffer(8)
    libc.memset.restype = cdata.c_void_p
    assert libc.memset(cdata.c_void_p(cdata.addressof(buf)), 0x41, 3) == cdata.addressof(buf)
    assert buf.value == b"AAA"


def test_gil_holding_calls_reach_the_interpreter() -> None:
    api = cdata.CDLL(hold_gil=True)
    assert api.Py_IsInitialized() == 1
    with pytest.raises(AttributeError):
        api.no_such_symbol_in_this_process  # noqa: B018
