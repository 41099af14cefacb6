"""config.md mounts: order, destinations, bind/rbind, and every MUST mount option."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

from conformance.checks.util import Mount, mount_at, mountinfo
from conformance.harness import Ctx
from conformance.registry import add, check, expect

MI = "cat /proc/self/mountinfo"


def tmpfs(dest: str, options: list[str]) -> dict[str, Any]:
    return {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options}


@check("mounts-bind", "config.md#mounts")
def mounts_bind(ctx: Ctx) -> None:
    """A bind mount shows the host directory's content at the destination."""
    src = ctx.tmp / "src"
    src.mkdir()
    (src / "hello").write_text("from-host\n")
    cfg = ctx.config("cat /mnt/data/hello")
    cfg["mounts"].append(
        {"destination": "/mnt/data", "type": "bind", "source": str(src), "options": ["bind"]}
    )
    out = ctx.run_ok(cfg).strip()
    expect(out == "from-host", f"read {out!r} through the bind mount, expected 'from-host'")


@check("mounts-order", "config.md#mounts")
def mounts_order(ctx: Ctx) -> None:
    """Mounts are made in the listed order: a later tmpfs hides an earlier bind at the same path,
    and a bind below an earlier tmpfs is visible."""
    src = ctx.tmp / "src"
    src.mkdir()
    (src / "f").write_text("x")
    cfg = ctx.config("ls /mnt/x; echo @@; ls /mnt/t/sub")
    cfg["mounts"] += [
        {"destination": "/mnt/x", "type": "bind", "source": str(src), "options": ["bind"]},
        tmpfs("/mnt/x", []),
        tmpfs("/mnt/t", []),
        {"destination": "/mnt/t/sub", "type": "bind", "source": str(src), "options": ["bind"]},
    ]
    first, _, second = ctx.run_ok(cfg).partition("@@")
    expect(first.split() == [], f"/mnt/x shows {first.split()}: the later tmpfs was not on top")
    expect(second.split() == ["f"], f"/mnt/t/sub shows {second.split()}, expected ['f']")


@check("mounts-relative-destination", "config.md#mounts")
def mounts_relative(ctx: Ctx) -> None:
    """A relative destination is interpreted relative to '/'."""
    cfg = ctx.config(MI)
    cfg["mounts"].append(tmpfs("mnt/rel", ["size=1m"]))
    mount_at(ctx.run_ok(cfg), "/mnt/rel")


@check("mounts-tmpfs-data-options", "config.md#mounts")
def mounts_data(ctx: Ctx) -> None:
    """Filesystem-specific options (mode=, size=) reach the filesystem."""
    cfg = ctx.config("stat -c %a /mnt/d; " + MI)
    cfg["mounts"].append(tmpfs("/mnt/d", ["mode=710", "size=2m"]))
    out = ctx.run_ok(cfg)
    expect(out.split()[0] == "710", f"mode {out.split()[0]}, expected 710")
    m = mount_at(out, "/mnt/d")
    expect("size=2048k" in m.super_opts, f"tmpfs options {sorted(m.super_opts)}, no size=2048k")


def _rbind(recursive: bool) -> Callable[[Ctx], None]:
    def fn(ctx: Ctx) -> None:
        src = ctx.tmp / "src"
        (src / "sub").mkdir(parents=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(src / "sub")], check=True
        )
        try:
            (src / "sub" / "inner").write_text("x")
            cfg = ctx.config("ls /mnt/b/sub")
            opt = "rbind" if recursive else "bind"
            cfg["mounts"].append(
                {"destination": "/mnt/b", "type": "bind", "source": str(src), "options": [opt]}
            )
            seen = ctx.run_ok(cfg).split()
        finally:
            subprocess.run(["umount", "-l", str(src / "sub")], check=False)
        if recursive:
            expect(seen == ["inner"], f"rbind: submount content {seen}, expected ['inner']")
        else:
            expect(seen == [], f"bind (not recursive) carried the submount along: {seen}")

    return fn


add(
    "mount-option-rbind",
    "config.md#linux-mount-options",
    "rbind brings submounts of the source along",
    _rbind(True),
)
add(
    "mount-option-bind",
    "config.md#linux-mount-options",
    "bind does not bring submounts along",
    _rbind(False),
)


Pred = Callable[[Mount], str]  # returns "" when fine, else what is wrong


def has(opt: str) -> Pred:
    return lambda m: "" if opt in m.opts else f"{opt} missing from {sorted(m.opts)}"


def lacks(opt: str) -> Pred:
    return lambda m: "" if opt not in m.opts else f"{opt} present in {sorted(m.opts)}"


def sb_has(opt: str) -> Pred:
    return lambda m: "" if opt in m.super_opts else f"{opt} missing from {sorted(m.super_opts)}"


def sb_lacks(opt: str) -> Pred:
    return lambda m: "" if opt not in m.super_opts else f"{opt} in {sorted(m.super_opts)}"


def prop(field: str, present: bool) -> Pred:
    def p(m: Mount) -> str:
        found = any(o.startswith(field) for o in m.optional)
        return "" if found == present else f"propagation fields {list(m.optional)}"

    return p


def accepted(m: Mount) -> str:
    return ""


