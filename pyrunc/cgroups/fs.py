"""Reading and writing cgroup control files (v1 and v2 alike).

Writes never create a file (no O_CREAT, like runc's WriteFile): a missing
control file means a missing controller, and must fail rather than leave a
plain file behind in a fake or real cgroup directory."""

from __future__ import annotations

import errno
import posix  # not os: see pyrunc.posixfs

from pyrunc.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_U64 = (1 << 64) - 1


def write_raw(d: str, name: str, value: str) -> None:
    """One write(2) of value to d/name; OSError as the kernel returns it."""
    fd = posix.open(f"{d}/{name}", posix.O_WRONLY | posix.O_TRUNC | posix.O_CLOEXEC)
    try:
        posix.write(fd, value.encode())
    finally:
        posix.close(fd)


def write(d: str, name: str, value: Any, field: str, rootless: bool = False) -> None:
    """write_raw with the error named after the config field it came from."""
    try:
        write_raw(d, name, str(value))
    except OSError as e:
        _failed(e, name, value, field, rootless)


def _failed(e: OSError, name: str, value: Any, field: str, rootless: bool) -> None:
    """A failed write as the user's error, naming its config field (or
    nothing, where rootless may do without the cgroup)."""
    if rootless and e.errno in (errno.EACCES, errno.EPERM):
        return  # rootless without a delegated cgroup: like runc, go on
    why = e.strerror
    if e.errno == errno.ENOENT:
        why = "no such control file (not offered by this kernel or controller)"
    raise PyruncError(f"linux.resources.{field}: cannot write {str(value)!r} "
                      f"to {name}: {why}") from None


class Batch:
    """write() for a run of values to a few files of one directory, each file
    opened once: the kernel takes each write(2) as one value (a v1 devices
    rule), and ~13 rules per create made ~13 opens. A context manager."""

    def __init__(self, d: str, rootless: bool = False) -> None:
        self.d = d
        self.rootless = rootless
        self._fds: dict[str, int] = {}

    def __call__(self, name: str, value: Any, field: str) -> None:
        try:
            fd = self._fds.get(name)
            if fd is None:
                fd = posix.open(f"{self.d}/{name}", posix.O_WRONLY | posix.O_CLOEXEC)
                self._fds[name] = fd
            posix.write(fd, str(value).encode())
        except OSError as e:
            _failed(e, name, value, field, self.rootless)

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, *_exc: object) -> None:
        for fd in self._fds.values():
            posix.close(fd)
        self._fds.clear()


def write_hugetlb(d: str, limits: list[dict[str, Any]], rootless: bool, limit: str,
                  rsvd: str) -> None:
    """hugepageLimits: hugetlb.<size>.<limit> for each, and the reservation
    limit (<rsvd>, Linux 5.7+) too where the kernel has it, as runc does.
    The file suffixes differ between v1 and v2."""
    has_rsvd = True
    for i, hp in enumerate(limits):
        prefix = f"hugetlb.{hp['pageSize']}."
        write(d, prefix + limit, hp["limit"], f"hugepageLimits[{i}]", rootless)
        if not has_rsvd:
            continue
        try:
            write_raw(d, prefix + rsvd, str(hp["limit"]))
        except FileNotFoundError:
            has_rsvd = False
        except OSError:
            write(d, prefix + rsvd, hp["limit"], f"hugepageLimits[{i}]", rootless)


def read(d: str, name: str) -> str | None:
    try:
        with open(f"{d}/{name}") as f:
            return f.read()
    except OSError:
        return None


def read_int(d: str, name: str) -> int | None:
    """A single-number file; "max" reads as the largest u64 (runc's rule)."""
    text = read(d, name)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return MAX_U64
    try:
        return int(text)
    except ValueError:
        return None


def read_keyed(d: str, name: str) -> dict[str, int]:
    """"key value" lines (memory.stat, cpu.stat, memory.events, ...)."""
    return parse_keyed(read(d, name) or "")


def parse_keyed(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = MAX_U64 if parts[1] == "max" else int(parts[1])
            except ValueError:
                continue
    return out


def hugepage_sizes(base: str = "/sys/kernel/mm/hugepages") -> list[str]:
    """The host's huge page sizes as cgroup file names spell them (2MB, 1GB)."""
    out: list[str] = []
    try:
        names = sorted(posix.listdir(base))
    except OSError:
        return out
    for n in names:
        if not n.startswith("hugepages-") or not n.endswith("kB"):
            continue
        kb = int(n[len("hugepages-"):-2])
        for unit, size in (("GB", 1 << 20), ("MB", 1 << 10), ("KB", 1)):
            if kb % size == 0:
                out.append(f"{kb // size}{unit}")
                break
    return out


def rdma_line(dev: str, limits: dict[str, Any]) -> str:
    """One rdma.max line (v1 and v2 alike): only the limits given."""
    return dev + "".join(f" {name}={limits[key]}" for key, name in (
        ("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object"))
        if limits.get(key) is not None)
