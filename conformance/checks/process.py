"""config.md: process, user, root, hostname/domainname, version, extensibility."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from conformance.checks.util import fields
from conformance.harness import Ctx
from conformance.registry import check, expect

# capabilities(7) numbering, index = bit.
CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]


def capmask(names: list[str]) -> int:
    return sum(1 << CAPS.index(n) for n in names)


def capnames(mask: int) -> list[str]:
    return [n for i, n in enumerate(CAPS) if mask >> i & 1]


@check("process-args", "config.md#process")
def process_args(ctx: Ctx) -> None:
    """args run like execvp: args[0] looked up in PATH, the rest passed verbatim."""
    cfg = ctx.config()
    cfg["process"]["args"] = ["echo", "a b", "c"]
    out = ctx.run_ok(cfg)
    expect(out.strip() == "a b c", f"output {out.strip()!r}, expected 'a b c'")


@check("process-env", "config.md#process")
def process_env(ctx: Ctx) -> None:
    """env entries reach the process."""
    cfg = ctx.config('echo "$CONF_A|$CONF_B"')
    cfg["process"]["env"] += ["CONF_A=1", "CONF_B=x=y z"]
    out = ctx.run_ok(cfg).strip()
    expect(out == "1|x=y z", f"process saw {out!r}, expected '1|x=y z'")


@check("process-cwd", "config.md#process")
def process_cwd(ctx: Ctx) -> None:
    """cwd is the working directory of the process."""
    cfg = ctx.config("pwd -P")
    cfg["process"]["cwd"] = "/etc"
    out = ctx.run_ok(cfg).strip()
    expect(out == "/etc", f"cwd is {out!r}, expected '/etc'")


@check("process-user", "config.md#posix-platform-user")
def process_user(ctx: Ctx) -> None:
    """uid, gid and additionalGids are all applied."""
    cfg = ctx.config("grep -E '^(Uid|Gid|Groups):' /proc/self/status")
    cfg["process"]["user"] = {"uid": 1234, "gid": 2345, "additionalGids": [5, 100]}
    f = fields(ctx.run_ok(cfg))
    expect(f.get("Uid", "").split() == ["1234"] * 4, f"Uid: {f.get('Uid')!r}, expected 1234")
    expect(f.get("Gid", "").split() == ["2345"] * 4, f"Gid: {f.get('Gid')!r}, expected 2345")
    groups = set(f.get("Groups", "").split())
    expect(
        {"5", "100"} <= groups and groups <= {"5", "100", "2345"},
        f"Groups: {sorted(groups)}, expected 5 and 100",
    )


@check("process-umask", "config.md#posix-platform-user")
def process_umask(ctx: Ctx) -> None:
    """umask is applied to the process."""
    cfg = ctx.config("umask")
    cfg["process"]["user"]["umask"] = 0o27
    out = ctx.run_ok(cfg).strip()
    expect(out.lstrip("0") == "27", f"umask {out!r}, expected 0027")


@check("process-rlimits", "config.md#posix-process")
def process_rlimits(ctx: Ctx) -> None:
    """getrlimit for each configured type matches soft and hard."""
    cfg = ctx.config("cat /proc/self/limits")
    cfg["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
        {"type": "RLIMIT_MSGQUEUE", "soft": 4096, "hard": 8192},
    ]
    out = ctx.run_ok(cfg)
    lines = {ln[:26].strip(): ln[26:].split() for ln in out.splitlines()}
    for name, soft, hard in (
        ("Max open files", "321", "654"),
        ("Max core file size", "0", "4096"),
        ("Max msgqueue size", "4096", "8192"),
    ):
        got = lines.get(name, [])[:2]
        expect(got == [soft, hard], f"{name}: {got}, expected [{soft}, {hard}]")


@check("process-rlimits-invalid", "config.md#posix-process")
def rlimits_invalid(ctx: Ctx) -> None:
    """An rlimit type the kernel does not know generates an error."""
    cfg = ctx.config("true")
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100}]
    ctx.control(cfg, "the unknown rlimit")
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_CONFORMANCE", "soft": 1, "hard": 1}]
    expect(ctx.run(cfg).rc != 0, "run succeeded with rlimit type RLIMIT_CONFORMANCE")


@check("process-rlimits-duplicate", "config.md#posix-process")
def rlimits_duplicate(ctx: Ctx) -> None:
    """Duplicated rlimit types generate an error."""
    cfg = ctx.config("true")
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100}]
    ctx.control(cfg, "the duplicate")
    cfg["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100},
        {"type": "RLIMIT_NOFILE", "soft": 200, "hard": 200},
    ]
    expect(ctx.run(cfg).rc != 0, "run succeeded with RLIMIT_NOFILE listed twice")


def _caps_check(
    ctx: Ctx, uid: int, sets: dict[str, list[str]], expected: dict[str, list[str]]
) -> None:
    cfg = ctx.config("grep ^Cap /proc/self/status")
    cfg["process"]["capabilities"] = sets
    cfg["process"]["user"] = {"uid": uid, "gid": uid}
    f = fields(ctx.run_ok(cfg))
    for key, set_name in (
        ("CapBnd", "bounding"),
        ("CapPrm", "permitted"),
        ("CapEff", "effective"),
        ("CapInh", "inheritable"),
        ("CapAmb", "ambient"),
    ):
        got = int(f.get(key, "0"), 16)
        want = expected[set_name]
        expect(got == capmask(want), f"uid {uid}: {key} = {capnames(got)}, expected {want}")


@check("process-capabilities", "config.md#linux-process")
def process_caps(ctx: Ctx) -> None:
    """uid 0: the five capability sets are exactly as configured."""
    # Sets chosen so that execve as root keeps them unchanged (permitted = bounding).
    sets = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_CHROOT"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_CHROOT"],
        "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_CHROOT"],
        "inheritable": ["CAP_KILL", "CAP_NET_RAW"],
        "ambient": ["CAP_KILL"],
    }
    _caps_check(ctx, 0, sets, sets)


@check("process-capabilities-nonroot", "config.md#linux-process")
def process_caps_nonroot(ctx: Ctx) -> None:
    """uid 1000: bounding/inheritable/ambient as configured; ambient gives permitted+effective."""
    sets = {
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_SETPCAP"],
        "permitted": ["CAP_CHOWN", "CAP_KILL"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "inheritable": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "ambient": ["CAP_CHOWN", "CAP_KILL"],
    }
    _caps_check(ctx, 1000, sets, sets)


@check("process-capabilities-empty", "config.md#linux-process")
def caps_empty(ctx: Ctx) -> None:
    """Empty capability sets leave the process with no capabilities at all."""
    cfg = ctx.config("grep ^Cap /proc/self/status")
    cfg["process"]["capabilities"] = {
        k: [] for k in ("bounding", "permitted", "effective", "inheritable")
    }
    f = fields(ctx.run_ok(cfg))
    for key in ("CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb"):
        got = int(f.get(key, "-1"), 16)
        expect(got == 0, f"{key} = {capnames(got) if got > 0 else got}, expected none")


@check("process-no-new-privileges", "config.md#linux-process")
def nnp(ctx: Ctx) -> None:
    """noNewPrivileges true sets no_new_privs; false leaves it clear."""
    for value, want in ((True, "1"), (False, "0")):
        cfg = ctx.config("grep ^NoNewPrivs /proc/self/status")
        cfg["process"]["noNewPrivileges"] = value
        got = fields(ctx.run_ok(cfg)).get("NoNewPrivs")
        expect(got == want, f"noNewPrivileges {value}: NoNewPrivs is {got!r}, expected {want}")


@check("process-oom-score-adj", "config.md#linux-process")
def oom_score_adj(ctx: Ctx) -> None:
    """oomScoreAdj set: /proc/self/oom_score_adj has it; unset: the runtime's value is kept."""
    cfg = ctx.config("cat /proc/self/oom_score_adj")
    cfg["process"]["oomScoreAdj"] = 123
    got = ctx.run_ok(cfg).strip()
    expect(got == "123", f"oom_score_adj is {got!r}, expected 123")
    mine = Path("/proc/self/oom_score_adj").read_text().strip()
    got = ctx.run_ok(ctx.config("cat /proc/self/oom_score_adj")).strip()
    expect(got == mine, f"oomScoreAdj unset: oom_score_adj is {got!r}, the runtime's is {mine}")


