"""linux.resources.devices on cgroup v2: an eBPF BPF_PROG_TYPE_CGROUP_DEVICE
program compiled from the rules and attached to the container's cgroup.

Semantics: the config's rules in order, then runc's default allow-list; a
later rule overrides an earlier one, anything no rule allows is denied.
Each access (r, w, m) a request asks for is decided by the last rule that
matches the device and names that access, and the request is allowed only if
every access it asks for is; so "allow rwm" then "deny w" refuses an O_RDWR
open. Like the v1 kernel and runc, a type "a" rule (or one without a type)
covers every device and access, whatever its major, minor and access say.
Unlike runc (whose v1 emulator refuses it), a deny rule may punch a hole in an
earlier wildcard allow.

The program walks the rules from the last one back (r2, r4, r5: type, major,
minor, loaded where a rule compares them; r6: the context): r3 holds the
accesses still undecided; a matching deny rule that names one of them denies, a
matching allow rule clears the ones it names and allows once none is left;
falling off the end denies.
"""

from __future__ import annotations

import errno
import os
import struct

from pyrunc.cgroups import DEFAULT_DEVICE_RULES
from pyrunc.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    # (allow, type bits or 0 for "a", major or None, minor or None, access bits)
    Rule = tuple[bool, int, int | None, int | None, int]
    Op = tuple[int, int, int, int, int]  # code, dst, src, off (or NEXT), imm

# struct bpf_cgroup_dev_ctx: access_type = access << 16 | type; major; minor
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
ACC_ALL = ACC_MKNOD | ACC_READ | ACC_WRITE
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}
_ACCESS = {"r": ACC_READ, "w": ACC_WRITE, "m": ACC_MKNOD}

# The opcodes emitted (linux/bpf_common.h, linux/bpf.h), all the test
# interpreter has to know.
LDX_MEM_W = 0x61   # dst = *(u32 *)(src + off)
ALU_AND_K = 0x54   # dst = (u32)(dst & imm)
ALU_RSH_K = 0x74   # dst = (u32)dst >> imm
ALU_MOV_K = 0xb4   # dst = (u32)imm
ALU_MOV_X = 0xbc   # dst = (u32)src
ALU64_MOV_X = 0xbf  # dst = src (here only: r6 = the ctx pointer)
JEQ_K = 0x15       # if dst == imm: pc += off
JNE_K = 0x55       # if dst != imm: pc += off
JNE_X = 0x5d       # if dst != src: pc += off
EXIT = 0x95        # return r0


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    # struct bpf_insn on a little-endian host (the only arches bpf.py wires up)
    if imm >= 1 << 31:
        imm -= 1 << 32  # the u32 bit pattern, as the s32 field holds it
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


def _number(r: dict[str, Any], key: str, where: str) -> int | None:
    v = r.get(key)
    if v is None or v == -1:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFFFFFF:
        raise PyruncError(f"{where}.{key}: must be -1 (all) or a number from 0 to 4294967295, "
                          f"not {v!r}")
    return v


def parse_rule(r: dict[str, Any], i: int) -> Rule:
    where = f"linux.resources.devices[{i}]"
    if not isinstance(r, dict):
        raise PyruncError(f"{where}: must be an object")
    allow = r.get("allow")
    if not isinstance(allow, bool):
        raise PyruncError(f"{where}.allow: must be true or false")
    kind = r.get("type") or "a"
    if kind not in ("a", "b", "c"):
        raise PyruncError(f"{where}.type: must be \"a\", \"b\" or \"c\", not {kind!r}")
    major, minor = _number(r, "major", where), _number(r, "minor", where)
    access = r.get("access")
    if access is None:
        access = "rwm"
    if not isinstance(access, str) or any(c not in _ACCESS for c in access):
        raise PyruncError(f"{where}.access: must be made of the letters r, w and m, "
                          f"not {access!r}")
    if kind == "a":
        return (allow, 0, None, None, ACC_ALL)
    bits = 0
    for c in access:
        bits |= _ACCESS[c]
    return (allow, _TYPES[kind], major, minor, bits)


def _parse_default(text: str) -> Rule:
    # "c 1:3 rwm", "b *:* m": the cgroup v1 syntax of DEFAULT_DEVICE_RULES
    kind, numbers, access = text.split()
    major, minor = numbers.split(":")
    bits = 0
    for c in access:
        bits |= _ACCESS[c]
    return (True, _TYPES[kind], None if major == "*" else int(major),
            None if minor == "*" else int(minor), bits)


def rules_with_defaults(rules: list[dict[str, Any]], defaults: bool = True) -> list[Rule]:
    """The config's rules (validated; errors name linux.resources.devices[i])
    followed by runc's default allow-list."""
    if not isinstance(rules, list):
        raise PyruncError("linux.resources.devices: must be an array")
    out = [parse_rule(r, i) for i, r in enumerate(rules)]
    if defaults:
        out += [_parse_default(t) for t in DEFAULT_DEVICE_RULES]
    return out


