"""runtime.md: state, lifecycle and the operations (create/start/state/kill/delete)."""

from __future__ import annotations

import json
import os
import time
from functools import cache
from pathlib import Path
from typing import Any

from conformance.checks.util import host_cgroup_dir, procs_with_env
from conformance.harness import SPEC_DIR, Ctx
from conformance.registry import Fail, Skip, add, check, expect

LONG = "exec sleep 30"


@cache
def _state_validator() -> Any:
    schema_dir = SPEC_DIR / "schema"
    if not (schema_dir / "state-schema.json").exists():
        raise Skip(f"spec schema not found at {schema_dir}")
    try:
        import jsonschema
        from referencing import Registry
        from referencing.jsonschema import DRAFT4
    except ImportError:
        raise Skip("jsonschema is not installed") from None
    base = schema_dir.as_uri() + "/"
    schema = json.loads((schema_dir / "state-schema.json").read_text())
    schema["id"] = base + "state-schema.json"
    defs = json.loads((schema_dir / "defs.json").read_text())
    registry: Any = Registry().with_resource(base + "defs.json", DRAFT4.create_resource(defs))
    return jsonschema.Draft4Validator(schema, registry=registry)


def validate_state(st: dict[str, Any], when: str) -> None:
    errors = sorted(_state_validator().iter_errors(st), key=str)
    if errors:
        e = errors[0]
        raise Fail(
            f"{when} state violates state-schema.json at "
            f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}"
        )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"


@check("state-created", "runtime.md#state")
def state_created(ctx: Ctx) -> None:
    """After create: status created, id, live pid, absolute bundle, ociVersion."""
    cfg = ctx.config(LONG)
    cid = ctx.create_ok(cfg)
    st = ctx.state(cid)
    expect(st.get("status") == "created", f"status is {st.get('status')!r}, expected 'created'")
    expect(st.get("id") == cid, f"id is {st.get('id')!r}, expected {cid!r}")
    pid = st.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        raise Fail(f"pid is {pid!r}, expected a positive int")
    expect(alive(pid), f"pid {pid} is not a live process")
    bundle = st.get("bundle")
    if not isinstance(bundle, str) or not os.path.isabs(bundle):
        raise Fail(f"bundle {bundle!r} is not an absolute path")
    expect(
        Path(bundle).resolve() == ctx.last_bundle.resolve(),
        f"bundle {bundle!r} is not the bundle dir {ctx.last_bundle}",
    )
    expect(isinstance(st.get("ociVersion"), str), "ociVersion missing from state")


@check("state-schema", "runtime.md#state")
def state_schema(ctx: Ctx) -> None:
    """State JSON validates against schema/state-schema.json when created, running, stopped."""
    _state_validator()
    cfg = ctx.config("sleep 0.5")
    cfg["annotations"] = {"org.example.key": "value"}
    cid = ctx.create_ok(cfg)
    validate_state(ctx.state(cid), "created")
    p = ctx.rt("start", cid)
    expect(p.rc == 0, f"start failed: {p.tail()}")
    st = ctx.state(cid)
    if st.get("status") == "running":
        validate_state(st, "running")
    validate_state(ctx.wait_status(cid, "stopped"), "stopped")


@check("state-annotations", "runtime.md#state")
def state_annotations(ctx: Ctx) -> None:
    """Annotations from config.json appear in the state."""
    cfg = ctx.config(LONG)
    ann = {"org.example.conformance": "yes", "com.example.n": "42"}
    cfg["annotations"] = ann
    st = ctx.state(ctx.create_ok(cfg))
    expect(st.get("annotations") == ann, f"annotations {st.get('annotations')!r}, expected {ann!r}")


@check("create-not-run-process", "runtime.md#create")
def create_not_run(ctx: Ctx) -> None:
    """create must not run process.args; start must."""
    cfg = ctx.config("echo ran > /out/ran")
    out = ctx.outdir(cfg)
    cid = ctx.create_ok(cfg)
    time.sleep(0.3)
    expect(not (out / "ran").exists(), "the user process ran during create")
    p = ctx.rt("start", cid)
    expect(p.rc == 0, f"start failed: {p.tail()}")
    ctx.wait_status(cid, "stopped")
    expect((out / "ran").exists(), "the user process did not run after start")


@check("state-running", "runtime.md#start")
def state_running(ctx: Ctx) -> None:
    """After start of a long process: status running, same pid."""
    cid = ctx.create_ok(ctx.config(LONG))
    pid = ctx.state(cid)["pid"]
    p = ctx.rt("start", cid)
    expect(p.rc == 0, f"start failed: {p.tail()}")
    st = ctx.state(cid)
    expect(st.get("status") == "running", f"status {st.get('status')!r}, expected 'running'")
    expect(st.get("pid") == pid, f"pid changed from {pid} to {st.get('pid')}")


@check("state-stopped", "runtime.md#lifecycle")
def state_stopped(ctx: Ctx) -> None:
    """When the process exits the status becomes stopped."""
    cid = ctx.create_ok(ctx.config("exit 3"))
    p = ctx.rt("start", cid)
    expect(p.rc == 0, f"start failed: {p.tail()}")
    ctx.wait_status(cid, "stopped")


