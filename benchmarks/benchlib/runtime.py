"""One runtime under test: its own --root, the ids it made, and cleanup."""

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from .proc import Outcome, Running, invoke

T = TypeVar("T")
R = TypeVar("R")


def pool_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    """ThreadPoolExecutor.map that drops queued work on an error or Ctrl-C."""
    pool = ThreadPoolExecutor(workers)
    try:
        return list(pool.map(fn, items))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class BenchFailure(Exception):
    """A runtime failed a step; the benchmark records 'n/a: <reason>' for it."""


class Runtime:
    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path
        self.root = Path(tempfile.mkdtemp(prefix=f"bench-{name}-root-"))
        self.na: str | None = None  # reason the runtime cannot run at all
        self._ids: set[str] = set()  # every id handed to create/run, until deleted
        self._seq = 0

    def new_id(self) -> str:
        self._seq += 1
        return f"bench{os.getpid()}-{self.name}-{self._seq}"

    def argv(self, *args: str) -> list[str]:
        return [self.path, "--root", str(self.root), *args]

    def spawn(self, *args: str) -> Running:
        return Running(self.argv(*args))

    def call(self, *args: str, capture: bool = False, rss: bool = False) -> Outcome:
        return invoke(self.argv(*args), capture, rss)

    def must(self, *args: str) -> Outcome:
        out = self.call(*args)
        if out.rc != 0:
            raise BenchFailure(f"{args[0]}: {out.reason()}")
        return out

    # -- container bookkeeping -------------------------------------------------

    def track(self, cid: str) -> str:
        self._ids.add(cid)
        return cid

    def exists(self, cid: str) -> bool:
        # runc, crun and pyrunc (same layout by design) keep one dir per container.
        return (self.root / cid).exists()

    def remove(self, cid: str) -> None:
        """Untimed `delete -f`; raises if the container survives it."""
        if self.exists(cid):
            out = self.call("delete", "-f", cid)
            if self.exists(cid):
                raise BenchFailure(f"delete -f: {out.reason()}")
        self._ids.discard(cid)

    def remove_many(self, ids: list[str], workers: int = 8) -> None:
        """Best effort: survivors are retried and reported by cleanup()."""

        def quietly(cid: str) -> None:
            try:
                self.remove(cid)
            except BenchFailure:
                pass

        pool_map(quietly, ids, workers)

    def cleanup(self) -> list[str]:
        """Delete every container this run made; return the ids that remain."""
        on_disk = {p.name for p in self.root.iterdir()} if self.root.is_dir() else set()
        left = []
        for cid in sorted(self._ids | on_disk):
            try:
                self.remove(cid)
            except BenchFailure:
                left.append(cid)
        if left:
            print(
                f"warning: {self.name}: {len(left)} container(s) survive `delete -f` "
                f"(ids {', '.join(left[:5])}...); root kept at {self.root}",
                file=sys.stderr,
            )
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        return left
