"""Unit tests of the cgroup v2 device filter compiler, run through a small eBPF
interpreter and compared with a plain reference of the rule semantics.

The interpreter knows only the opcodes the compiler may emit (anything else
fails loudly) and follows the kernel's rules for them (32-bit ALU results are
zero-extended, jump immediates are sign-extended to 64 bits). The integration
tests load the same programs into the real kernel.
"""

from __future__ import annotations

import itertools
import random
import struct
from typing import Any

import pytest

from pyrunc.cgroups import devices_bpf as dbpf
from pyrunc.errors import PyruncError

CTX = 0xFFFF_8880_0000_0000  # the context pointer r1 holds on entry
U32, U64 = 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF
TYPE_BITS = {"b": 1, "c": 2}
ACCESS_BITS = {"m": 1, "r": 2, "w": 4}
ACCESSES = ["".join(c) for n in (1, 2, 3) for c in itertools.combinations("rwm", n)]


def decode(prog: bytes) -> list[tuple[int, int, int, int, int]]:
    assert prog and len(prog) % 8 == 0
    out = []
    for i in range(0, len(prog), 8):
        code, regs, off, imm = struct.unpack_from("<BBhi", prog, i)
        out.append((code, regs & 0xF, regs >> 4, off, imm))
    return out


def run(prog: bytes, kind: str, major: int, minor: int, access: str) -> int:
    acc = 0
    for c in access:
        acc |= ACCESS_BITS[c]
    ctx = struct.pack("<III", acc << 16 | TYPE_BITS[kind], major, minor)
    insns = decode(prog)
    reg = [0] * 11
    reg[1], reg[10] = CTX, 0x1000
    pc = 0
    while True:
        assert 0 <= pc < len(insns), f"fell off the program at {pc}"
        code, dst, src, off, imm = insns[pc]
        pc += 1
        assert dst <= 9 and src <= 10
        if code == dbpf.LDX_MEM_W:
            assert reg[src] == CTX and off in (0, 4, 8), "only u32 ctx fields can be read"
            reg[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == dbpf.ALU_AND_K:
            reg[dst] = reg[dst] & imm & U32
        elif code == dbpf.ALU_RSH_K:
            assert 0 <= imm < 32
            reg[dst] = (reg[dst] & U32) >> imm
        elif code == dbpf.ALU_MOV_K:
            reg[dst] = imm & U32
        elif code == dbpf.ALU64_MOV_X:
            reg[dst] = reg[src]
        elif code == dbpf.ALU_MOV_X:
            assert reg[src] != CTX, "pointer arithmetic"
            reg[dst] = reg[src] & U32
        elif code in (dbpf.JEQ_K, dbpf.JNE_K, dbpf.JNE_X):
            assert off >= 0, "backward jump"
            other = reg[src] if code == dbpf.JNE_X else imm & U64
            if (reg[dst] == other) == (code == dbpf.JEQ_K):
                pc += off
        elif code == dbpf.EXIT:
            assert reg[0] in (0, 1)
            return reg[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x} at {pc - 1}")


# The reference: the rules as written (config dicts and cgroup v1 strings),
# read independently of the compiler.
def parse_v1(text: str) -> dict[str, Any]:
    kind, nums, access = text.split()
    major, minor = nums.split(":")
    return {"allow": True, "type": kind, "access": access,
            "major": None if major == "*" else int(major),
            "minor": None if minor == "*" else int(minor)}


def reference(rules: list[dict[str, Any]], kind: str, major: int, minor: int,
              access: str, defaults: bool = True) -> bool:
    """Walking back from the last rule, each asked access is decided by the
    first rule that matches the device and names it; default deny."""
    from pyrunc.cgroups import DEFAULT_DEVICE_RULES

    every = list(rules) + ([parse_v1(t) for t in DEFAULT_DEVICE_RULES] if defaults else [])
    decided: dict[str, bool] = {}
    for r in reversed(every):
        rtype = r.get("type") or "a"
        if rtype == "a":
            names = "rwm"  # an "a" rule covers everything, as in cgroup v1 and runc
        else:
            if rtype != kind:
                continue
            if r.get("major") not in (None, -1) and r["major"] != major:
                continue
            if r.get("minor") not in (None, -1) and r["minor"] != minor:
                continue
            names = r["access"] if r.get("access") is not None else "rwm"
        for c in access:
            if c in names:
                decided.setdefault(c, r["allow"])
    return bool(access) and all(decided.get(c, False) for c in access)


def check_all(rules: list[dict[str, Any]], devices: list[tuple[str, int, int]],
              defaults: bool = True) -> int:
    prog = dbpf.compile_rules(rules, defaults)
    n = 0
    for (kind, major, minor), access in itertools.product(devices, ACCESSES):
        want = reference(rules, kind, major, minor, access, defaults)
        got = run(prog, kind, major, minor, access)
        assert got == int(want), (rules, kind, major, minor, access)
        n += want
    return n


def random_rule(rng: random.Random) -> dict[str, Any]:
    r: dict[str, Any] = {"allow": rng.random() < 0.5}
    kind = rng.choice(["a", "b", "c", "c", "c", None])
    if kind is not None:
        r["type"] = kind
    for key in ("major", "minor"):
        v = rng.choice([None, -1, 1, 2, 3, "absent"])
        if v != "absent":
            r[key] = v
    access = rng.choice(ACCESSES + [None, "rr", "mwr"])
    if access is not None:
        r["access"] = access
    return r


def test_random_rule_lists_match_the_reference() -> None:
    rng = random.Random(8)
    devices = [(k, ma, mi) for k in "bc" for ma in (1, 2, 4) for mi in (1, 3, 5)]
    allowed = 0
    for _ in range(250):
        rules = [random_rule(rng) for _ in range(rng.randrange(0, 7))]
        allowed += check_all(rules, devices, defaults=rng.random() < 0.3)
    # The generator must produce both outcomes in quantity, or it proves nothing.
    total = 250 * len(devices) * len(ACCESSES)
    assert 0.1 * total < allowed < 0.9 * total


def test_default_list_is_runcs() -> None:
    # runc's AllowedDevices: every device node may be created, and these used.
    allowed = [("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9),
               ("c", 5, 0), ("c", 5, 2), ("c", 10, 200), ("c", 136, 0), ("c", 136, 7)]
    denied = [("c", 1, 1), ("c", 1, 11), ("c", 5, 1), ("c", 10, 229), ("c", 4, 0),
              ("b", 8, 0), ("b", 7, 0), ("c", 137, 0)]
    prog = dbpf.compile_rules([{"allow": False, "access": "rwm"}])
    for kind, major, minor in allowed:
        for access in ACCESSES:
            assert run(prog, kind, major, minor, access) == 1, (kind, major, minor, access)
    for kind, major, minor in denied:
        for access in ACCESSES:
            want = int(access == "m")  # "c *:* m" and "b *:* m"
            assert run(prog, kind, major, minor, access) == want, (kind, major, minor, access)
    check_all([], allowed + denied)


def test_the_config_cannot_take_away_the_defaults_but_later_rules_can_widen() -> None:
    # The defaults come last, as in runc: denying /dev/null in the config is moot.
    prog = dbpf.compile_rules([{"allow": False, "type": "c", "major": 1, "minor": 3}])
    assert run(prog, "c", 1, 3, "rw") == 1
    prog = dbpf.compile_rules([{"allow": True, "type": "c", "major": 10, "minor": 229,
                                "access": "rw"}])
    assert run(prog, "c", 10, 229, "rw") == 1
    assert run(prog, "c", 10, 228, "rw") == 0


def test_deny_everything_without_defaults_blocks_dev_null() -> None:
    prog = dbpf.compile_rules([{"allow": False}], defaults=False)
    for access in ACCESSES:
        assert run(prog, "c", 1, 3, access) == 0


def test_multi_letter_access() -> None:
    rules = [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
             {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]
    prog = dbpf.compile_rules(rules, defaults=False)
    assert run(prog, "c", 1, 3, "r") == 1
    assert run(prog, "c", 1, 3, "rw") == 0  # an O_RDWR open asks for the denied write
    assert run(prog, "c", 1, 3, "w") == 0
    # accesses granted by separate rules add up
    rules = [{"allow": True, "type": "c", "major": 1, "access": "r"},
             {"allow": True, "type": "c", "minor": 3, "access": "w"}]
    prog = dbpf.compile_rules(rules, defaults=False)
    assert run(prog, "c", 1, 3, "rw") == 1
    assert run(prog, "c", 1, 4, "rw") == 0
    assert run(prog, "c", 2, 3, "w") == 1
    check_all(rules, [("c", 1, 3), ("c", 1, 4), ("c", 2, 3)], defaults=False)


def test_a_later_deny_punches_a_hole_in_a_wildcard() -> None:
    rules = [{"allow": True, "type": "c", "access": "rwm"},
             {"allow": False, "type": "c", "major": 1, "minor": 3}]
    prog = dbpf.compile_rules(rules, defaults=False)
    assert run(prog, "c", 1, 3, "r") == 0
    assert run(prog, "c", 1, 4, "r") == 1
    assert run(prog, "b", 1, 4, "r") == 0


def test_type_a_covers_everything_like_cgroup_v1() -> None:
    prog = dbpf.compile_rules([{"allow": True, "type": "a", "major": 1, "access": "r"}],
                              defaults=False)
    assert run(prog, "b", 9, 9, "rwm") == 1
    prog = dbpf.compile_rules([{"allow": True}, {"allow": False, "major": 5, "access": "w"}],
                              defaults=False)
    assert run(prog, "c", 1, 3, "r") == 0


def test_rules_before_an_a_rule_are_not_compiled() -> None:
    rules = [{"allow": True, "type": "c", "major": i, "access": "r"} for i in range(50)]
    short = dbpf.compile_rules([{"allow": False}], defaults=False)
    assert dbpf.compile_rules(rules + [{"allow": False}], defaults=False) == short


def test_numbers_at_the_u32_edges() -> None:
    big = [0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF]
    rules = [{"allow": True, "type": "c", "major": m, "minor": m, "access": "rw"} for m in big]
    rules.append({"allow": True, "type": "b", "major": 0, "minor": 0xFFFF_FFFF})
    devices = [("c", a, b) for a in big + [0, 1] for b in big + [0]]
    devices += [("b", 0, 0xFFFF_FFFF), ("b", 0, 0x7FFF_FFFF)]
    assert check_all(rules, devices, defaults=False) == 3 * 3 + 7


def test_program_shape() -> None:
    prog = dbpf.compile_rules([{"allow": True, "type": "c", "major": 4}])
    insns = decode(prog)
    assert insns[-1][0] == dbpf.EXIT
    for i, (code, _, _, off, _) in enumerate(insns):
        if code in (dbpf.JEQ_K, dbpf.JNE_K, dbpf.JNE_X):
            assert 0 <= off and i + 1 + off < len(insns)


@pytest.mark.parametrize("rules, message", [
    ("c 1:3 rwm", "linux.resources.devices: must be an array"),
    ([{"allow": True}, "c 1:3 rwm"], "linux.resources.devices[1]: must be an object"),
    ([{"type": "c"}], "linux.resources.devices[0].allow: must be true or false"),
    ([{"allow": True}, {"allow": True, "type": "u"}], "linux.resources.devices[1].type: "),
    ([{"allow": True, "type": "c", "access": "rx"}], "linux.resources.devices[0].access: "),
    ([{"allow": True, "type": "c", "access": 7}], "linux.resources.devices[0].access: "),
    ([{"allow": True, "type": "c", "major": -2}], "linux.resources.devices[0].major: "),
    ([{"allow": True, "type": "c", "minor": 1 << 32}], "linux.resources.devices[0].minor: "),
    ([{"allow": True, "type": "b", "major": "8"}], "linux.resources.devices[0].major: "),
    ([{"allow": True, "type": "b", "minor": True}], "linux.resources.devices[0].minor: "),
])
def test_bad_rules_are_one_line_errors(rules: Any, message: str) -> None:
    with pytest.raises(PyruncError) as e:
        dbpf.compile_rules(rules)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)
