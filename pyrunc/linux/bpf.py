"""bpf(2) through pyrunc.linux.cdata: just what a cgroup v2 device filter needs.

Load a BPF_PROG_TYPE_CGROUP_DEVICE program, attach it to a cgroup directory
(BPF_F_ALLOW_MULTI, as runc does), list the programs attached there and
detach them. glibc has no bpf() wrapper, hence the raw syscall. Failures
raise OSError naming the bpf command; a failed load carries the verifier's
last line. Imported only when device rules are applied on cgroup v2.
"""

from __future__ import annotations

import errno

from pyrunc.linux import cdata, libc

# bpf commands (linux/bpf.h enum bpf_cmd)
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6  # enum bpf_attach_type
BPF_F_ALLOW_MULTI = 1 << 1

_LOG_SIZE = 1 << 16


class _ProgLoadAttr(cdata.Structure):
    # union bpf_attr, BPF_PROG_LOAD part, up to prog_name (kernel >= 4.15)
    _fields_ = [("prog_type", cdata.c_uint32), ("insn_cnt", cdata.c_uint32),
                ("insns", cdata.c_uint64), ("license", cdata.c_uint64),
                ("log_level", cdata.c_uint32), ("log_size", cdata.c_uint32),
                ("log_buf", cdata.c_uint64), ("kern_version", cdata.c_uint32),
                ("prog_flags", cdata.c_uint32), ("prog_name", cdata.c_char * 16)]


class _AttachAttr(cdata.Structure):
    # BPF_PROG_ATTACH / BPF_PROG_DETACH
    _fields_ = [("target_fd", cdata.c_uint32), ("attach_bpf_fd", cdata.c_uint32),
                ("attach_type", cdata.c_uint32), ("attach_flags", cdata.c_uint32),
                ("replace_bpf_fd", cdata.c_uint32)]


class _QueryAttr(cdata.Structure):
    # BPF_PROG_QUERY (the fields of kernel 4.15; later ones stay zero)
    _fields_ = [("target_fd", cdata.c_uint32), ("attach_type", cdata.c_uint32),
                ("query_flags", cdata.c_uint32), ("attach_flags", cdata.c_uint32),
                ("prog_ids", cdata.c_uint64), ("prog_cnt", cdata.c_uint32)]


class _GetFdAttr(cdata.Structure):
    # BPF_PROG_GET_FD_BY_ID
    _fields_ = [("prog_id", cdata.c_uint32), ("next_id", cdata.c_uint32),
                ("open_flags", cdata.c_uint32)]


def _bpf(cmd: int, attr: cdata.Structure, what: str) -> int:
    try:
        nr = libc.syscall_nr("bpf")
    except KeyError:
        raise OSError(errno.ENOSYS, f"{what}: bpf(2) is not wired up for {libc._ARCH}") from None
    return libc._check(libc._libc().syscall(nr, cmd, cdata.byref(attr), cdata.sizeof(attr)),
                       what)


def prog_load(prog_type: int, insns: bytes, license: str = "Apache",
              name: str = "") -> int:
    """Load a program; returns its fd. On failure the OSError's message ends
    with the verifier's last line (it is asked for only then, as a retry)."""
    if len(insns) % 8:
        raise ValueError("eBPF instructions are 8 bytes each")
    code = cdata.create_string_buffer(insns, len(insns))
    lic = cdata.create_string_buffer(license.encode())
    attr = _ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8,
                         insns=cdata.addressof(code), license=cdata.addressof(lic),
                         prog_name=name.encode()[:15])
    try:
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")
    except OSError as e:
        if e.errno == errno.EPERM:
            return _load_with_memlock(attr)
        if e.errno not in (errno.EINVAL, errno.EACCES, errno.E2BIG):
            raise
        first = e
    # The verifier explains EINVAL, EACCES and E2BIG in its log: load again to read it.
    log = cdata.create_string_buffer(_LOG_SIZE)
    attr.log_level, attr.log_size, attr.log_buf = 1, _LOG_SIZE, cdata.addressof(log)
    try:
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")
    except OSError:
        pass
    # The last line that is not the statistics the verifier always ends with.
    lines = [ln.strip() for ln in log.value.decode(errors="replace").splitlines()
             if ln.strip() and not ln.startswith(("processed ", "verification time"))]
    msg = str(first.strerror) + (f": verifier: {lines[-1]}" if lines else "")
    raise OSError(first.errno, msg) from None


def _load_with_memlock(attr: _ProgLoadAttr) -> int:
    # Kernels before 5.11 charge programs to RLIMIT_MEMLOCK (runc #2167):
    # lift it for the load only, so nothing forked later inherits it.
    import resource

    old = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY,) * 2)
    except (OSError, ValueError):
        raise OSError(errno.EPERM, "bpf(BPF_PROG_LOAD): Operation not permitted") from None
    try:
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")
    finally:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, old)


def prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = 0) -> None:
    attr = _AttachAttr(target_fd=target_fd, attach_bpf_fd=prog_fd, attach_type=attach_type,
                       attach_flags=flags)
    _bpf(BPF_PROG_ATTACH, attr, "bpf(BPF_PROG_ATTACH)")


def prog_detach(target_fd: int, prog_fd: int, attach_type: int) -> None:
    attr = _AttachAttr(target_fd=target_fd, attach_bpf_fd=prog_fd, attach_type=attach_type)
    _bpf(BPF_PROG_DETACH, attr, "bpf(BPF_PROG_DETACH)")


def prog_query(target_fd: int, attach_type: int) -> list[int]:
    """Ids of the programs attached directly to target_fd (not inherited ones)."""
    cnt = 64  # the kernel's per-cgroup limit; grow if it ever says ENOSPC
    for _ in range(10):
        ids = (cdata.c_uint32 * cnt)()
        attr = _QueryAttr(target_fd=target_fd, attach_type=attach_type,
                          prog_ids=cdata.addressof(ids), prog_cnt=cnt)
        try:
            _bpf(BPF_PROG_QUERY, attr, "bpf(BPF_PROG_QUERY)")
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            cnt = max(attr.prog_cnt, cnt * 2)
            continue
        return list(ids[:attr.prog_cnt])
    raise OSError(errno.ENOSPC, "bpf(BPF_PROG_QUERY): the list of programs keeps growing")


def prog_fd_by_id(prog_id: int) -> int:
    return _bpf(BPF_PROG_GET_FD_BY_ID, _GetFdAttr(prog_id=prog_id), "bpf(BPF_PROG_GET_FD_BY_ID)")