NEXT = -1  # in _block's ops: "jump to the next rule's block"


def _cmp(reg: int, field: int, value: int, ops: list[Op]) -> None:
    """reg = the ctx field at offset `field`; if reg != value: next rule.
    The field is loaded right before its only use so that no register but r3
    lives from one block to the next: the verifier then sees few distinct
    states where blocks start, and its work grows with the rules linearly
    rather than quadratically."""
    ops.append((LDX_MEM_W, reg, 6, field, 0))
    if field == 0:
        ops.append((ALU_AND_K, reg, 0, 0, 0xFFFF))  # the type: low 16 bits
    if value < 1 << 31:
        ops.append((JNE_K, reg, 0, NEXT, value))
    else:  # imm is sign-extended to 64 bits: go through r1 (mov32 zero-extends)
        ops += [(ALU_MOV_K, 1, 0, 0, value), (JNE_X, reg, 1, NEXT, 0)]


def _block(rule: Rule) -> bytes:
    allow, kind, major, minor, access = rule
    ops: list[Op] = []
    if kind:
        _cmp(2, 0, kind, ops)
    if major is not None:
        _cmp(4, 4, major, ops)
    if minor is not None:
        _cmp(5, 8, minor, ops)
    ops += [(ALU_MOV_X, 1, 3, 0, 0), (ALU_AND_K, 1, 0, 0, access),
            (JEQ_K, 1, 0, NEXT, 0)]  # names none of the undecided accesses
    if allow:
        ops += [(ALU_AND_K, 3, 0, 0, ~access & 0xFFFFFFFF), (JNE_K, 3, 0, NEXT, 0),
                (ALU_MOV_K, 0, 0, 0, 1), (EXIT, 0, 0, 0, 0)]
    else:
        ops += [(ALU_MOV_K, 0, 0, 0, 0), (EXIT, 0, 0, 0, 0)]
    n = len(ops)
    return b"".join(_insn(code, dst, src, n - i - 1 if off == NEXT else off, imm)
                    for i, (code, dst, src, off, imm) in enumerate(ops))


def compile_rules(rules: list[dict[str, Any]], defaults: bool = True) -> bytes:
    """The eBPF program (struct bpf_insn array) for the config's rules plus,
    unless defaults is False, runc's default allow-list."""
    prog = [_insn(ALU64_MOV_X, 6, 1),                                 # r6 = ctx
            _insn(LDX_MEM_W, 3, 6, 0), _insn(ALU_RSH_K, 3, imm=16)]   # r3 = access
    for rule in reversed(rules_with_defaults(rules, defaults)):
        prog.append(_block(rule))
        if not rule[1]:
            break  # an "a" rule decides every request: the earlier ones are dead
    prog += [_insn(ALU_MOV_K, 0, imm=0), _insn(EXIT)]               # default deny
    return b"".join(prog)


def _in_user_namespace() -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def _replace_program(dirfd: int, insns: bytes) -> None:
    """Attach the new program, then detach the old ones (never a moment
    without a filter), as runc does."""
    from pyrunc.linux import bpf

    prog = bpf.prog_load(bpf.BPF_PROG_TYPE_CGROUP_DEVICE, insns, "Apache", "pyrunc_devices")
    old: list[int] = []
    try:
        for pid in bpf.prog_query(dirfd, bpf.BPF_CGROUP_DEVICE):
            try:
                old.append(bpf.prog_fd_by_id(pid))
            except OSError as e:
                # gone meanwhile, or kept from us by an LSM: runc skips those too
                if e.errno not in (errno.ENOENT, errno.EPERM, errno.EACCES):
                    raise
        bpf.prog_attach(dirfd, prog, bpf.BPF_CGROUP_DEVICE, bpf.BPF_F_ALLOW_MULTI)
        for fd in old:
            try:
                bpf.prog_detach(dirfd, fd, bpf.BPF_CGROUP_DEVICE)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise
    finally:
        for fd in [prog, *old]:
            os.close(fd)


def apply_device_rules(cgroup_dir: str, rules: list[dict[str, Any]],
                       defaults: bool = True) -> None:
    """Enforce the config's device rules (plus runc's default allow-list) on
    the cgroup v2 directory cgroup_dir, replacing any filter put there before."""
    insns = compile_rules(rules, defaults)
    try:
        dirfd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise PyruncError(f"cgroup: cannot open {cgroup_dir}: {e.strerror}") from None
    try:
        _replace_program(dirfd, insns)
    except OSError as e:
        if e.errno in (errno.EPERM, errno.EACCES) and _in_user_namespace():
            return  # as runc: no bpf(2) in a user namespace, and no devices to reach either
        raise PyruncError(f"linux.resources.devices: device filter for {cgroup_dir}: "
                          f"{e.strerror}") from None
    finally:
        os.close(dirfd)
