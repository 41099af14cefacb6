"""What the container process sees: namespaces, mounts, /dev, hostname,
masked and read-only paths, user, cwd and env, read from inside."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import Runtime


def run_sh(rt: Runtime, script: str, **overrides: object) -> subprocess.CompletedProcess[str]:
    b = rt.bundle(**{"process.args": ["sh", "-c", script], **overrides})
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    return p


def mountinfo(text: str) -> dict[str, tuple[str, str, str]]:
    """mountpoint -> (fstype, mount options, super options) (last mount wins)."""
    out = {}
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        f, r = left.split(), right.split()
        out[f[4]] = (r[0], f[5], r[2] if len(r) > 2 else "")
    return out


def test_new_namespaces(rt: Runtime) -> None:
    p = run_sh(rt, "for n in pid net ipc uts mnt; do readlink /proc/self/ns/$n; done")
    inside = p.stdout.split()
    host = [os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "net", "ipc", "uts", "mnt")]
    assert len(inside) == 5
    for i, h in zip(inside, host, strict=True):
        assert i != h


def test_joined_namespace_by_path(rt: Runtime) -> None:
    # A uts namespace made by the test, with its own hostname; the container joins it.
    holder = subprocess.Popen(["unshare", "--uts", "sh", "-c",
                               "hostname joined-ns; echo ok; exec sleep 60"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        b = rt.bundle(**{"process.args": ["hostname"], "hostname": None})
        cfg = rt.config(b)
        cfg["linux"]["namespaces"] = [
            ns if ns["type"] != "uts" else {"type": "uts", "path": f"/proc/{holder.pid}/ns/uts"}
            for ns in cfg["linux"]["namespaces"]]
        rt.write_config(b, cfg)
        p = rt("run", "-b", str(b), rt.new_id())
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == "joined-ns"
    finally:
        holder.kill()
        holder.wait()


def test_pid_one_and_loopback_up(rt: Runtime) -> None:
    p = run_sh(rt, "echo $$; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags; "
                   "ls /sys/class/net")
    pid, _state, flags, *ifaces = p.stdout.split()
    assert pid == "1"
    assert int(flags, 16) & 1  # IFF_UP
    assert ifaces == ["lo"]


def test_hostname_and_domainname(rt: Runtime) -> None:
    p = run_sh(rt, "hostname; cat /proc/sys/kernel/domainname", hostname="box1",
               domainname="example.org")
    assert p.stdout.split() == ["box1", "example.org"]


def test_mounts_and_options(rt: Runtime) -> None:
    p = run_sh(rt, "cat /proc/self/mountinfo")
    mi = mountinfo(p.stdout)
    assert mi["/"][1].split(",")[0] == "ro"  # root.readonly
    assert mi["/proc"][0] == "proc"
    assert mi["/dev"][0] == "tmpfs" and "nosuid" in mi["/dev"][1]
    assert "mode=755" in mi["/dev"][2]
    assert mi["/dev/pts"][0] == "devpts" and "noexec" in mi["/dev/pts"][1]
    assert mi["/dev/shm"][0] == "tmpfs" and {"nosuid", "nodev", "noexec"} <= set(
        mi["/dev/shm"][1].split(","))
    assert mi["/dev/mqueue"][0] == "mqueue"
    assert mi["/sys"][0] == "sysfs" and mi["/sys"][1].startswith("ro")
    assert mi["/sys/fs/cgroup"][1].startswith("ro")


CGROUP_V1 = (os.path.isdir("/sys/fs/cgroup/pids")
             and not os.path.exists("/sys/fs/cgroup/cgroup.procs"))
CGROUP_RO_SCRIPT = "cat /proc/self/mountinfo; mkdir /sys/fs/cgroup/pids/x /sys/fs/cgroup/x; true"


def check_cgroup_v1_read_only(p: subprocess.CompletedProcess[str]) -> None:
    """The cgroup mount ("ro", "nosuid", "noexec", "nodev" in the default
    config): the tmpfs and each hierarchy bound in it carry all four, and
    nothing under them can be written (CGROUP_RO_SCRIPT's output)."""
    assert p.returncode == 0, p.stderr
    mi = mountinfo(p.stdout)
    subs = [m for m in mi if m.startswith("/sys/fs/cgroup/")]
    assert "/sys/fs/cgroup/pids" in subs
    for m in ["/sys/fs/cgroup", *subs]:
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(mi[m][1].split(",")), (m, mi[m])
    assert p.stderr.count("Read-only file system") == 2, p.stderr


@pytest.mark.skipif(not CGROUP_V1, reason="needs cgroup v1 hierarchies")
def test_cgroup_v1_hierarchies_are_read_only(rt: Runtime) -> None:
    check_cgroup_v1_read_only(run_sh(rt, CGROUP_RO_SCRIPT))


def test_bind_mount_file_and_dir(rt: Runtime, tmp_path: Path) -> None:
    d = tmp_path / "share"
    d.mkdir()
    (d / "hello").write_text("dir bind\n")
    f = tmp_path / "single"
    f.write_text("file bind\n")
    b = rt.bundle(**{"process.args": ["sh", "-c",
                                      "cat /mnt/d/hello /etc/single; echo x > /mnt/d/new; "
                                      "touch /mnt/ro/nope 2>/dev/null || echo ro-denied; "
                                      "grep ' /mnt/ro ' /proc/self/mountinfo"]})
    cfg = rt.config(b)
    cfg["mounts"] += [
        {"destination": "/mnt/d", "type": "bind", "source": str(d), "options": ["rbind"]},
        {"destination": "/etc/single", "source": str(f), "options": ["bind", "ro"]},
        {"destination": "/mnt/ro", "type": "none", "source": str(d),
         "options": ["bind", "ro", "nosuid", "nodev", "noexec", "private"]},
    ]
    rt.write_config(b, cfg)
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[:3] == ["dir bind", "file bind", "ro-denied"]
    opts = lines[3].split()[5].split(",")
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(opts)
    assert (d / "new").read_text() == "x\n"


def test_dev_nodes_and_symlinks(rt: Runtime) -> None:
    p = run_sh(rt, "for d in null zero full random urandom tty; do "
                   "stat -c '%n %F %t:%T %a' /dev/$d; done; "
                   "for l in fd stdin stdout stderr ptmx; do echo $l $(readlink /dev/$l); done")
    lines = p.stdout.splitlines()
    assert lines[0] == "/dev/null character special file 1:3 666"
    assert lines[1] == "/dev/zero character special file 1:5 666"
    assert lines[5] == "/dev/tty character special file 5:0 666"
    assert lines[6:] == ["fd /proc/self/fd", "stdin /proc/self/fd/0", "stdout /proc/self/fd/1",
                         "stderr /proc/self/fd/2", "ptmx pts/ptmx"]


def test_config_devices(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["stat", "-c", "%F %t:%T %a %u:%g", "/dev/mydev"]})
    cfg = rt.config(b)
    cfg["linux"]["devices"] = [{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 5,
                                "fileMode": 0o640, "uid": 7, "gid": 8}]
    cfg["linux"]["resources"]["devices"].append(
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"})
    rt.write_config(b, cfg)
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "character special file 1:5 640 7:8"


def test_masked_and_readonly_paths(rt: Runtime) -> None:
    p = run_sh(rt, "cat /proc/kcore | wc -c; ls /sys/firmware | wc -l; "
                   "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null || echo sys-ro")
    assert p.stdout.split() == ["0", "0", "sys-ro"]


def test_user_cwd_env_umask(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["sh", "-c", "id; pwd; echo $FOO $BAR $HOME; umask"],
                     "process.user": {"uid": 1000, "gid": 1000, "additionalGids": [10, 20],
                                      "umask": 0o027},
                     "process.cwd": "/work/dir",
                     "process.env": ["PATH=/bin:/usr/bin", "FOO=1", "BAR=2", "FOO=3"]})
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "uid=1000 gid=1000 groups=10,20"
    assert lines[1] == "/work/dir"
    assert lines[2] == "3 2 /"
    assert lines[3] == "0027"