@check("process-terminal", "config.md#process")
def terminal(ctx: Ctx) -> None:
    """terminal true: the process's stdio is a terminal (run in the foreground)."""
    ctx.need_probe()
    cfg = ctx.config("probe tty")
    cfg["process"]["terminal"] = True
    p = ctx.run(cfg, tty=True)
    expect(p.rc == 0, f"run with terminal true failed (exit {p.rc}): {p.tail()}")
    out = p.out
    expect("tty=1/1/1" in out, f"probe saw {out.strip()!r}, expected tty=1/1/1")


@check("process-scheduler", "config.md#linux-process")
def scheduler(ctx: Ctx) -> None:
    """scheduler policy SCHED_BATCH with nice 5 is applied."""
    ctx.need_probe()
    cfg = ctx.config("probe sched")
    cfg["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 5}
    f = fields(ctx.run_ok(cfg).replace(" ", "\n"))
    expect(f.get("policy") == "3", f"policy {f.get('policy')!r}, expected 3 (SCHED_BATCH)")
    expect(f.get("nice") == "5", f"nice {f.get('nice')!r}, expected 5")


@check("process-io-priority", "config.md#linux-process")
def io_priority(ctx: Ctx) -> None:
    """ioPriority class IOPRIO_CLASS_BE priority 6 is applied."""
    ctx.need_probe()
    cfg = ctx.config("probe ioprio")
    cfg["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    f = fields(ctx.run_ok(cfg).replace(" ", "\n"))
    expect(
        (f.get("class"), f.get("prio")) == ("2", "6"),
        f"ioprio class={f.get('class')} prio={f.get('prio')}, expected class=2 prio=6",
    )


@check("root-readonly", "config.md#root")
def root_readonly(ctx: Ctx) -> None:
    """root.readonly true: writing under / fails with EROFS."""
    cfg = ctx.config("touch /conformance-ro 2>&1; echo rc=$?")
    cfg["root"]["readonly"] = True
    out = ctx.run_ok(cfg)
    expect("rc=0" not in out, "a file could be created in a read-only root")
    expect("Read-only" in out, f"touch failed but not with EROFS: {out.strip()!r}")


@check("root-readwrite", "config.md#root")
def root_readwrite(ctx: Ctx) -> None:
    """root.readonly false: the root filesystem is writable."""
    name = f"conformance-rw-{os.getpid()}-{ctx.new_id()[-6:]}"
    cfg = ctx.config(f"touch /{name} && rm /{name} && echo ok")
    cfg["root"]["readonly"] = False
    out = ctx.run_ok(cfg)
    expect("ok" in out, f"writing / failed: {out.strip()!r}")


@check("root-path-relative", "config.md#root")
def root_relative(ctx: Ctx) -> None:
    """A relative root.path is taken relative to the bundle."""
    cfg = ctx.config("echo relative-ok")
    bundle = ctx.bundle(cfg)
    shutil.copytree(ctx.rootfs, bundle / "myroot", symlinks=True, copy_function=os.link)
    cfg["root"]["path"] = "myroot"
    (bundle / "config.json").write_text(json.dumps(cfg))
    cid = ctx.new_id()
    ctx.ids.append(cid)
    p = ctx.rt("run", "--bundle", str(bundle), cid)
    expect(p.rc == 0 and "relative-ok" in p.out, f"run failed: {p.tail()}")


@check("hostname", "config.md#hostname")
def hostname(ctx: Ctx) -> None:
    """hostname is set in the container's UTS namespace."""
    cfg = ctx.config("hostname")
    cfg["hostname"] = "conf-host-1"
    out = ctx.run_ok(cfg).strip()
    expect(out == "conf-host-1", f"hostname {out!r}, expected 'conf-host-1'")


@check("domainname", "config.md#domainname")
def domainname(ctx: Ctx) -> None:
    """domainname is set in the container's UTS namespace."""
    cfg = ctx.config("cat /proc/sys/kernel/domainname")
    cfg["domainname"] = "conformance.test"
    out = ctx.run_ok(cfg).strip()
    expect(out == "conformance.test", f"domainname {out!r}, expected 'conformance.test'")


@check("oci-version-current", "config.md#specification-version")
def oci_version(ctx: Ctx) -> None:
    """A config declaring ociVersion 1.3.0 (the spec under test) is accepted."""
    cfg = ctx.config("echo ok")
    cfg["ociVersion"] = "1.3.0"
    p = ctx.run(cfg)
    expect(p.rc == 0 and "ok" in p.out, f"ociVersion 1.3.0 refused: {p.tail()}")


@check("unknown-properties-ignored", "config.md#extensibility")
def unknown_props(ctx: Ctx) -> None:
    """Unknown properties and annotation keys are ignored."""
    cfg = ctx.config("echo ok")
    cfg["conformanceUnknown"] = {"a": 1}
    cfg["process"]["conformanceUnknown"] = True
    cfg["linux"]["conformanceUnknown"] = [1, 2]
    cfg["annotations"] = {"org.example.conformance.unknown": "x"}
    p = ctx.run(cfg)
    expect(p.rc == 0 and "ok" in p.out, f"unknown properties were not ignored: {p.tail()}")


@check("invalid-value-error", "config.md#valid-values")
def invalid_value(ctx: Ctx) -> None:
    """An invalid value (namespace type 'conformance') generates an error."""
    cfg = ctx.config("true")
    ctx.control(cfg, "the invalid namespace")
    cfg["linux"]["namespaces"].append({"type": "conformance"})
    expect(ctx.run(cfg).rc != 0, "run succeeded with namespace type 'conformance'")


@check("root-path-missing", "config.md#root")
def root_missing(ctx: Ctx) -> None:
    """A root.path with no directory behind it generates an error."""
    cfg = ctx.config("true")
    ctx.control(cfg, "the missing root")
    cfg["root"]["path"] = str(ctx.tmp / "no-such-rootfs")
    expect(ctx.run(cfg).rc != 0, "run succeeded with a root.path that does not exist")


@check("process-console-size-ignored", "config.md#process")
def console_size(ctx: Ctx) -> None:
    """consoleSize is ignored when terminal is false."""
    cfg = ctx.config("echo ok")
    cfg["process"]["consoleSize"] = {"height": 24, "width": 80}
    p = ctx.run(cfg)
    expect(p.rc == 0 and "ok" in p.out, f"consoleSize without terminal was not ignored: {p.tail()}")


@check("process-console-size", "config.md#process")
def console_size_tty(ctx: Ctx) -> None:
    """With terminal true, consoleSize sets the terminal's rows and columns."""
    cfg = ctx.config("stty size")
    cfg["process"]["terminal"] = True
    cfg["process"]["consoleSize"] = {"height": 31, "width": 97}
    p = ctx.run(cfg, tty=True)
    expect(p.rc == 0, f"run with terminal true failed (exit {p.rc}): {p.tail()}")
    expect("31 97" in p.out, f"stty size says {p.out.strip()!r}, expected '31 97'")