@check("create-id-in-use", "runtime.md#create")
def create_id_in_use(ctx: Ctx) -> None:
    """create with an id already in use fails and leaves the first container alone."""
    cid = ctx.create_ok(ctx.config(LONG))
    before = ctx.state(cid)
    _, p = ctx.create(ctx.config(LONG), cid)
    expect(p.rc != 0, "second create with the same id succeeded")
    after = ctx.state(cid)
    expect(
        after.get("status") == "created" and after.get("pid") == before.get("pid"),
        f"first container changed: {before} -> {after}",
    )


@check("create-missing-config", "runtime.md#create")
def create_missing_config(ctx: Ctx) -> None:
    """create on a bundle without config.json fails and creates no container."""
    ctx.control(ctx.config("true"), "the missing config.json")
    b = ctx.tmp / "empty-bundle"
    b.mkdir()
    cid = ctx.new_id()
    ctx.ids.append(cid)
    p = ctx.rt("create", "--bundle", str(b), cid)
    expect(p.rc != 0, "create without config.json succeeded")
    expect(ctx.rt("state", cid).rc != 0, "a container exists after the failed create")


@check("create-error-leaves-nothing", "runtime.md#errors")
def create_error_leaves_nothing(ctx: Ctx) -> None:
    """A create that cannot apply the config (bind source missing) leaves no state or process."""
    ctx.control(ctx.config("true"), "the bind mount")
    cfg = ctx.config(LONG)
    cid = ctx.new_id()
    cfg["process"]["env"].append(f"CONFORMANCE_MARK={cid}")
    cfg["mounts"].append(
        {
            "destination": "/mnt",
            "type": "bind",
            "source": str(ctx.tmp / "does-not-exist"),
            "options": ["rbind"],
        }
    )
    _, p = ctx.create(cfg, cid)
    expect(p.rc != 0, "create with a missing bind-mount source succeeded")
    expect(ctx.rt("state", cid).rc != 0, "state still answers for the failed container")
    left = procs_with_env(f"CONFORMANCE_MARK={cid}")
    expect(not left, f"processes left behind by the failed create: {left}")


@check("start-twice", "runtime.md#start")
def start_twice(ctx: Ctx) -> None:
    """start of a running container fails and does not affect it."""
    cid = ctx.create_ok(ctx.config(LONG))
    expect(ctx.rt("start", cid).rc == 0, "first start failed")
    pid = ctx.state(cid).get("pid")
    p = ctx.rt("start", cid)
    expect(p.rc != 0, "second start succeeded")
    st = ctx.state(cid)
    expect(st.get("status") == "running" and st.get("pid") == pid, f"container changed: {st}")


@check("start-stopped", "runtime.md#start")
def start_stopped(ctx: Ctx) -> None:
    """start of a stopped container fails; it stays stopped."""
    cid = ctx.create_ok(ctx.config("true"))
    expect(ctx.rt("start", cid).rc == 0, "first start failed")
    ctx.wait_status(cid, "stopped")
    expect(ctx.rt("start", cid).rc != 0, "start of a stopped container succeeded")
    st = ctx.state(cid)
    expect(st.get("status") == "stopped", f"status became {st.get('status')!r}")


@check("start-no-process", "runtime.md#start")
def start_no_process(ctx: Ctx) -> None:
    """A config without process: create or start must generate an error."""
    cfg = ctx.config("true")
    ctx.control(cfg, "removing process")
    del cfg["process"]
    cid, p = ctx.create(cfg)
    if p.rc != 0:
        return
    expect(ctx.rt("start", cid).rc != 0, "start succeeded although process was not set")


def _unknown_id(op: str) -> None:
    def fn(ctx: Ctx) -> None:
        args = {"kill": ["kill", "nosuch-" + ctx.new_id(), "KILL"]}.get(
            op, [op, "nosuch-" + ctx.new_id()]
        )
        p = ctx.rt(*args)
        expect(p.rc != 0, f"`{op}` of a container that does not exist exited 0")

    section = {"state": "query-state"}.get(op, op)
    add(
        f"{op}-unknown-id",
        f"runtime.md#{section}",
        f"{op} of an unknown container id generates an error",
        fn,
    )


def _missing_id(op: str) -> None:
    def fn(ctx: Ctx) -> None:
        args = [op] if op != "create" else [op, "--bundle", str(ctx.bundle(ctx.config("true")))]
        p = ctx.rt(*args)
        expect(p.rc != 0, f"`{' '.join(args[:1])}` without a container id exited 0")

    section = {"state": "query-state"}.get(op, op)
    add(f"{op}-no-id", f"runtime.md#{section}", f"{op} without an id generates an error", fn)


for _op in ("state", "start", "kill", "delete"):
    _unknown_id(_op)
for _op in ("state", "create", "start", "kill", "delete"):
    _missing_id(_op)


@check("kill-created", "runtime.md#kill")
def kill_created(ctx: Ctx) -> None:
    """kill KILL of a created container stops it."""
    cid = ctx.create_ok(ctx.config(LONG))
    p = ctx.rt("kill", cid, "KILL")
    expect(p.rc == 0, f"kill of a created container failed: {p.tail()}")
    ctx.wait_status(cid, "stopped")