def test_home_from_passwd(rt: Runtime) -> None:
    p = run_sh(rt, "echo $HOME")
    assert p.stdout.strip() == "/root"


def test_no_pivot(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["sh", "-c", "ls /; cat /proc/self/mountinfo | wc -l"]})
    p = rt("run", "--no-pivot", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    assert "bin" in p.stdout.split()


def test_only_stdio_fds_reach_the_container(rt: Runtime) -> None:
    p = run_sh(rt, "ls /proc/$$/fd; true")
    assert sorted(p.stdout.split(), key=int) == ["0", "1", "2"]


def _console_receiver(path: str, out: dict[str, object]) -> socket.socket:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        _msg, fds, _f, _a = socket.recv_fds(conn, 1024, 1)
        conn.close()
        master = fds[0]
        data = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        os.close(master)
        out["data"] = data
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    out["thread"] = t
    return srv


def test_terminal_over_console_socket(rt: Runtime, tmp_path: Path) -> None:
    sock_path = str(tmp_path / "console.sock")
    got: dict[str, object] = {}
    srv = _console_receiver(sock_path, got)
    b = rt.bundle(**{"process.terminal": True,
                     "process.args": ["sh", "-c", "tty; test -t 0 && echo stdin-is-tty"]})
    cid = rt.new_id()
    try:
        p = rt("run", "-d", "--console-socket", sock_path, "-b", str(b), cid)
        assert p.returncode == 0, p.stderr
        thread = got["thread"]
        assert isinstance(thread, threading.Thread)
        thread.join(20)
        out = got["data"]
        assert isinstance(out, bytes)
        text = out.decode().replace("\r", "")
        assert "/dev/pts/0" in text and "stdin-is-tty" in text
    finally:
        srv.close()
        rt("delete", "-f", cid)


def test_terminal_without_console_socket_when_detached(rt: Runtime) -> None:
    b = rt.bundle(**{"process.terminal": True})
    p = rt("run", "-d", "-b", str(b), rt.new_id())
    assert p.returncode == 1
    assert "console socket" in p.stderr


@pytest.mark.parametrize("propagation", ["rprivate", "rslave", "rshared"])
def test_rootfs_propagation(rt: Runtime, propagation: str) -> None:
    p = run_sh(rt, "awk '$5 == \"/\"' /proc/self/mountinfo", **{"linux.rootfsPropagation":
                                                           propagation})
    fields = p.stdout.split(" - ")[0].split()[6:]
    if propagation == "rshared":
        assert any(f.startswith("shared:") for f in fields)
    elif propagation == "rslave":
        # a slave of the host's "/" (private on some hosts, so no master: then private)
        assert not any(f.startswith("shared:") for f in fields)
    else:
        assert not any(f.startswith(("shared:", "master:")) for f in fields)


def test_tmpcopyup(rt: Runtime) -> None:
    b = rt.bundle(**{"process.args": ["sh", "-c", "ls /etc/passwd && echo x > /etc/new && "
                                      "grep ' /etc ' /proc/self/mountinfo | cut -d' ' -f9"]})
    cfg = rt.config(b)
    cfg["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                          "options": ["tmpcopyup", "nosuid"]})
    rt.write_config(b, cfg)
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["/etc/passwd", "tmpfs"]
    assert not (b / "rootfs" / "etc" / "new").exists()


def test_idmapped_bind_mount(rt: Runtime, tmp_path: Path) -> None:
    src = tmp_path / "owned"
    src.mkdir()
    (src / "f").write_text("x")
    os.chown(src / "f", 0, 0)
    b = rt.bundle(**{"process.args": ["stat", "-c", "%u:%g", "/mnt/f"]})
    cfg = rt.config(b)
    cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(src),
                          "options": ["rbind", "idmap"],
                          "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
                          "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 10}]})
    rt.write_config(b, cfg)
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "1000:2000"
    assert (src / "f").stat().st_uid == 0  # the files themselves are untouched


def test_idmap_without_mappings_or_userns_is_an_error(rt: Runtime, tmp_path: Path) -> None:
    b = rt.bundle(**{"process.args": ["true"]})
    cfg = rt.config(b)
    cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(tmp_path),
                          "options": ["bind", "idmap"]})
    rt.write_config(b, cfg)
    p = rt("run", "-b", str(b), rt.new_id())
    assert p.returncode == 1
    assert "idmap needs uidMappings/gidMappings or a user namespace" in p.stderr


