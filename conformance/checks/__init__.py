"""Check modules; importing them registers their checks in registry.CHECKS."""

import importlib

MODULES = ("lifecycle", "hooks", "process", "mounts", "linux", "cgroups", "features")


def load() -> None:
    for name in MODULES:
        importlib.import_module(f"conformance.checks.{name}")
