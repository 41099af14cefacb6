"""Pure parts of update: runc's flag values to an OCI linux.resources object."""

from __future__ import annotations

import pytest

from pyrunc.cgroup_cmds import parse_interval, ram_in_bytes, resources_from_flags
from pyrunc.errors import UsageError


@pytest.mark.parametrize("text,value", [("1024", 1024), ("64m", 64 << 20), ("1g", 1 << 30),
                                        ("1.5k", 1536), ("-1", -1), ("2MB", 2 << 20)])
def test_ram_in_bytes(text: str, value: int) -> None:
    assert ram_in_bytes(text, "--memory") == value


@pytest.mark.parametrize("text", ["abc", "12q", "-5"])
def test_ram_in_bytes_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--memory"):
        ram_in_bytes(text, "--memory")


def test_resources_from_flags() -> None:
    res = resources_from_flags({"memory": "32m", "memory-swap": "64m", "cpu-quota": "50000",
                                "cpu-period": "100000", "cpuset-cpus": "0", "pids-limit": "20",
                                "cpu-share": None})
    assert res == {"memory": {"limit": 32 << 20, "swap": 64 << 20},
                   "cpu": {"quota": 50000, "period": 100000, "cpus": "0"},
                   "pids": {"limit": 20}}
    with pytest.raises(UsageError, match="--pids-limit"):
        resources_from_flags({"pids-limit": "many"})


@pytest.mark.parametrize("text,seconds", [("5s", 5.0), ("500ms", 0.5), ("1m30s", 90.0),
                                          ("2", 2.0), ("0.25", 0.25), ("1h", 3600.0)])
def test_parse_interval(text: str, seconds: float) -> None:
    assert parse_interval(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "s", "0s", "-1", "5s3"])
def test_parse_interval_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="interval"):
        parse_interval(text)
