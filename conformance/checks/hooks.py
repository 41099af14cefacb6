"""config.md hooks and their place in runtime.md's lifecycle.

Every hook appends its name to a log. Hooks that run in the runtime namespace
write the host path; hooks in the container namespace may already be pivoted,
so they fall back to the same directory bind-mounted at /hooklog.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from conformance.checks.util import procs_with_env
from conformance.harness import Ctx
from conformance.registry import add, check, expect

HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
IN_CONTAINER = ("createContainer", "startContainer")
LONG = "exec sleep 30"


def hook(log: Path, name: str, extra: str = "", fail: bool = False) -> dict[str, Any]:
    """A /bin/sh hook that appends `name` (and saves its stdin) to the log dir."""
    d = str(log)
    script = (
        f"if [ -d {d} ]; then L={d}; else L=/hooklog; fi; "
        f'cat > "$L/{name}.stdin"; '
        f'echo "{name} $(readlink /proc/self/ns/mnt) $(readlink /proc/self/ns/net)" '
        f'>> "$L/log"'
    )
    if extra:
        script += f"; {extra}"
    if fail:
        script += "; exit 1"
    return {"path": "/bin/sh", "args": ["sh", "-c", script]}


def with_hooks(ctx: Ctx, cfg: dict[str, Any], failing: str = "") -> Path:
    log = ctx.tmp / "hooklog"
    log.mkdir(exist_ok=True)
    cfg["mounts"].append(
        {"destination": "/hooklog", "type": "bind", "source": str(log), "options": ["rbind", "rw"]}
    )
    cfg["hooks"] = {name: [hook(log, name, fail=name == failing)] for name in HOOKS}
    return log


def logged(log: Path) -> list[tuple[str, str, str]]:
    f = log / "log"
    if not f.exists():
        return []
    out = []
    for ln in f.read_text().splitlines():
        parts = ln.split() + ["", "", ""]
        out.append((parts[0], parts[1], parts[2]))
    return out


def names(log: Path) -> list[str]:
    return [n for n, _, _ in logged(log)]


@check("hooks-order", "config.md#posix-platform-hooks")
def hooks_order(ctx: Ctx) -> None:
    """All six hooks run once, in the lifecycle's order, at the right operation."""
    cfg = ctx.config("echo process >> /hooklog/log; sleep 0.2")
    log = with_hooks(ctx, cfg)
    cid = ctx.create_ok(cfg)
    want = ["prestart", "createRuntime", "createContainer"]
    expect(
        names(log) == want,
        f"after create the hooks that ran are {names(log)}, expected "
        f"{want} (poststart belongs to start)",
    )
    p = ctx.rt("start", cid)
    expect(p.rc == 0, f"start failed: {p.tail()}")
    got = names(log)
    expect(
        got[:5] == [*want, "startContainer", "process"]
        or got[:5] == [*want, "startContainer", "poststart"],
        f"after start: {got}",
    )
    expect("poststart" in got, f"poststart did not run before start returned: {got}")
    ctx.wait_status(cid, "stopped")
    expect("poststop" not in names(log), "poststop ran before delete")
    p = ctx.rt("delete", cid)
    expect(p.rc == 0, f"delete failed: {p.tail()}")
    got = names(log)
    expect(
        got[-1] == "poststop" and got.count("poststop") == 1,
        f"after delete: {got}, expected poststop last",
    )


@check("hooks-state-stdin", "config.md#posix-platform-hooks")
def hooks_stdin(ctx: Ctx) -> None:
    """Each hook gets the container state (id, status, bundle; pid until stopped) on stdin."""
    cfg = ctx.config("sleep 0.2")
    log = with_hooks(ctx, cfg)
    cid = ctx.create_ok(cfg)
    expect(ctx.rt("start", cid).rc == 0, "start failed")
    ctx.wait_status(cid, "stopped")
    expect(ctx.rt("delete", cid).rc == 0, "delete failed")
    for name in HOOKS:
        f = log / f"{name}.stdin"
        expect(f.exists(), f"{name} hook did not run")
        try:
            st = json.loads(f.read_text())
        except json.JSONDecodeError:
            raise AssertionError(f"{name}: stdin is not JSON: {f.read_text()[:80]!r}") from None
        expect(st.get("id") == cid, f"{name}: state id {st.get('id')!r}")
        expect(
            st.get("status") in ("creating", "created", "running", "stopped"),
            f"{name}: status {st.get('status')!r}",
        )
        expect(
            isinstance(st.get("bundle"), str) and os.path.isabs(st["bundle"]),
            f"{name}: bundle {st.get('bundle')!r}",
        )
        if name != "poststop":
            expect(isinstance(st.get("pid"), int) and st["pid"] > 0, f"{name}: pid missing")