@check("kill-delivers-signal", "runtime.md#kill")
def kill_signal(ctx: Ctx) -> None:
    """kill USR1 reaches the container process (its trap writes a file)."""
    cfg = ctx.config(
        "trap 'echo usr1 > /out/sig; exit 0' USR1; echo up > /out/up; while :; do sleep 0.05; done"
    )
    out = ctx.outdir(cfg)
    cid = ctx.create_ok(cfg)
    expect(ctx.rt("start", cid).rc == 0, "start failed")
    deadline = time.monotonic() + 5
    while not (out / "up").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    p = ctx.rt("kill", cid, "USR1")
    expect(p.rc == 0, f"kill USR1 failed: {p.tail()}")
    ctx.wait_status(cid, "stopped")
    expect((out / "sig").exists(), "the process did not receive SIGUSR1")


@check("kill-stopped", "runtime.md#kill")
def kill_stopped(ctx: Ctx) -> None:
    """kill of a stopped container generates an error; it stays stopped."""
    cid = ctx.create_ok(ctx.config("true"))
    expect(ctx.rt("start", cid).rc == 0, "start failed")
    ctx.wait_status(cid, "stopped")
    expect(ctx.rt("kill", cid, "KILL").rc != 0, "kill of a stopped container exited 0")
    expect(ctx.state(cid).get("status") == "stopped", "status changed")


@check("delete-running", "runtime.md#delete")
def delete_running(ctx: Ctx) -> None:
    """delete (without force) of a running container fails and leaves it running."""
    cid = ctx.create_ok(ctx.config(LONG))
    expect(ctx.rt("start", cid).rc == 0, "start failed")
    expect(ctx.rt("delete", cid).rc != 0, "delete of a running container exited 0")
    st = ctx.state(cid)
    expect(st.get("status") == "running" and alive(st["pid"]), f"container changed: {st}")


@check("delete-created", "runtime.md#delete")
def delete_created(ctx: Ctx) -> None:
    """delete (without force) of a created (not stopped) container fails and leaves it."""
    cid = ctx.create_ok(ctx.config(LONG))
    pid = ctx.state(cid)["pid"]
    p = ctx.rt("delete", cid)
    expect(p.rc != 0, "delete of a created (not stopped) container exited 0 and deleted it")
    expect(ctx.state(cid).get("status") == "created" and alive(pid), "container changed")


@check("delete-stopped", "runtime.md#delete")
def delete_stopped(ctx: Ctx) -> None:
    """delete of a stopped container succeeds; the id is then unknown and reusable."""
    cid = ctx.create_ok(ctx.config("true"))
    expect(ctx.rt("start", cid).rc == 0, "start failed")
    ctx.wait_status(cid, "stopped")
    p = ctx.rt("delete", cid)
    expect(p.rc == 0, f"delete of a stopped container failed: {p.tail()}")
    expect(ctx.rt("state", cid).rc != 0, "state still answers after delete")
    _, p = ctx.create(ctx.config(LONG), cid)
    expect(p.rc == 0, f"id could not be reused after delete: {p.tail()}")


@check("delete-removes-resources", "runtime.md#delete")
def delete_resources(ctx: Ctx) -> None:
    """delete removes the cgroup the runtime created and kills nothing it did not create."""
    cfg = ctx.config(LONG)
    keep = ctx.tmp / "mine"
    keep.mkdir()
    (keep / "f").write_text("x")
    cfg["mounts"].append(
        {"destination": "/mnt", "type": "bind", "source": str(keep), "options": ["rbind", "rw"]}
    )
    cid = ctx.create_ok(cfg)
    pid = ctx.state(cid)["pid"]
    cg = host_cgroup_dir(pid, "pids")
    expect(ctx.rt("kill", cid, "KILL").rc == 0, "kill failed")
    ctx.wait_status(cid, "stopped")
    p = ctx.rt("delete", cid)
    expect(p.rc == 0, f"delete failed: {p.tail()}")
    if cg != Path("/sys/fs/cgroup/pids"):  # the runtime made a cgroup of its own
        expect(not cg.exists(), f"cgroup {cg} still exists after delete")
    expect(
        (keep / "f").read_text() == "x",
        "a bind-mount source (not created by the container) was deleted or changed",
    )


@check("config-change-after-create", "runtime.md#lifecycle")
def config_change(ctx: Ctx) -> None:
    """Editing config.json after create does not affect the container."""
    cfg = ctx.config("echo original > /out/o")
    out = ctx.outdir(cfg)
    cid = ctx.create_ok(cfg)
    cfg["process"]["args"] = ["sh", "-c", "echo changed > /out/o"]
    (ctx.last_bundle / "config.json").write_text(json.dumps(cfg))
    expect(ctx.rt("start", cid).rc == 0, "start failed")
    ctx.wait_status(cid, "stopped")
    got = (out / "o").read_text().strip() if (out / "o").exists() else "<nothing>"
    expect(got == "original", f"the process wrote {got!r}, expected 'original'")