def test_terminal_in_the_foreground(rt: Runtime) -> None:
    # `run` with a terminal and no console socket proxies the pty to our own
    # terminal (here one made by script(1)), window size included.
    b = rt.bundle(**{"process.terminal": True,
                     "process.args": ["sh", "-c", "tty; stty size; exit 5"]})
    cmd = " ".join([*rt.cmd, "--root", str(rt.root), "run", "-b", str(b), rt.new_id()])
    p = subprocess.run(["script", "-qec", f"stty cols 97 rows 31; {cmd}", "/dev/null"],
                       capture_output=True, text=True, timeout=60)
    out = p.stdout.replace("\r", "")
    assert "/dev/pts/0" in out and "31 97" in out, out
    assert p.returncode == 5


def test_recursive_read_only_bind(rt: Runtime, tmp_path: Path) -> None:
    # "rro" (mount_setattr AT_RECURSIVE) makes submounts read-only too; "ro" would not.
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(src / "sub")], check=True)
    try:
        b = rt.bundle(**{"process.args": ["sh", "-c", "touch /mnt/a 2>/dev/null || echo ro-top; "
                                          "touch /mnt/sub/b 2>/dev/null || echo ro-sub"]})
        cfg = rt.config(b)
        cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(src),
                              "options": ["rbind", "rro"]})
        rt.write_config(b, cfg)
        p = rt("run", "-b", str(b), rt.new_id())
        assert p.returncode == 0, p.stderr
        assert p.stdout.split() == ["ro-top", "ro-sub"]
    finally:
        subprocess.run(["umount", str(src / "sub")], check=True)


def _in_script(rt: Runtime, b: Path) -> subprocess.CompletedProcess[str]:
    """`run` in the foreground on a terminal made by script(1)."""
    cmd = " ".join([*rt.cmd, "--root", str(rt.root), "run", "-b", str(b), rt.new_id()])
    return subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True,
                          timeout=60)


def test_dev_console_is_the_pty(rt: Runtime) -> None:
    # Spec (config-linux, default devices): with a terminal, the pty is
    # bind-mounted on /dev/console.
    b = rt.bundle(**{"process.terminal": True,
                     "process.args": ["sh", "-c", "stat -c '%F %t:%T' /dev/console $(tty); "
                                                  "echo hi > /dev/console"]})
    p = _in_script(rt, b)
    lines = p.stdout.replace("\r", "").splitlines()
    assert lines[:2] == ["character special file 88:0"] * 2, p.stdout
    assert lines[2] == "hi" and p.returncode == 0