@check("hooks-namespaces", "config.md#posix-platform-hooks")
def hooks_namespaces(ctx: Ctx) -> None:
    """prestart/createRuntime/poststart/poststop run in the runtime's namespaces,
    createContainer/startContainer in the container's."""
    cfg = ctx.config("sleep 0.2")
    log = with_hooks(ctx, cfg)
    cid = ctx.create_ok(cfg)
    expect(ctx.rt("start", cid).rc == 0, "start failed")
    ctx.wait_status(cid, "stopped")
    expect(ctx.rt("delete", cid).rc == 0, "delete failed")
    host = (os.readlink("/proc/self/ns/mnt"), os.readlink("/proc/self/ns/net"))
    seen = {n: (m, net) for n, m, net in logged(log)}
    for name in HOOKS:
        expect(name in seen, f"{name} hook did not run")
        if name in IN_CONTAINER:
            expect(
                seen[name] != host and seen[name][0] != host[0],
                f"{name} ran in the runtime's mount namespace",
            )
        else:
            expect(seen[name] == host, f"{name} ran outside the runtime namespace: {seen[name]}")


@check("hooks-args-env", "config.md#posix-platform-hooks")
def hooks_args_env(ctx: Ctx) -> None:
    """A hook gets its args (args[0] included) and exactly its env."""
    cfg = ctx.config(LONG)
    out = ctx.tmp / "h.out"
    cfg["hooks"] = {
        "createRuntime": [
            {
                "path": "/bin/sh",
                "env": ["CONF_HOOK=bar"],
                "args": [
                    "hookzero",
                    "-c",
                    f'tr "\\0" "\\n" < /proc/$$/cmdline > {out}.argv; '
                    f'echo "$0|$1|$CONF_HOOK|${{HOME:-unset}}" > {out}',
                    "zero",
                    "one",
                ],
            }
        ]
    }
    ctx.create_ok(cfg)
    got = out.read_text().strip() if out.exists() else "<hook did not run>"
    argv = Path(f"{out}.argv").read_text().split("\n") if Path(f"{out}.argv").exists() else []
    expect(argv[:1] == ["hookzero"], f"hook argv[0] is {argv[:1]}, expected args[0] 'hookzero'")
    rest = got
    expect(
        rest in ("zero|one|bar|unset",),
        f"hook saw {rest!r}, expected 'zero|one|bar|unset' "
        "(args passed, env exactly the hook's env)",
    )


def _failing(name: str) -> None:
    create_phase = name in ("prestart", "createRuntime", "createContainer")

    def fn(ctx: Ctx) -> None:
        ctx.control(ctx.config("true"), f"the failing {name} hook")
        cfg = ctx.config(LONG)
        cid = ctx.new_id()
        cfg["process"]["env"].append(f"CONFORMANCE_MARK={cid}")
        cgpath = f"oci-conformance-{uuid.uuid4().hex[:12]}"
        cfg["linux"]["cgroupsPath"] = "/" + cgpath
        log = with_hooks(ctx, cfg, failing=name)
        _, p = ctx.create(cfg, cid)
        if create_phase:
            expect(p.rc != 0, f"create succeeded although the {name} hook failed")
        else:
            expect(p.rc == 0, f"create failed ({name} hooks belong to start): {p.tail()}")
            p = ctx.rt("start", cid)
            expect(p.rc != 0, f"start succeeded although the {name} hook failed")
            st = ctx.rt("state", cid)
            if st.rc == 0:  # the container may remain, but stopped (lifecycle step 12)
                status = json.loads(st.out).get("status")
                expect(status == "stopped", f"container is {status!r} after the failed hook")
                ctx.rt("delete", cid)
        deadline = time.monotonic() + 3
        while procs_with_env(f"CONFORMANCE_MARK={cid}") and time.monotonic() < deadline:
            time.sleep(0.05)
        left = procs_with_env(f"CONFORMANCE_MARK={cid}")
        expect(not left, f"container processes left after the failed {name} hook: {left}")
        if create_phase:
            expect(ctx.rt("state", cid).rc != 0, f"container still exists after failed {name}")
            cgs = [str(d) for d in Path("/sys/fs/cgroup").glob(f"*/{cgpath}")]
            expect(not cgs, f"cgroups left after the failed {name} hook: {cgs}")
        later = names(log)[names(log).index(name) + 1 :] if name in names(log) else []
        expect(
            "poststop" in later,
            f"poststop hooks were not run after the failed {name} "
            f"hook (lifecycle continues at step 12): log {names(log)}",
        )

    add(
        f"hook-{name}-fails",
        "runtime.md#lifecycle",
        f"a failing {name} hook makes the operation fail, stops the container, runs poststop",
        fn,
    )


