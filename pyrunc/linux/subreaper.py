"""prctl(PR_SET_CHILD_SUBREAPER) through python-prctl: the parents of `run`
and `exec` need only this call, and the syscall layer (pyrunc.linux.libc) costs ~1 ms
to import on their hot path."""

import _prctl


def become_subreaper() -> None:
    """Orphaned descendants (init, once its first parent exits) become ours to reap."""
    _prctl.prctl(_prctl.PR_SET_CHILD_SUBREAPER, 1)
