"""Lifecycle verbs on an existing container, parent side: state, start,
kill, delete. They are one-shot commands, each a fresh interpreter: posix,
not os (see pyrunc.posixfs). create and run live in pyrunc.launch; the
child side in pyrunc.init."""

from __future__ import annotations

import posix

from pyrunc import log
from pyrunc.errors import PyruncError
from pyrunc.state import (
    ContainerDir,
    Root,
    State,
    derive_status,
    is_frozen,
    oci_state,
    proc_start_time,
    remove_empty_cgroups,
)

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any


def manager_for(st: State) -> Any:
    from pyrunc import cgroups

    return cgroups.manager_from_state(st.cgroup) if st.cgroup else None


class Container:
    def __init__(self, root: Root, cid: str) -> None:
        self.root = root
        self.id = cid

    def rollback(self, cdir: ContainerDir, mgr: Any, init_pid: int,
                 rdt: dict[str, Any] | None = None) -> None:
        if init_pid:
            kill_and_wait(init_pid)
        if mgr is not None:
            try:
                mgr.destroy()
            except Exception as e:  # noqa: BLE001 - report, keep cleaning
                log.warning(f"cleanup: removing cgroup: {e}")
        if rdt:
            _remove_rdt(rdt)
        cdir.remove()

    def open(self) -> tuple[ContainerDir, State, str]:
        cdir = self.root.open(self.id)
        st = cdir.load()
        return cdir, st, self._status(cdir, st)

    def _status(self, cdir: ContainerDir, st: State) -> str:
        status = derive_status(st, cdir.path)
        if status == "running" and is_frozen(st.cgroup.get("dirs", {})):
            return "paused"
        return status

    def state(self) -> dict[str, Any]:
        cdir = self.root.open(self.id, lock=False)
        st = cdir.load()
        return oci_state(st, self._status(cdir, st))

    def start(self) -> State:
        cdir, st, status = self.open()
        try:
            if status == "stopped":
                raise PyruncError("cannot start a container that has stopped")
            if status != "created":
                raise PyruncError(f"cannot start an already {status} container")
            self.release(cdir, st)
            self.poststart(st)
        finally:
            cdir.unlock()
        return st

    def release(self, cdir: ContainerDir, st: State) -> None:
        """Open exec.fifo for reading: init unblocks and writes "0"; EOF follows
        when its execve closes the fifo, or "E<message>" if it failed first."""
        import select

        fd = posix.open(cdir.fifo, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
        data = b""
        try:
            while not data:
                try:
                    data = posix.read(fd, 1)
                except BlockingIOError:  # init has it open: its byte is on the way
                    select.select([fd], [], [], 0.1)
                    continue
                if not data:
                    if proc_start_time(st.pid) != st.init_start:
                        # init may have written, exec'd and exited since our read
                        data = posix.read(fd, 1)
                        if data:
                            continue
                        raise PyruncError("cannot start a container that has stopped")
                    # No writer yet: init is still opening the fifo. poll() reports
                    # no hang-up before a first writer, so this waits for its byte
                    # (or 0.1 s, to look at init again).
                    select.select([fd], [], [], 0.1)
            posix.set_blocking(fd, True)
            while chunk := posix.read(fd, 4096):
                data += chunk
        finally:
            posix.close(fd)
            posix.unlink(cdir.fifo)
        if data[1:2] == b"E":
            raise PyruncError(data[2:].decode(errors="replace"))

    def poststart(self, st: State) -> None:
        """A failing poststart hook stops the container and fails start
        (runtime.md lifecycle 9); `delete` then runs the poststop hooks."""
        hooks = st.config.get("hooks", {}).get("poststart", [])
        if hooks:
            from pyrunc import hooks as H
            try:
                H.run_all(hooks, oci_state(st, "running"), "poststart")
            except H.HookError:
                kill_and_wait(st.pid, st.init_start)
                raise

    def kill(self, sig: int, all_procs: bool = False) -> None:
        cdir, st, status = self.open()
        try:
            if status not in ("created", "running", "paused"):
                raise PyruncError("container not running")
            if all_procs and st.cgroup:
                manager_for(st).signal_all(sig)
                return
            try:
                posix.kill(st.pid, sig)
            except ProcessLookupError:
                raise PyruncError("container not running") from None
        finally:
            cdir.unlock()

    def delete(self, force: bool = False) -> None:
        cdir, st, status = self.open()
        if status in ("running", "paused") and not force:
            cdir.unlock()
            raise PyruncError(f"cannot delete container {self.id} that is not stopped: {status}")
        self.destroy(cdir, st, status)

    def destroy(self, cdir: ContainerDir, st: State, status: str) -> None:
        cg = st.cgroup
        if status != "stopped" and st.pid:
            if cg and status == "paused":
                manager_for(st).thaw()
            kill_and_wait(st.pid, st.init_start)
        # Empty (a stopped container's), they go without pyrunc.cgroups (~0.3 ms)
        if cg and not remove_empty_cgroups(cg.get("dirs", {}), cg.get("created", [])):
            try:
                manager_for(st).destroy()
            except Exception as e:  # noqa: BLE001
                log.warning(f"removing cgroup: {e}")
        if "intelRdt" in st.extra:
            _remove_rdt(st.extra["intelRdt"])
        poststop(st, "stopped")
        cdir.remove()


def poststop(st: State, status: str) -> None:
    hooks = st.config.get("hooks", {}).get("poststop", [])
    if hooks:
        from pyrunc.hooks import run_poststop

        run_poststop(hooks, oci_state(st, status))


def _remove_rdt(rec: dict[str, Any]) -> None:
    from pyrunc import intelrdt

    try:
        intelrdt.destroy(rec)
    except OSError as e:
        log.warning(f"removing resctrl group: {e}")


def kill_and_wait(pid: int, start: int | None = None, timeout: float = 10.0) -> None:
    """SIGKILL pid (if it is still the process we started) and wait until it is gone."""
    if start is not None and proc_start_time(pid) != start:
        return
    import _signal
    import select

    try:
        pidfd = posix.pidfd_open(pid)
    except OSError:
        return
    try:
        try:
            _signal.pidfd_send_signal(pidfd, _signal.SIGKILL)
        except ProcessLookupError:
            return
        select.select([pidfd], [], [], timeout)
        try:
            posix.waitpid(pid, posix.WNOHANG)
        except ChildProcessError:
            pass
    finally:
        posix.close(pidfd)


def force_delete(c: Container) -> None:
    try:
        cdir, st, status = c.open()
    except PyruncError:
        return
    c.destroy(cdir, st, status)
