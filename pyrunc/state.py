"""The --root directory: one folder per container holding state.json, the
exec fifo and a lock. Status is derived from the kernel, never trusted from
disk: a dead or recycled init pid reads as stopped."""

from __future__ import annotations

import fcntl
import posix  # not os: see pyrunc.posixfs

from pyrunc import OCI_VERSION, fastjson, posixfs
from pyrunc.errors import PyruncError

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any

STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
# The fifo's name until create has finished: its rename to EXEC_FIFO is the
# commit (no state.json rewrite: ~0.4 ms on ext4, on create's critical path).
CREATING_FIFO = "exec.fifo.creating"
# runc's rule (Go's ^[\w+\-.]+$, ASCII \w); a set check avoids importing re.
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


class NotExist(PyruncError):
    def __init__(self) -> None:
        super().__init__("container does not exist")


def default_root() -> str:
    if posix.geteuid() == 0:
        return "/run/pyrunc"
    xdg = posix.environ.get(b"XDG_RUNTIME_DIR")
    if xdg:
        return f"{xdg.decode(errors='surrogateescape')}/pyrunc"  # os.fsdecode
    return f"/tmp/pyrunc-{posix.geteuid()}"


def validate_id(cid: str) -> None:
    if not cid or cid in (".", "..") or not _ID_CHARS.issuperset(cid):
        raise PyruncError(
            f"invalid container ID format: {cid!r} (use letters, digits, '_', '+', '-', '.')")


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), None if gone or a zombie."""
    try:
        data = posixfs.read(f"/proc/{pid}/stat")  # one line of ~300 bytes
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):  # (gone as we read: nothing)
        return None
    return int(fields[19])


class State:
    """What pyrunc keeps in <root>/<id>/state.json. (A plain class: the
    dataclasses module costs ~10 ms to import, on every command.)"""

    FIELDS = ("id", "bundle", "rootfs", "created", "pid", "init_start", "owner",
              "annotations", "cgroup", "config", "creator_pid", "extra")

    def __init__(self, id: str, bundle: str, rootfs: str, created: str, pid: int = 0,
                 init_start: int = 0, owner: str = "",
                 annotations: dict[str, str] | None = None,
                 cgroup: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
                 creator_pid: int = 0, extra: dict[str, Any] | None = None) -> None:
        self.id = id
        self.bundle = bundle
        self.rootfs = rootfs
        self.created = created
        self.pid = pid
        self.init_start = init_start
        self.owner = owner
        self.annotations = annotations or {}
        self.cgroup = cgroup or {}
        self.config = config or {}
        self.creator_pid = creator_pid
        self.extra = extra or {}

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.FIELDS}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> State:
        return cls(**{k: v for k, v in d.items() if k in cls.FIELDS})


class Root:
    """The state root directory (--root)."""

    def __init__(self, path: str) -> None:
        self.path = posixfs.abspath(path)

    def dir(self, cid: str) -> str:
        return f"{self.path}/{cid}"

    def ids(self) -> list[str]:
        try:
            names = posix.listdir(self.path)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if posixfs.isfile(f"{self.path}/{n}/{STATE_FILE}"))

    def make(self, cid: str) -> ContainerDir:
        """Claim a new container directory; fails if the id is in use."""
        validate_id(cid)
        posixfs.makedirs(self.path, 0o711)
        d = self.dir(cid)
        try:
            posix.mkdir(d, 0o711)
        except FileExistsError:
            raise PyruncError(f"container with id exists: {cid}") from None
        cdir = ContainerDir(d)
        cdir.lock()
        return cdir

    def open(self, cid: str, lock: bool = True) -> ContainerDir:
        validate_id(cid)
        cdir = ContainerDir(self.dir(cid))
        if lock:
            cdir.lock()
        if not posixfs.exists(f"{cdir.path}/{STATE_FILE}"):
            cdir.unlock()
            raise NotExist()
        return cdir


class ContainerDir:
    """One container's folder; flock on the folder itself serialises commands."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def lock(self) -> None:
        try:
            fd = posix.open(self.path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except FileNotFoundError:
            raise NotExist() from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        # The holder before us may have deleted the container.
        if not posixfs.exists(self.path):
            self.unlock()
            raise NotExist()

    def unlock(self) -> None:
        if self._fd is not None:
            posix.close(self._fd)
            self._fd = None

    @property
    def fifo(self) -> str:
        return f"{self.path}/{EXEC_FIFO}"

    @property
    def creating_fifo(self) -> str:
        return f"{self.path}/{CREATING_FIFO}"

    def load(self) -> State:
        try:
            with open(f"{self.path}/{STATE_FILE}") as f:
                return State.from_json(fastjson.loads(f.read()))
        except FileNotFoundError:
            raise NotExist() from None
        except (ValueError, TypeError) as e:
            raise PyruncError(f"corrupt state file {self.path}/{STATE_FILE}: {e}") from None

    def save(self, st: State) -> None:
        tmp = f"{self.path}/{STATE_FILE}.tmp"
        with open(tmp, "w") as f:
            f.write(fastjson.dumps(st.to_json(), compact=True))
        posix.rename(tmp, f"{self.path}/{STATE_FILE}")

    def remove(self) -> None:
        # Only files live here (state.json, exec.fifo): no shutil needed.
        try:
            for name in posix.listdir(self.path):
                posix.unlink(f"{self.path}/{name}")
            posix.rmdir(self.path)
        except FileNotFoundError:
            pass
        self.unlock()


def freezer_file(dirs: dict[str, str]) -> tuple[str, bool] | None:
    """The file that says whether a container's cgroups are frozen, and
    whether it is v1's freezer.state (else v2's cgroup.freeze); None without
    a freezer. `dirs`: the cgroup manager's, hierarchy key -> directory.
    Here, not in pyrunc.cgroups: `state` and `kill` of a running container
    need it, and that package costs ~0.3 ms to import."""
    for key, d in dirs.items():
        if key and "freezer" in key.split(","):
            return f"{d}/freezer.state", True
    if "" in dirs:
        return f"{dirs['']}/cgroup.freeze", False
    return None


def is_frozen(dirs: dict[str, str]) -> bool:
    """The cgroups in `dirs` (as for freezer_file) are frozen."""
    where = freezer_file(dirs)
    if where is None:
        return False
    path, v1 = where
    try:
        state = posixfs.read(path, 64).strip()
    except OSError:
        return False
    return state in (b"FROZEN", b"FREEZING") if v1 else state == b"1"


def remove_empty_cgroups(dirs: dict[str, str], created: list[str]) -> bool:
    """rmdir the cgroup directories create made (`created`), deepest first;
    True once all are gone. False at the first still busy, and when `dirs`
    (as for freezer_file) has one create did not make: pyrunc.cgroups then
    kills what is left. Here for the same reason as freezer_file: deleting
    a stopped container needs nothing more."""
    if not set(dirs.values()) <= set(created):
        return False
    for d in sorted(created, key=len, reverse=True):
        try:
            posix.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError:
            return False
    return True


def derive_status(st: State, cdir_path: str, frozen: bool = False) -> str:
    """creating/created/running/paused/stopped from the kernel's view of init."""
    if not st.pid:
        if st.creator_pid and proc_start_time(st.creator_pid) is not None:
            return "creating"
        return "stopped"
    if proc_start_time(st.pid) != st.init_start:
        return "stopped"
    if posixfs.exists(f"{cdir_path}/{EXEC_FIFO}"):
        return "created"
    if posixfs.exists(f"{cdir_path}/{CREATING_FIFO}"):  # create has not finished
        return "creating" if st.creator_pid and proc_start_time(st.creator_pid) else "stopped"
    return "paused" if frozen else "running"


def oci_state(st: State, status: str) -> dict[str, Any]:
    """The JSON `pyrunc state` prints: OCI state fields plus runc's extras."""
    out: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "id": st.id,
        "pid": st.pid if status != "stopped" else 0,
        "status": status,
        "bundle": st.bundle,
        "rootfs": st.rootfs,
        "created": st.created,
    }
    if st.annotations:
        out["annotations"] = st.annotations
    out["owner"] = st.owner
    return out

