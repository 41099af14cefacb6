"""OCI `linux.seccomp` -> classic-BPF seccomp filter, and its installation.

Decision: we generate the BPF program ourselves in pure Python instead of using
libseccomp. Its Python binding is not on PyPI as a maintained wheel and would
need a C build; the filter language we need is small and every path here is
tested against the real kernel (tests/integration/test_seccomp_kernel.py).

Program shape (mirrors libseccomp/runc semantics where reasonable):

* Architecture check first. The native arch (x86_64) is always in the filter,
  plus SCMP_ARCH_X86 and SCMP_ARCH_X32 when listed. x32 shares
  AUDIT_ARCH_X86_64 and is told apart by the 0x40000000 bit in the syscall
  number; without SCMP_ARCH_X32 such numbers get the bad-arch action.
  Listed arches we have no table for (arm, mips, ...) are skipped; they cannot
  run on this host anyway.
* Bad-arch action: libseccomp defaults to SCMP_ACT_KILL; we use
  SECCOMP_RET_KILL_PROCESS so a multi-threaded process never survives
  half-killed.
* Per syscall number, rules are tried in config order; the first rule whose
  argument conditions all hold decides. No rule matching -> defaultAction.
  Like runc, several conditions on the SAME argument index are OR-ed (each
  becomes its own rule), otherwise the conditions of a rule are AND-ed.
* Syscall names unknown to an arch's table are skipped, like runc.
* 64-bit arguments are compared as hi/lo 32-bit words on x86_64; on the
  32-bit ABIs (x86, x32) only the low word is compared, as libseccomp does.
* Jumps: a syscall whose rule has no conditions is `JEQ nr ? RET action`;
  one with conditions is `JEQ nr ? JA body` with the body after the default
  RET, so no conditional jump ever spans more than a rule body (< 256).
* SCMP_ACT_NOTIFY: refused as defaultAction and for `write` (as runc/youki do:
  the init would block on its own syscalls before the agent has the fd).
  install() then adds SECCOMP_FILTER_FLAG_NEW_LISTENER (plus TSYNC_ESRCH when
  TSYNC is asked for) and returns the listener fd; send_listener() hands it to
  the agent. WAIT_KILLABLE_RECV is dropped without a listener (the kernel
  rejects it) and retried without on kernels that lack it.

Not done: runc's patchbpf -ENOSYS stub for syscalls newer than the profile;
syscall tables for other host arches (aarch64 hosts get a ConfigError).
"""

from __future__ import annotations

import errno as _errno
import posix  # not os: create's parent imports this (pyrunc.posixfs)
import struct

from pyrunc.errors import ConfigError, PyruncError
from pyrunc.linux import cdata
from pyrunc.linux import syscalls_x86_64 as _tables

TYPE_CHECKING = False  # typing and dataclasses cost ~15 ms to import: plain classes here
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

_WHERE = "config.json: linux.seccomp"

# BPF opcodes (linux/bpf_common.h)
BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
BPF_ALU_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
BPF_JA = 0x05  # BPF_JMP | BPF_JA
BPF_JEQ_K = 0x15
BPF_JGT_K = 0x25
BPF_JGE_K = 0x35
BPF_RET_K = 0x06

# seccomp return values (linux/seccomp.h)
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_USER_NOTIF = 0x7FC00000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000

ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": RET_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": RET_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS,
    "SCMP_ACT_TRAP": RET_TRAP,
    "SCMP_ACT_ERRNO": RET_ERRNO,
    "SCMP_ACT_TRACE": RET_TRACE,
    "SCMP_ACT_ALLOW": RET_ALLOW,
    "SCMP_ACT_LOG": RET_LOG,
    "SCMP_ACT_NOTIFY": RET_USER_NOTIF,
}
_WITH_ERRNO = {"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"}
OPERATORS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ",
             "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")

# seccomp(2)
SYS_SECCOMP_X86_64 = 317
SECCOMP_SET_MODE_FILTER = 1
FLAG_TSYNC = 1
FLAG_LOG = 2
FLAG_SPEC_ALLOW = 4
FLAG_NEW_LISTENER = 8
FLAG_TSYNC_ESRCH = 16
FLAG_WAIT_KILLABLE_RECV = 32
FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": FLAG_WAIT_KILLABLE_RECV,
}

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
X32_SYSCALL_BIT = 0x40000000

