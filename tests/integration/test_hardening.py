"""Attacks from inside the container (known runc CVE classes); each must fail."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from tests.conftest import Runtime, error_lines


def _sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_no_host_fd_and_cwd_stays_inside(rt: Runtime) -> None:
    # CVE-2024-21626: a leaked host directory fd used as cwd. No fd but stdio
    # arrives, and a cwd climbing with ".." or through a symlink stays inside.
    b = rt.bundle(**{"process.args": ["sh", "-c", "pwd; ls /proc/$$/fd; ls -d /bin; true"],
                     "process.cwd": "/../../../../etc/../tmp"})
    os.symlink("/../../../../..", b / "rootfs" / "escape")
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split()
    assert lines[0] == "/tmp"
    assert sorted(lines[1:4], key=int) == ["0", "1", "2"]
    cfg = rt.config(b)
    cfg["process"]["cwd"] = "/escape"
    cfg["process"]["args"] = ["sh", "-c", "pwd -P; ls /escape/bin/busybox"]
    rt.write_config(b, cfg)
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["/", "/escape/bin/busybox"]


ALL_CAPS = ["CAP_" + n for n in (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP").split()]


def test_init_cannot_be_reached_from_a_sharing_container(rt: Runtime, tmp_path: Path) -> None:
    # CVE-2019-5736: while init is still the Python interpreter (created, not
    # started), a process in the same user and pid namespaces, with every
    # capability there, tries to reach the runtime's binary and memory through
    # /proc/1/exe, /proc/1/fd, /proc/1/environ and /proc/1/mem. Init is made
    # non-dumpable before it enters the namespaces, and its mm belongs to the
    # host's user namespace, so capabilities inside the container do not reach
    # it (the kernel's own uid-change rule would also clear dumpable here: this
    # test shows the outcome, defence in depth, not which layer gave it).
    from tests.integration.test_userns import userns_bundle

    a = userns_bundle(rt, "sleep 60", "a")
    victim = rt.new_id()
    rt("create", "-b", str(a), victim, check=True)
    init_pid = rt.state(victim)["pid"]
    python_before = _sha(os.path.realpath(sys.executable))
    b = userns_bundle(rt, "cat /proc/1/cmdline | tr '\\0' ' '; echo; "
                      "readlink /proc/1/exe || echo exe-denied; "
                      "for f in /proc/1/fd/*; do readlink $f; done 2>/dev/null | grep -q . "
                      "|| echo fd-denied; "
                      "cat /proc/1/environ >/dev/null 2>&1 || echo environ-denied; "
                      "head -c 1 /proc/1/mem >/dev/null 2>&1 || echo mem-denied; "
                      "echo x >> /proc/1/exe 2>/dev/null || echo write-denied", "b")
    cfg = rt.config(b)
    cfg["process"]["capabilities"] = {k: ALL_CAPS for k in
                                      ("bounding", "effective", "permitted")}
    cfg["linux"]["namespaces"] = [
        ns if ns["type"] not in ("pid", "user") else
        {"type": ns["type"], "path": f"/proc/{init_pid}/ns/{ns['type']}"}
        for ns in cfg["linux"]["namespaces"]]
    del cfg["linux"]["uidMappings"], cfg["linux"]["gidMappings"]
    rt.write_config(b, cfg)
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "python" in out.splitlines()[0] or "pyrunc" in out.splitlines()[0]
    for word in ("exe-denied", "fd-denied", "environ-denied", "mem-denied", "write-denied"):
        assert word in out, out
    assert _sha(os.path.realpath(sys.executable)) == python_before
    rt("delete", "-f", victim, check=True)


def test_mount_destination_symlink_stays_in_rootfs(rt: Runtime, tmp_path: Path) -> None:
    # CVE-2021-30465 class: a destination reached through a symlink that points
    # at a host path is resolved inside the rootfs.
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir()
    b = rt.bundle(**{"process.args": ["sh", "-c", "ls -d /evil/x && grep -c ' /tmp' "
                                      "/proc/self/mountinfo"]})
    os.symlink(str(host_dir), b / "rootfs" / "evil")
    cfg = rt.config(b)
    cfg["mounts"].append({"destination": "/evil/x", "type": "tmpfs", "source": "tmpfs"})
    rt.write_config(b, cfg)
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    assert not (host_dir / "x").exists()
    assert (b / "rootfs" / str(host_dir).lstrip("/") / "x").is_dir()


def test_planted_dev_null_symlink_is_refused(rt: Runtime) -> None:
    # CVE-2025-31133 class: the image's /dev/null is a symlink to a host-side
    # procfs file; masking with it would expose that file. Here /dev is part
    # of the image (no tmpfs on /dev), so the image controls it.
    b = rt.bundle(**{"process.args": ["true"]})
    cfg = rt.config(b)
    cfg["mounts"] = [m for m in cfg["mounts"] if not m["destination"].startswith("/dev")]
    cfg["mounts"].append({"destination": "/dev", "type": "bind",
                          "source": str(b / "rootfs" / "dev"), "options": ["rbind"]})
    rt.write_config(b, cfg)
    os.symlink("/proc/sys/kernel/core_pattern", b / "rootfs" / "dev" / "null")
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 1
    assert "/dev/null in the container is not the null device" in error_lines(p.stderr)[0]


def test_masks_hold_against_remount(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["sh", "-c",
                     "mount -o remount,rw /proc/sys 2>/dev/null && echo remounted; "
                     "umount /proc/kcore 2>/dev/null && echo unmasked; "
                     "umount -l /sys/firmware 2>/dev/null && echo unmasked2; "
                     "mount -t proc proc /mnt 2>/dev/null && echo newproc; "
                     "echo 1 > /proc/sysrq-trigger 2>/dev/null && echo sysrq; echo done"]})
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["done"]
