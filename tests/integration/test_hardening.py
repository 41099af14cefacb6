"""Attacks from inside the container (known runc CVE classes); each must fail."""

from __future__ import annotations

import hashlib
import os
import stat
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


def test_symlinked_destinations_stay_inside(rt: Runtime, tmp_path: Path) -> None:
    # Mount, device, masked, read-only and cwd paths reached through symlinks
    # that climb ("../../.."), point at the host's /etc, or point at a host
    # directory all resolve inside the rootfs, as if it were "/".
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir()
    src = tmp_path / "single"
    src.write_text("bound\n")
    mark = f"pyrunc-{rt.token}"
    b = rt.bundle(**{"process.args": ["sh", "-c",
                     f"pwd; cat /proc/self/mountinfo | cut -d' ' -f5; cat /etc/{mark}; "
                     f"cat /etc/secret; touch /mnt/w 2>/dev/null || echo mnt-ro; "
                     f"stat -c %F /etc/{mark}.dev"],
                     "process.cwd": f"/evil/{mark}-cwd"})
    r = b / "rootfs"
    os.symlink("../../../../..", r / "up")
    os.symlink("/etc", r / "etcl")
    os.symlink("../../tmp/../mnt", r / "rel")
    os.symlink(str(host_dir), r / "evil")
    (r / "etc" / "secret").write_text("image secret\n")
    cfg = rt.config(b)
    cfg["mounts"] += [
        {"destination": "/up/m1", "type": "tmpfs", "source": "tmpfs"},
        {"destination": f"/etcl/{mark}", "type": "bind", "source": str(src),
         "options": ["bind"]},
        {"destination": "/rel/m2", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/evil/m3", "type": "tmpfs", "source": "tmpfs"},
    ]
    cfg["linux"]["devices"] = [{"path": f"/up/etcl/{mark}.dev", "type": "c", "major": 1,
                                "minor": 3}]
    cfg["linux"]["maskedPaths"].append("/up/etcl/secret")
    cfg["linux"]["readonlyPaths"].append("/rel")
    cfg["root"]["readonly"] = False
    rt.write_config(b, cfg)
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == f"{host_dir}/{mark}-cwd"
    for where in ("/m1", f"/etc/{mark}", "/mnt/m2", f"{host_dir}/m3"):
        assert where in lines, (where, lines)
    # /etc/secret is masked (empty), /mnt read-only
    assert lines[-3:] == ["bound", "mnt-ro", "character special file"]
    for host_path in (f"/etc/{mark}", f"/etc/{mark}.dev", "/m1", "/mnt/m2",
                      str(host_dir / "m3"), str(host_dir / f"{mark}-cwd")):
        assert not os.path.lexists(host_path), host_path
    assert (r / str(host_dir).lstrip("/") / "m3").is_dir()


def _refused_mount(rt: Runtime, link: tuple[str, str], destination: str) -> tuple[int, str]:
    """Run with a tmpfs on destination and one symlink planted in the image:
    (index of that mount, the one error line)."""
    b = rt.bundle(**{"process.args": ["true"]})
    os.symlink(link[1], b / "rootfs" / link[0])
    cfg = rt.config(b)
    cfg["mounts"].append({"destination": destination, "type": "tmpfs", "source": "tmpfs"})
    rt.write_config(b, cfg)
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 1
    lines = error_lines(p.stderr)
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return len(cfg["mounts"]) - 1, lines[0]


def test_symlink_loop_destination_is_one_clear_error(rt: Runtime) -> None:
    idx, line = _refused_mount(rt, ("loop1", "loop1/x"), "/loop1/x")
    assert f"mounts[{idx}]" in line
    assert "too many levels of symbolic links" in line.lower()


def test_mount_inside_proc_through_a_symlink_is_refused(rt: Runtime) -> None:
    # A destination that resolves into the container's /proc (here through an
    # image symlink) would shadow what the kernel shows or undo a mask: refused
    # like runc's checkProcMount, except the few files lxcfs provides.
    idx, line = _refused_mount(rt, ("psys", "/proc/sys"), "/psys/kernel")
    assert f"mounts[{idx}]" in line and "'/proc/sys/kernel', inside /proc" in line


def test_planted_dev_console_symlink_is_refused(rt: Runtime) -> None:
    # CVE-2025-52565 class: the image's /dev/console is a symlink to a procfs
    # file; bind-mounting the pty "there" would land on that file. The image's
    # own /dev is used (no tmpfs on /dev), so the image controls it.
    from tests.integration.test_rootfs import _in_script

    b = rt.bundle(**{"process.terminal": True, "process.args": ["true"]})
    cfg = rt.config(b)
    cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] != "/dev"]
    cfg["mounts"].insert(1, {"destination": "/dev", "type": "bind",
                             "source": str(b / "rootfs" / "dev"), "options": ["rbind"]})
    rt.write_config(b, cfg)
    os.mknod(b / "rootfs" / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.symlink("pts/ptmx", b / "rootfs" / "dev" / "ptmx")
    os.symlink("/proc/sys/kernel/core_pattern", b / "rootfs" / "dev" / "console")
    before = Path("/proc/sys/kernel/core_pattern").read_text()
    p = _in_script(rt, b)
    assert p.returncode == 1, p.stdout
    assert "/dev/console in the container is not a file or a device" in p.stdout
    assert Path("/proc/sys/kernel/core_pattern").read_text() == before
