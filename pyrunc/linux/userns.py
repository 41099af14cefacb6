"""Writing a user namespace's id maps (shared by create and idmapped mounts)."""

from __future__ import annotations


def write_id_maps(pid: int | str, uid_maps: list[dict[str, int]],
                  gid_maps: list[dict[str, int]], setgroups: str | None = None) -> None:
    """Maps of the process pid (as /proc sees it); setgroups before gid_map."""
    def fmt(maps: list[dict[str, int]]) -> str:
        return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)

    if setgroups is not None:
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write(setgroups)
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(fmt(uid_maps))
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(fmt(gid_maps))
