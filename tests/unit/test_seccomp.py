"""Unit tests of the seccomp BPF generator, run through a small cBPF interpreter.

The interpreter only knows the opcodes the generator may emit, so an unexpected
opcode fails loudly; the kernel tests cross-check the same semantics for real.
"""

from __future__ import annotations

import errno
import struct
from typing import Any

import pytest

from pyrunc.errors import ConfigError
from pyrunc.linux import seccomp as sc
from pyrunc.linux.syscalls_x86_64 import X32, X86, X86_64

ARCH64, ARCH32 = sc.AUDIT_ARCH_X86_64, sc.AUDIT_ARCH_I386


def decode(prog: bytes) -> list[tuple[int, int, int, int]]:
    assert len(prog) % 8 == 0
    return [struct.unpack_from("<HBBI", prog, i) for i in range(0, len(prog), 8)]


def run(prog: bytes, nr: int, arch: int = ARCH64, args: tuple[int, ...] = ()) -> int:
    insns = decode(prog)
    data = struct.pack("<IIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    a, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == sc.BPF_LD_W_ABS:
            a = struct.unpack_from("<I", data, k)[0]
        elif code == sc.BPF_ALU_AND_K:
            a &= k
        elif code == sc.BPF_JA:
            pc += k
        elif code == sc.BPF_JEQ_K:
            pc += jt if a == k else jf
        elif code == sc.BPF_JGT_K:
            pc += jt if a > k else jf
        elif code == sc.BPF_JGE_K:
            pc += jt if a >= k else jf
        elif code == sc.BPF_RET_K:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def cfg_of(*rules: dict[str, Any], default: str = "SCMP_ACT_ALLOW",
           **extra: Any) -> dict[str, Any]:
    return {"defaultAction": default, "syscalls": list(rules), **extra}


def test_program_starts_with_arch_check_and_bad_arch_kills() -> None:
    prog = sc.compile_filter(cfg_of(), "x86_64")
    assert decode(prog)[0] == (sc.BPF_LD_W_ABS, 0, 0, 4)
    assert decode(prog)[1][0] == sc.BPF_JEQ_K and decode(prog)[1][3] == ARCH64
    assert run(prog, 0, arch=ARCH32) == sc.RET_KILL_PROCESS
    assert run(prog, 0, arch=0xC00000B7) == sc.RET_KILL_PROCESS  # aarch64
    assert run(prog, X32["read"]) == sc.RET_KILL_PROCESS
    assert run(prog, X86_64["read"]) == sc.RET_ALLOW


def test_exact_small_program() -> None:
    prog = sc.compile_filter(cfg_of({"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}),
                             "x86_64")
    J, R, L = sc.BPF_JEQ_K, sc.BPF_RET_K, sc.BPF_LD_W_ABS
    assert decode(prog) == [
        (L, 0, 0, 4), (J, 0, 1, ARCH64), (sc.BPF_JA, 0, 0, 1), (R, 0, 0, sc.RET_KILL_PROCESS),
        (L, 0, 0, 0), (sc.BPF_JGE_K, 0, 1, sc.X32_SYSCALL_BIT), (R, 0, 0, sc.RET_KILL_PROCESS),
        (J, 0, 1, X86_64["getcwd"]), (R, 0, 0, sc.RET_ERRNO | errno.EPERM),
        (R, 0, 0, sc.RET_ALLOW),
    ]


@pytest.mark.parametrize("action,ret", [
    ("SCMP_ACT_KILL", 0), ("SCMP_ACT_KILL_THREAD", 0), ("SCMP_ACT_KILL_PROCESS", 0x80000000),
    ("SCMP_ACT_TRAP", 0x30000), ("SCMP_ACT_ERRNO", 0x50000 | errno.EPERM),
    ("SCMP_ACT_TRACE", 0x7FF00000 | errno.EPERM), ("SCMP_ACT_ALLOW", 0x7FFF0000),
    ("SCMP_ACT_LOG", 0x7FFC0000), ("SCMP_ACT_NOTIFY", 0x7FC00000)])
def test_every_action_encodes(action: str, ret: int) -> None:
    prog = sc.compile_filter(cfg_of({"names": ["read"], "action": action}), "x86_64")
    assert run(prog, X86_64["read"]) == ret
    if action == "SCMP_ACT_NOTIFY":
        return  # not allowed as default action (runc/youki)
    default = "SCMP_ACT_ALLOW" if action != "SCMP_ACT_ALLOW" else "SCMP_ACT_LOG"
    assert run(sc.compile_filter(cfg_of(default=action), "x86_64"), 1) == ret
    assert run(sc.compile_filter(cfg_of({"names": ["read"], "action": default}, default=action),
                                 "x86_64"), X86_64["write"]) == ret


def test_errno_ret_and_default_errno_ret() -> None:
    cfg = cfg_of({"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                 {"names": ["write"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
                 default="SCMP_ACT_ERRNO", defaultErrnoRet=errno.EROFS)
    prog = sc.compile_filter(cfg, "x86_64")
    assert run(prog, X86_64["read"]) == sc.RET_ERRNO | 38
    assert run(prog, X86_64["write"]) == sc.RET_TRACE | 7
    assert run(prog, X86_64["open"]) == sc.RET_ERRNO | errno.EROFS


def _ref(op: str, value: int, two: int, arg: int) -> bool:
    return {"SCMP_CMP_NE": arg != value, "SCMP_CMP_LT": arg < value, "SCMP_CMP_LE": arg <= value,
            "SCMP_CMP_EQ": arg == value, "SCMP_CMP_GE": arg >= value,
            "SCMP_CMP_GT": arg > value, "SCMP_CMP_MASKED_EQ": arg & value == two}[op]


EDGE = [0, 1, 5, 0xFFFFFFFF, 0x1_0000_0000, 0x1_0000_0005, 0x1_0000_0004, 0x2_0000_0000,
        0xFFFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0x0000_0001_FFFF_FFFF]


@pytest.mark.parametrize("op", sc.OPERATORS)
def test_operators_match_python_semantics_on_64bit(op: str) -> None:
    for value in EDGE:
        two = value & 0x0000_0001_0000_0004 if op == "SCMP_CMP_MASKED_EQ" else 0
        prog = sc.compile_filter(cfg_of({"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                         "args": [{"index": 5, "op": op, "value": value,
                                                   "valueTwo": two}]}), "x86_64")
        for arg in EDGE:
            want = sc.RET_ERRNO | errno.EPERM if _ref(op, value, two, arg) else sc.RET_ALLOW
            assert run(prog, X86_64["read"], args=(0, 0, 0, 0, 0, arg)) == want, (value, arg)


def test_32bit_abis_compare_low_word_only() -> None:
    cfg = cfg_of({"names": ["read"], "action": "SCMP_ACT_ERRNO",
                  "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 7}]},
                 architectures=["SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    prog = sc.compile_filter(cfg, "x86_64")
    err = sc.RET_ERRNO | errno.EPERM
    assert run(prog, X86["read"], arch=ARCH32, args=(7,)) == err
    assert run(prog, X86["read"], arch=ARCH32, args=(8,)) == sc.RET_ALLOW
    assert run(prog, X32["read"], args=(0x5_0000_0007,)) == err
    assert run(prog, X86_64["read"], args=(0x5_0000_0007,)) == sc.RET_ALLOW
    assert run(prog, X86_64["read"], args=(7,)) == err
    assert run(prog, 0xC00000B7, arch=0xC00000B7) == sc.RET_KILL_PROCESS


def test_per_arch_names_and_unknown_names_skipped() -> None:
    cfg = cfg_of({"names": ["socketcall", "no_such_call", "open"], "action": "SCMP_ACT_TRAP"},
                 architectures=["SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"])
    prog = sc.compile_filter(cfg, "x86_64")
    assert run(prog, X86["socketcall"], arch=ARCH32) == sc.RET_TRAP
    assert run(prog, X86["open"], arch=ARCH32) == sc.RET_TRAP
    assert run(prog, X86_64["open"]) == sc.RET_TRAP
    assert run(prog, X86["socketcall"]) == sc.RET_ALLOW  # 102 is getuid on x86_64


def test_first_matching_rule_wins_and_unmatched_falls_to_default() -> None:
    cfg = cfg_of(
        {"names": ["read"], "action": "SCMP_ACT_LOG",
         "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 1}]},
        {"names": ["read"], "action": "SCMP_ACT_TRAP",
         "args": [{"index": 0, "op": "SCMP_CMP_LT", "value": 10}]},
        default="SCMP_ACT_ERRNO")
    prog = sc.compile_filter(cfg, "x86_64")
    assert run(prog, 0, args=(1,)) == sc.RET_LOG
    assert run(prog, 0, args=(2,)) == sc.RET_TRAP
    assert run(prog, 0, args=(11,)) == sc.RET_ERRNO | errno.EPERM


def test_long_lists_keep_every_jump_in_range() -> None:
    names = sorted(X86_64)
    rules = [{"names": [n], "action": "SCMP_ACT_ERRNO", "errnoRet": i + 1,
              "args": [{"index": i % 6, "op": "SCMP_CMP_GE", "value": 1 << 40},
                       {"index": (i + 1) % 6, "op": "SCMP_CMP_MASKED_EQ", "value": 3,
                        "valueTwo": 1}]} for i, n in enumerate(names[:60])]
    rules.append({"names": names[60:], "action": "SCMP_ACT_LOG"})
    cfg = cfg_of(*rules, default="SCMP_ACT_KILL_PROCESS",
                 architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    prog = sc.compile_filter(cfg, "x86_64")
    assert 1000 < len(prog) // 8 <= sc.MAX_INSNS
    for code, jt, jf, _k in decode(prog):
        assert 0 <= jt <= 255 and 0 <= jf <= 255  # struct packing would fail otherwise
        assert code != sc.BPF_JA or (jt, jf) == (0, 0)
    for i, n in enumerate(names[:60]):
        args = [0] * 6
        args[i % 6] = 1 << 41
        args[(i + 1) % 6] = 5
        assert run(prog, X86_64[n], args=tuple(args)) == sc.RET_ERRNO | (i + 1)
        args[(i + 1) % 6] = 6
        assert run(prog, X86_64[n], args=tuple(args)) == sc.RET_KILL_PROCESS
    for n in names[60:]:
        assert run(prog, X86_64[n]) == sc.RET_LOG
        if n in X86:
            assert run(prog, X86[n], arch=ARCH32) == sc.RET_LOG
    i, n = next((i, n) for i, n in enumerate(names[:60]) if n in X32)
    args = [0] * 6
    args[(i + 1) % 6] = 5  # x32 compares low words only: GE (1 << 40) -> 0 >= 0 holds
    assert run(prog, X32[n], args=tuple(args)) == sc.RET_ERRNO | (i + 1)


def test_too_many_instructions_is_config_error() -> None:
    rules = [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
              "args": [{"index": 0, "op": "SCMP_CMP_GT", "value": i}]} for i in range(1000)]
    with pytest.raises(ConfigError, match="BPF instructions"):
        sc.compile_filter(cfg_of(*rules), "x86_64")


@pytest.mark.parametrize("cfg,message", [
    (cfg_of({"names": ["a"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["b"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["c"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["read"], "action": "SCMP_ACT_NOPE"}),
     "config.json: linux.seccomp.syscalls[3].action: unknown action 'SCMP_ACT_NOPE'"),
    ({"defaultAction": "SCMP_ACT_DENY"},
     "config.json: linux.seccomp.defaultAction: unknown action 'SCMP_ACT_DENY'"),
    ({}, "config.json: linux.seccomp.defaultAction: missing"),
    (cfg_of({"names": ["read"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "op": "SCMP_CMP_XX", "value": 1}]}),
     "config.json: linux.seccomp.syscalls[0].args[0].op: unknown operator 'SCMP_CMP_XX'"),
    (cfg_of({"names": ["read"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 6, "op": "SCMP_CMP_EQ", "value": 1}]}),
     "config.json: linux.seccomp.syscalls[0].args[0].index: must be 0..5, got 6"),
    (cfg_of({"names": ["read"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 1 << 64}]}),
     "config.json: linux.seccomp.syscalls[0].args[0].value: must be an unsigned 64-bit"),
    (cfg_of(flags=["SECCOMP_FILTER_FLAG_FOO"]),
     "config.json: linux.seccomp.flags[0]: unknown flag 'SECCOMP_FILTER_FLAG_FOO'"),
    (cfg_of(architectures=["SCMP_ARCH_VAX"]),
     "config.json: linux.seccomp.architectures[0]: unknown architecture 'SCMP_ARCH_VAX'"),
    (cfg_of({"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}),
     "config.json: linux.seccomp.syscalls[0].errnoRet: only valid with"),
    (cfg_of(defaultErrnoRet=1),
     "config.json: linux.seccomp.defaultErrnoRet: only valid with"),
    (cfg_of(default="SCMP_ACT_NOTIFY"),
     "config.json: linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"),
    (cfg_of({"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}),
     "config.json: linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY cannot be used for the "
     "write syscall"),
    (cfg_of(listenerMetadata="x"),
     "config.json: linux.seccomp.listenerMetadata: must not be set without listenerPath"),
    (cfg_of({"names": [], "action": "SCMP_ACT_ALLOW"}),
     "config.json: linux.seccomp.syscalls[0].names: must be a non-empty list"),
])
def test_validate_errors_are_one_line(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        sc.validate(cfg)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)


def test_validate_accepts_spec_example_and_all_flags() -> None:
    sc.validate(cfg_of({"names": ["getcwd", "chmod"], "action": "SCMP_ACT_ERRNO"},
                       architectures=["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                       flags=list(sc.FLAGS)))


def test_install_flags() -> None:
    notify = cfg_of({"names": ["read"], "action": "SCMP_ACT_NOTIFY"},
                    flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
    assert sc.install_flags(notify) == (sc.FLAG_TSYNC | sc.FLAG_TSYNC_ESRCH
                                        | sc.FLAG_NEW_LISTENER | sc.FLAG_WAIT_KILLABLE_RECV)
    plain = cfg_of(flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
    assert sc.install_flags(plain) == sc.FLAG_LOG
    assert sc.uses_notify(notify)
    assert not sc.uses_notify(plain)


def test_non_x86_64_host_is_config_error() -> None:
    with pytest.raises(ConfigError, match="only supported on x86_64"):
        sc.compile_filter(cfg_of(), "aarch64")


def test_generated_table_matches_headers() -> None:
    from pyrunc.linux import gen_syscall_tables as gen
    for name, path in gen._HEADERS.items():
        try:
            fresh = gen.parse(path, x32=name == "X32")
        except FileNotFoundError:
            pytest.skip("kernel headers not installed")
        assert {k: v for k, v in fresh.items()} == {"X86_64": X86_64, "X32": X32, "X86": X86}[name]
    assert X86_64["seccomp"] == sc.SYS_SECCOMP_X86_64 and X32["read"] == 0x40000000