# option -> (options given, fs type, predicate). Options whose effect cannot be seen in
# mountinfo (iversion, loud, silent, defaults, norelatime) are checked for acceptance.
TMP, BIND = "tmpfs", "bind"
OPTIONS: dict[str, tuple[list[str], str, Pred]] = {
    "async": (["sync", "async"], TMP, sb_lacks("sync")),
    "atime": (["noatime", "atime"], TMP, lacks("noatime")),
    "defaults": (["defaults"], TMP, has("rw")),
    "dev": (["nodev", "dev"], TMP, lacks("nodev")),
    "diratime": (["nodiratime", "diratime"], TMP, lacks("nodiratime")),
    "dirsync": (["dirsync"], TMP, sb_has("dirsync")),
    "exec": (["noexec", "exec"], TMP, lacks("noexec")),
    "iversion": (["iversion"], TMP, accepted),
    "lazytime": (["lazytime"], TMP, sb_has("lazytime")),
    "loud": (["loud"], TMP, accepted),
    "noatime": (["noatime"], TMP, has("noatime")),
    "nodev": (["nodev"], TMP, has("nodev")),
    "nodiratime": (["nodiratime"], TMP, has("nodiratime")),
    "noexec": (["noexec"], TMP, has("noexec")),
    "noiversion": (["noiversion"], TMP, accepted),
    "nolazytime": (["lazytime", "nolazytime"], TMP, sb_lacks("lazytime")),
    "norelatime": (["norelatime"], TMP, accepted),
    "nostrictatime": (["strictatime", "nostrictatime"], TMP, has("relatime")),
    "nosuid": (["nosuid"], TMP, has("nosuid")),
    "private": (
        ["bind", "private"],
        BIND,
        lambda m: prop("shared:", False)(m) or prop("master:", False)(m),
    ),
    # relatime is also the kernel's default, so only its presence is observable.
    "relatime": (["relatime"], TMP, has("relatime")),
    "ro": (["ro"], TMP, has("ro")),
    "rprivate": (
        ["rbind", "rprivate"],
        BIND,
        lambda m: prop("shared:", False)(m) or prop("master:", False)(m),
    ),
    "rshared": (["rbind", "rshared"], BIND, prop("shared:", True)),
    "rslave": (["rbind", "rslave"], BIND, prop("shared:", False)),
    "runbindable": (["rbind", "runbindable"], BIND, prop("unbindable", True)),
    "rw": (["ro", "rw"], TMP, has("rw")),
    "shared": (["bind", "shared"], BIND, prop("shared:", True)),
    "silent": (["silent"], TMP, accepted),
    "slave": (["bind", "slave"], BIND, prop("shared:", False)),
    "strictatime": (["strictatime"], TMP, lambda m: lacks("relatime")(m) or lacks("noatime")(m)),
    "suid": (["nosuid", "suid"], TMP, lacks("nosuid")),
    "sync": (["sync"], TMP, sb_has("sync")),
    "unbindable": (["bind", "unbindable"], BIND, prop("unbindable", True)),
}


def _option_check(name: str, given: list[str], kind: str, pred: Pred) -> None:
    def fn(ctx: Ctx) -> None:
        cfg = ctx.config(MI)
        if kind == BIND:
            src = ctx.tmp / "src"
            src.mkdir()
            cfg["mounts"].append(
                {"destination": "/mnt/o", "type": "bind", "source": str(src), "options": given}
            )
        else:
            cfg["mounts"].append(tmpfs("/mnt/o", given))
        p = ctx.run(cfg)
        expect(p.rc == 0, f"options {given} refused: {p.tail()}")
        problem = pred(mount_at(p.out, "/mnt/o"))
        expect(not problem, f"options {given}: {problem}")

    add(
        f"mount-option-{name}",
        "config.md#linux-mount-options",
        f"mount option {name} (given as {given})",
        fn,
    )


for _name, (_given, _kind, _pred) in OPTIONS.items():
    _option_check(_name, _given, _kind, _pred)


@check("mount-option-remount", "config.md#linux-mount-options")
def remount(ctx: Ctx) -> None:
    """A second entry with remount,ro changes the earlier mount at that path to read-only."""
    cfg = ctx.config(MI)
    cfg["mounts"] += [tmpfs("/mnt/r", ["rw"]), tmpfs("/mnt/r", ["remount", "ro"])]
    p = ctx.run(cfg)
    expect(p.rc == 0, f"remount refused: {p.tail()}")
    ms = [m for m in mountinfo(p.out) if m.point == "/mnt/r"]
    expect(len(ms) == 1, f"{len(ms)} mounts at /mnt/r, expected 1 remounted")
    expect("ro" in ms[0].opts, f"/mnt/r options {sorted(ms[0].opts)}: not read-only")


@check("mount-bind-readonly", "config.md#mounts")
def bind_ro(ctx: Ctx) -> None:
    """A bind mount with ro is read-only in the container and the host dir stays untouched."""
    src = ctx.tmp / "src"
    src.mkdir()
    cfg = ctx.config("touch /mnt/ro/x 2>/dev/null && echo wrote; " + MI)
    cfg["mounts"].append(
        {"destination": "/mnt/ro", "type": "bind", "source": str(src), "options": ["rbind", "ro"]}
    )
    out = ctx.run_ok(cfg)
    expect("wrote" not in out and not (src / "x").exists(), "wrote through a ro bind mount")
    expect("ro" in mount_at(out, "/mnt/ro").opts, "the bind mount is not flagged ro")