KNOWN_ARCHES = frozenset({
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
})

# offsets in struct seccomp_data (little endian)
_OFF_NR = 0
_OFF_ARCH = 4


def _arg_lo(i: int) -> int:
    return 16 + 8 * i


def _arg_hi(i: int) -> int:
    return 20 + 8 * i


MAX_INSNS = 4096  # BPF_MAXINSNS


# --------------------------------------------------------------------------- validation

def _uint(v: Any, field: str, bits: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < (1 << bits):
        raise ConfigError(f"{_WHERE}.{field}: must be an unsigned {bits}-bit integer, got {v!r}")
    return v


def _ret_value(action: Any, errno_ret: Any, field: str, errno_field: str) -> int:
    if action not in ACTIONS:
        raise ConfigError(f"{_WHERE}.{field}: unknown action {action!r}")
    ret = ACTIONS[action]
    if action in _WITH_ERRNO:
        code = _errno.EPERM if errno_ret is None else _uint(errno_ret, errno_field, 16)
        return ret | code
    if errno_ret is not None:
        raise ConfigError(f"{_WHERE}.{errno_field}: only valid with "
                          f"SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {action}")
    return ret


class _Cond:
    __slots__ = ("index", "op", "value", "value_two")

    def __init__(self, index: int, op: str, value: int, value_two: int) -> None:
        self.index, self.op, self.value, self.value_two = index, op, value, value_two


class _Rule:
    __slots__ = ("names", "ret", "alternatives")

    def __init__(self, names: tuple[str, ...], ret: int,
                 alternatives: tuple[tuple[_Cond, ...], ...]) -> None:
        self.names = names
        self.ret = ret
        # OR of ANDs; () never happens, ((),) = always
        self.alternatives = alternatives


class _Parsed:
    __slots__ = ("default", "arches", "flags", "rules", "notify")

    def __init__(self, default: int, arches: tuple[str, ...], flags: int,
                 rules: tuple[_Rule, ...], notify: bool) -> None:
        self.default, self.arches, self.flags = default, arches, flags
        self.rules, self.notify = rules, notify


def _parse(cfg: dict[str, Any]) -> _Parsed:
    if not isinstance(cfg, dict):
        raise ConfigError(f"{_WHERE}: must be an object")
    default_action = cfg.get("defaultAction")
    if default_action is None:
        raise ConfigError(f"{_WHERE}.defaultAction: missing")
    default = _ret_value(default_action, cfg.get("defaultErrnoRet"), "defaultAction",
                         "defaultErrnoRet")
    if default_action == "SCMP_ACT_NOTIFY":
        # like runc/youki: the init's own writes would wait for an agent it has not told yet
        raise ConfigError(f"{_WHERE}.defaultAction: SCMP_ACT_NOTIFY cannot be the default action")
    if cfg.get("listenerMetadata") is not None and not cfg.get("listenerPath"):
        raise ConfigError(f"{_WHERE}.listenerMetadata: must not be set without listenerPath")
    notify = False
    arches = []
    for i, a in enumerate(cfg.get("architectures") or []):
        if a not in KNOWN_ARCHES:
            raise ConfigError(f"{_WHERE}.architectures[{i}]: unknown architecture {a!r}")
        arches.append(a)
    flags = 0
    for i, f in enumerate(cfg.get("flags") or []):
        if f not in FLAGS:
            raise ConfigError(f"{_WHERE}.flags[{i}]: unknown flag {f!r}")
        flags |= FLAGS[f]
    rules = []
    for i, sc in enumerate(cfg.get("syscalls") or []):
        field = f"syscalls[{i}]"
        if not isinstance(sc, dict):
            raise ConfigError(f"{_WHERE}.{field}: must be an object")
        names = sc.get("names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{_WHERE}.{field}.names: must be a non-empty list of strings")
        action = sc.get("action")
        if action not in ACTIONS:
            raise ConfigError(f"{_WHERE}.{field}.action: unknown action {action!r}")
        ret = _ret_value(action, sc.get("errnoRet"), f"{field}.action", f"{field}.errnoRet")
        if action == "SCMP_ACT_NOTIFY":
            notify = True
            if "write" in names:
                raise ConfigError(f"{_WHERE}.{field}.action: SCMP_ACT_NOTIFY cannot be used "
                                  "for the write syscall")
        conds = []
        for j, a in enumerate(sc.get("args") or []):
            af = f"{field}.args[{j}]"
            if not isinstance(a, dict):
                raise ConfigError(f"{_WHERE}.{af}: must be an object")
            index = a.get("index")
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 5:
                raise ConfigError(f"{_WHERE}.{af}.index: must be 0..5, got {index!r}")
            op = a.get("op")
            if op not in OPERATORS:
                raise ConfigError(f"{_WHERE}.{af}.op: unknown operator {op!r}")
            value = _uint(a.get("value"), af + ".value", 64)
            value_two = _uint(a.get("valueTwo", 0), af + ".valueTwo", 64)
            conds.append(_Cond(index, op, value, value_two))
        indexes = [c.index for c in conds]
        if len(set(indexes)) != len(indexes):
            alternatives: tuple[tuple[_Cond, ...], ...] = tuple((c,) for c in conds)  # OR (runc)
        else:
            alternatives = (tuple(conds),)
        rules.append(_Rule(tuple(names), ret, alternatives))
    return _Parsed(default, tuple(arches), flags, tuple(rules), notify)


def validate(cfg: dict[str, Any]) -> None:
    """Raise ConfigError for unknown actions/operators/flags/arches or bad values."""
    _parse(cfg)


def uses_notify(cfg: dict[str, Any]) -> bool:
    """True when any rule's action is SCMP_ACT_NOTIFY (install() then returns an fd)."""
    return _parse(cfg).notify


# --------------------------------------------------------------------------- assembler

class _Label:
    """A jump target; its position is fixed when the label is placed."""

    pos: int | None = None


Target = int | _Label  # int = relative skip count (as in raw BPF)


class _Insn:
    __slots__ = ("code", "k", "jt", "jf")

    def __init__(self, code: int, k: int, jt: Target = 0, jf: Target = 0) -> None:
        self.code, self.k, self.jt, self.jf = code, k, jt, jf


class _Asm:
    def __init__(self) -> None:
        self.insns: list[_Insn] = []

    def place(self, label: _Label) -> None:
        label.pos = len(self.insns)

    def ld(self, off: int) -> None:
        self.insns.append(_Insn(BPF_LD_W_ABS, off))

    def and_(self, k: int) -> None:
        self.insns.append(_Insn(BPF_ALU_AND_K, k))

    def jmp(self, code: int, k: int, jt: Target, jf: Target) -> None:
        self.insns.append(_Insn(code, k, jt, jf))

    def ja(self, target: _Label) -> None:
        self.insns.append(_Insn(BPF_JA, 0, target, 0))

    def ret(self, k: int) -> None:
        self.insns.append(_Insn(BPF_RET_K, k))

    def assemble(self) -> bytes:
        if len(self.insns) > MAX_INSNS:
            raise ConfigError(f"{_WHERE}: filter needs {len(self.insns)} BPF instructions, "
                              f"the kernel allows {MAX_INSNS}")
        out = bytearray()
        for pc, ins in enumerate(self.insns):
            if ins.code == BPF_JA:
                assert isinstance(ins.jt, _Label) and ins.jt.pos is not None
                out += struct.pack("<HBBI", ins.code, 0, 0, ins.jt.pos - pc - 1)
                continue
            jt, jf = (self._rel(pc, t) for t in (ins.jt, ins.jf))
            out += struct.pack("<HBBI", ins.code, jt, jf, ins.k & 0xFFFFFFFF)
        return bytes(out)

    @staticmethod
    def _rel(pc: int, t: Target) -> int:
        if isinstance(t, int):
            return t
        assert t.pos is not None, "label never placed"
        off = t.pos - pc - 1
        if not 0 <= off <= 255:
            # bodies are bounded by one rule; this is a generator bug, not a config error
            raise AssertionError(f"BPF jump offset {off} out of range")
        return off


# --------------------------------------------------------------------------- generator

def _emit_cond(asm: _Asm, c: _Cond, fail: _Label, wide: bool) -> None:
    """Fall through when the condition holds, jump to `fail` when it does not."""
    ok = _Label()
    lo_v, hi_v = c.value & 0xFFFFFFFF, c.value >> 32
    lo_2, hi_2 = c.value_two & 0xFFFFFFFF, c.value_two >> 32
    lo, hi = _arg_lo(c.index), _arg_hi(c.index)
    if c.op == "SCMP_CMP_MASKED_EQ":
        if wide:
            asm.ld(hi)
            asm.and_(hi_v)
            asm.jmp(BPF_JEQ_K, hi_2, 0, fail)
        asm.ld(lo)
        asm.and_(lo_v)
        asm.jmp(BPF_JEQ_K, lo_2, 0, fail)
        return
    if c.op in ("SCMP_CMP_EQ", "SCMP_CMP_NE"):
        eq = c.op == "SCMP_CMP_EQ"
        if wide:
            asm.ld(hi)
            asm.jmp(BPF_JEQ_K, hi_v, 0, fail if eq else ok)
        asm.ld(lo)
        asm.jmp(BPF_JEQ_K, lo_v, 0 if eq else fail, fail if eq else 0)
        asm.place(ok)
        return
    # ordered compares: decide on the high word unless equal, then on the low word
    greater = c.op in ("SCMP_CMP_GT", "SCMP_CMP_GE")
    if wide:
        asm.ld(hi)
        asm.jmp(BPF_JGT_K, hi_v, ok if greater else fail, 0)
        asm.jmp(BPF_JEQ_K, hi_v, 0, fail if greater else ok)
    asm.ld(lo)
    if c.op == "SCMP_CMP_GT":
        asm.jmp(BPF_JGT_K, lo_v, 0, fail)
    elif c.op == "SCMP_CMP_GE":
        asm.jmp(BPF_JGE_K, lo_v, 0, fail)
    elif c.op == "SCMP_CMP_LT":
        asm.jmp(BPF_JGE_K, lo_v, fail, 0)
    else:  # LE
        asm.jmp(BPF_JGT_K, lo_v, fail, 0)
    asm.place(ok)


def _group(p: _Parsed, table: dict[str, int]) -> dict[int, list[_Rule]]:
    """Syscall number -> its rules in config order; unknown names are skipped."""
    by_nr: dict[int, list[_Rule]] = {}
    for rule in p.rules:
        for name in dict.fromkeys(rule.names):
            nr = table.get(name)
            if nr is not None:
                by_nr.setdefault(nr, []).append(rule)
    return by_nr


def _emit_section(asm: _Asm, p: _Parsed, table: dict[str, int], wide: bool,
                  x32_check: _Label | None | bool) -> None:
    """Code for one ABI, entered with nothing in A. Ends in RET on every path."""
    asm.ld(_OFF_NR)
    if x32_check is not None:
        # x86_64 section: numbers with the x32 bit are x32 syscalls
        if isinstance(x32_check, _Label):
            asm.jmp(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1)
            asm.ja(x32_check)  # sections are long: only JA reaches them
        else:
            asm.jmp(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1)
            asm.ret(RET_KILL_PROCESS)
    by_nr = _group(p, table)
    bodies: list[tuple[_Label, list[_Rule]]] = []
    for nr, rules in by_nr.items():
        first = rules[0]
        if first.alternatives == ((),):
            asm.jmp(BPF_JEQ_K, nr, 0, 1)
            asm.ret(first.ret)
        else:
            body = _Label()
            asm.jmp(BPF_JEQ_K, nr, 0, 1)
            asm.ja(body)
            bodies.append((body, rules))
    asm.ret(p.default)
    for body, rules in bodies:
        asm.place(body)
        for rule in rules:
            for alt in rule.alternatives:
                nxt = _Label()
                for c in alt:
                    _emit_cond(asm, c, nxt, wide)
                asm.ret(rule.ret)
                asm.place(nxt)
                if not alt:
                    break
            if rule.alternatives == ((),):
                break  # unconditional rule: later rules are unreachable
        else:
            asm.ret(p.default)


def _compile(p: _Parsed, arch: str) -> bytes:
    if arch != "x86_64":
        raise ConfigError(f"{_WHERE}: seccomp is only supported on x86_64 hosts, not {arch}")
    want_x86 = "SCMP_ARCH_X86" in p.arches
    want_x32 = "SCMP_ARCH_X32" in p.arches
    asm = _Asm()
    sec64, sec32, secx32 = _Label(), _Label(), _Label()
    asm.ld(_OFF_ARCH)
    asm.jmp(BPF_JEQ_K, AUDIT_ARCH_X86_64, 0, 1)
    asm.ja(sec64)
    if want_x86:
        asm.jmp(BPF_JEQ_K, AUDIT_ARCH_I386, 0, 1)
        asm.ja(sec32)  # sections are long: only JA reaches them
    asm.ret(RET_KILL_PROCESS)  # arch not in the filter
    asm.place(sec64)
    _emit_section(asm, p, _tables.X86_64, True, secx32 if want_x32 else False)
    if want_x32:
        asm.place(secx32)
        _emit_section(asm, p, _tables.X32, False, None)
    if want_x86:
        asm.place(sec32)
        _emit_section(asm, p, _tables.X86, False, None)
    return asm.assemble()


def native_arch() -> str:
    return posix.uname().machine


def compile_filter(cfg: dict[str, Any], arch: str | None = None) -> bytes:
    """linux.seccomp -> the raw `struct sock_filter[]` bytes (8 bytes per insn)."""
    return _compile(_parse(cfg), arch or native_arch())


# --------------------------------------------------------------------------- install

class _SockFprog(cdata.Structure):
    _fields_ = [("len", cdata.c_ushort), ("filter", cdata.c_void_p)]


_libc = cdata.CDLL()
_libc.syscall.restype = cdata.c_long


def _seccomp(flags: int, program: bytes) -> int:
    buf = cdata.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, cdata.addressof(buf))
    rc = _libc.syscall(cdata.c_long(SYS_SECCOMP_X86_64), cdata.c_ulong(SECCOMP_SET_MODE_FILTER),
                       cdata.c_ulong(flags), cdata.byref(prog))
    if rc < 0:
        err = cdata.get_errno()
        raise OSError(err, f"seccomp(SECCOMP_SET_MODE_FILTER, flags={flags:#x}): "
                           f"{posix.strerror(err)}")
    return int(rc)


