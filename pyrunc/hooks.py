"""OCI hooks: each gets the container state as JSON on stdin; `timeout`
kills a hook that hangs. Failures raise HookError; the caller decides
whether that is fatal (create-time hooks) or a warning (poststart/poststop)."""

from __future__ import annotations

import os
import subprocess

from pyrunc.errors import PyruncError
from pyrunc.fastjson import dumps

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any


class HookError(PyruncError):
    pass


def run_one(hook: dict[str, Any], state: dict[str, Any], kind: str, index: int) -> None:
    path = hook["path"]
    args = hook.get("args") or [path]
    env = dict(e.split("=", 1) for e in hook.get("env", []) if "=" in e)
    timeout = hook.get("timeout")
    what = f"{kind} hook #{index} ({path})"
    try:
        proc = subprocess.run(args, executable=path, input=dumps(state).encode(),
                              env=env, timeout=timeout, capture_output=True, close_fds=True,
                              cwd="/" if not os.path.isdir(state.get("bundle", "")) else
                              state["bundle"])
    except subprocess.TimeoutExpired:
        raise HookError(f"{what}: timed out after {timeout}s and was killed") from None
    except OSError as e:
        raise HookError(f"{what}: cannot run: {e.strerror}") from None
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        detail = f": {err[-1]}" if err else ""
        status = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
                  else f"exit status {proc.returncode}")
        raise HookError(f"{what}: {status}{detail}")


def run_all(hooks: list[dict[str, Any]], state: dict[str, Any], kind: str) -> None:
    """Stop at the first failure (every hook kind but poststop)."""
    for i, hook in enumerate(hooks):
        run_one(hook, state, kind, i)


def run_poststop(hooks: list[dict[str, Any]], state: dict[str, Any]) -> None:
    """Every poststop hook runs; a failure is a warning (runtime.md, lifecycle 13)."""
    from pyrunc import log

    for i, hook in enumerate(hooks):
        try:
            run_one(hook, state, "poststop", i)
        except HookError as e:
            log.warning(str(e))