for _n in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart"):
    _failing(_n)


@check("hook-poststop-fails", "runtime.md#lifecycle")
def poststop_fails(ctx: Ctx) -> None:
    """A failing poststop hook is only a warning: delete succeeds, later poststop hooks run."""
    cfg = ctx.config("true")
    log = with_hooks(ctx, cfg, failing="poststop")
    second = hook(log, "poststop2")
    cfg["hooks"]["poststop"].append(second)
    cid = ctx.create_ok(cfg)
    expect(ctx.rt("start", cid).rc == 0, "start failed")
    ctx.wait_status(cid, "stopped")
    p = ctx.rt("delete", cid)
    expect(p.rc == 0, f"delete failed because a poststop hook failed: {p.tail()}")
    expect("poststop2" in names(log), "the poststop hook after the failing one did not run")
    expect(ctx.rt("state", cid).rc != 0, "container still exists after delete")


@check("hook-timeout", "config.md#posix-platform-hooks")
def hook_timeout(ctx: Ctx) -> None:
    """A createRuntime hook over its timeout is aborted and create fails promptly."""
    cfg = ctx.config("true")
    cfg["hooks"] = {
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "true"], "timeout": 1}]
    }
    ctx.control(cfg, "the slow hook")
    cfg = ctx.config(LONG)
    cfg["hooks"] = {
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "exec sleep 20"], "timeout": 1}]
    }
    t0 = time.monotonic()
    _, p = ctx.create(cfg)
    took = time.monotonic() - t0
    expect(p.rc != 0, "create succeeded although the hook ran past its timeout")
    expect(took < 10, f"create took {took:.1f}s: the hook was not aborted at its timeout")


@check("hooks-path-resolution", "config.md#posix-platform-hooks")
def hooks_paths(ctx: Ctx) -> None:
    """createContainer's path resolves in the runtime namespace, startContainer's in the
    container namespace (each path exists only on its own side)."""
    cfg = ctx.config("true")
    log = ctx.tmp / "hooklog"
    log.mkdir()
    cfg["mounts"].append(
        {"destination": "/hooklog", "type": "bind", "source": str(log), "options": ["rbind", "rw"]}
    )
    host_only = ctx.tmp / "hostbin" / "busybox"
    host_only.parent.mkdir()
    shutil.copy2(ctx.rootfs / "bin" / "busybox", host_only)
    inside_only = "/conformance-hookbin/busybox"
    expect(not Path(inside_only).exists(), f"{inside_only} exists on the host too")
    write = f'if [ -d {log} ]; then L={log}; else L=/hooklog; fi; echo "$0" >> "$L/log"'
    cfg["hooks"] = {
        "createContainer": [{"path": str(host_only), "args": ["sh", "-c", write, "cc"]}],
        "startContainer": [{"path": inside_only, "args": ["sh", "-c", write, "sc"]}],
    }
    p = ctx.run(cfg)
    expect(p.rc == 0, f"run failed: {p.tail()}")
    got = names(log)
    expect(got == ["cc", "sc"], f"hooks that ran: {got}, expected ['cc', 'sc']")


@check("hooks-before-pivot-root", "config.md#prestart")
def hooks_before_pivot(ctx: Ctx) -> None:
    """prestart and createRuntime run before pivot_root: the container process's root is
    still the runtime's; by poststart it is the rootfs."""
    cfg = ctx.config("sleep 0.3")
    log = ctx.tmp / "roots"
    log.mkdir()
    see = (
        "pid=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p'); "
        "if [ -e /proc/$pid/root/conformance-hookbin ]; then r=rootfs; else r=runtime; fi; "
        f'echo "$0 $r" >> {log}/log'
    )
    cfg["hooks"] = {
        name: [{"path": "/bin/sh", "args": ["sh", "-c", see, name]}]
        for name in ("prestart", "createRuntime", "poststart")
    }
    p = ctx.run(cfg)
    expect(p.rc == 0, f"run failed: {p.tail()}")
    roots = dict(ln.split(" ", 1) for ln in (log / "log").read_text().splitlines() if " " in ln)
    for name in ("prestart", "createRuntime"):
        expect(name in roots, f"{name} did not run or saw no pid")
        expect(
            roots[name] == "runtime",
            f"{name}: the container process's root was already the rootfs (after pivot_root)",
        )
    expect(roots.get("poststart") == "rootfs", "by poststart the root is not yet the rootfs")