def install_flags(cfg: dict[str, Any]) -> int:
    """The seccomp(2) flags install() starts with (before kernel-support fallbacks)."""
    p = _parse(cfg)
    flags = p.flags
    if p.notify:
        flags |= FLAG_NEW_LISTENER
        if flags & FLAG_TSYNC:
            flags |= FLAG_TSYNC_ESRCH  # TSYNC alone cannot return a listener fd
    else:
        flags &= ~FLAG_WAIT_KILLABLE_RECV  # only meaningful (and valid) with a listener
    return flags


def install(cfg: dict[str, Any], program: bytes | None = None) -> int | None:
    """Load the filter into the calling thread; return the notify listener fd or None.
    `program`: compile_filter(cfg), if the caller has it already.

    prctl(PR_SET_NO_NEW_PRIVS) is the caller's job (or have CAP_SYS_ADMIN). Must be
    the last thing before execve: afterwards every syscall is filtered.
    """
    if program is None:
        program = compile_filter(cfg)
    flags = install_flags(cfg)
    try:
        try:
            fd = _seccomp(flags, program)
        except OSError as e:
            if e.errno != _errno.EINVAL or not flags & FLAG_WAIT_KILLABLE_RECV:
                raise
            # kernels before 5.19 lack WAIT_KILLABLE_RECV: "where the kernel has it"
            flags &= ~FLAG_WAIT_KILLABLE_RECV
            fd = _seccomp(flags, program)
    except OSError as e:
        raise PyruncError(f"linux.seccomp: loading the filter failed: {e.strerror}") from e
    return fd if flags & FLAG_NEW_LISTENER else None


def send_listener(listener_path: str, notify_fd: int, state: dict[str, Any],
                  metadata: str = "", pid: int | None = None) -> None:
    """Send the OCI containerProcessState with the listener fd (SCM_RIGHTS) to an
    agent. pid is the process the filter belongs to (exec's), else init's."""
    import json  # only the NOTIFY path needs these
    import socket

    msg = {
        "ociVersion": state.get("ociVersion", "1.3.0"),
        "fds": ["seccompFd"],
        "pid": pid if pid is not None else state.get("pid", 0),
        "metadata": metadata,
        "state": state,
    }
    data = json.dumps(msg).encode()
    fds: Sequence[int] = [notify_fd]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(listener_path)
            sent = socket.send_fds(s, [data], fds)
            if sent < len(data):  # a short first write must not truncate the JSON
                s.sendall(data[sent:])
    except OSError as e:
        raise PyruncError(f"linux.seccomp.listenerPath {listener_path}: "
                          f"{e.strerror or e}") from e
