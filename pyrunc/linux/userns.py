"""Writing a user namespace's id maps (shared by create and idmapped mounts)."""

from __future__ import annotations

import posix  # not os: see pyrunc.posixfs


def write_id_maps(pid: int | str, uid_maps: list[dict[str, int]],
                  gid_maps: list[dict[str, int]], setgroups: str | None = None) -> None:
    """Maps of the process pid (as /proc sees it); setgroups before gid_map."""
    if setgroups is not None:
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write(setgroups)
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(_fmt(uid_maps))
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(_fmt(gid_maps))


def set_container_maps(pid: int, uid_maps: list[dict[str, int]],
                       gid_maps: list[dict[str, int]]) -> None:
    """create's maps for the child pid. Root writes them directly. Unprivileged,
    the kernel accepts only one line mapping our own id (and, for gid_map,
    setgroups "deny" first); a wider map goes through the setuid helpers
    newuidmap/newgidmap, which check /etc/subuid and /etc/subgid (as runc and
    crun do). setgroups then stays "allow", so the container may setgroups."""
    if posix.geteuid() == 0:
        write_id_maps(pid, uid_maps, gid_maps, "allow" if gid_maps else None)
        return
    if _self_only(uid_maps, posix.geteuid()):
        with open(f"/proc/{pid}/uid_map", "w") as f:
            f.write(_fmt(uid_maps))
    else:
        _helper("newuidmap", pid, uid_maps)
    if not gid_maps:
        return
    if _self_only(gid_maps, posix.getegid()):
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
        with open(f"/proc/{pid}/gid_map", "w") as f:
            f.write(_fmt(gid_maps))
    else:
        _helper("newgidmap", pid, gid_maps)


def _fmt(maps: list[dict[str, int]]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)


def _self_only(maps: list[dict[str, int]], own: int) -> bool:
    return len(maps) == 1 and maps[0]["size"] == 1 and maps[0]["hostID"] == own


def _helper(name: str, pid: int, maps: list[dict[str, int]]) -> None:
    """newuidmap PID CONTAINER-ID HOST-ID SIZE...; OSError with its one-line complaint."""
    import errno
    import shutil
    import subprocess

    exe = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if exe is None:
        raise OSError(errno.EPERM, f"mapping more than your own id needs {name} "
                      "(package uidmap), which is not installed")
    argv = [exe, str(pid)]
    for m in maps:
        argv += [str(m["containerID"]), str(m["hostID"]), str(m["size"])]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, check=False)
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit status {p.returncode}"
        raise OSError(errno.EPERM, f"{name}: {why}")
