"""The check registry: every check is a function taking a Ctx, tied to one spec clause."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conformance.harness import Ctx


class Fail(Exception):
    """The runtime did something the spec clause forbids (or failed to do what it requires)."""


class Skip(Exception):
    """The check cannot say anything on this machine (missing kernel feature, tool, ...)."""


CheckFn = Callable[["Ctx"], None]


@dataclass(frozen=True)
class Check:
    name: str
    clause: str  # "config-linux.md#masked-paths": spec file + GitHub heading anchor
    doc: str
    fn: CheckFn


CHECKS: dict[str, Check] = {}


def check(name: str, clause: str) -> Callable[[CheckFn], CheckFn]:
    """Register `fn` as check `name` for `clause`; the docstring says what it expects."""

    def register(fn: CheckFn) -> CheckFn:
        if name in CHECKS:
            raise ValueError(f"duplicate check name {name}")
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        CHECKS[name] = Check(name, clause, doc, fn)
        return fn

    return register


def add(name: str, clause: str, doc: str, fn: CheckFn) -> None:
    """Register a generated (parametrised) check."""
    if name in CHECKS:
        raise ValueError(f"duplicate check name {name}")
    CHECKS[name] = Check(name, clause, doc, fn)


def expect(cond: object, msg: str) -> None:
    if not cond:
        raise Fail(msg)
