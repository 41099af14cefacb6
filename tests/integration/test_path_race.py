"""CVE-2021-30465 class: while pyrunc sets up a container's mounts, a host
process keeps swapping a directory on the mounts' path with a symlink to a
host directory (renameat2 RENAME_EXCHANGE: the name always exists, as a
directory or as the symlink). No run may mount on, or create anything in,
the host directory; each either mounts inside the container or fails with
one clear line. A createContainer hook runs in the container's mount
namespace before pivot_root, so it sees a mount that went astray there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import Runtime, error_lines

RUNS = 50

FLIPPER = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode()
sys.stdout.write("go\n")
sys.stdout.flush()
while libc.renameat2(-100, a, -100, b, 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
    pass
sys.exit("renameat2 failed: errno %d" % ctypes.get_errno())
"""


def _snapshot(top: Path) -> list[tuple[str, str]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            kind = "link" if p.is_symlink() else "dir" if p.is_dir() else p.read_text()
            out.append((str(p.relative_to(top)), kind))
    return sorted(out)


def _mounts_on(path: Path, mountinfo: str) -> list[str]:
    return [line for line in mountinfo.splitlines()
            if len(line.split()) > 4 and (line.split()[4] == str(path)
                                          or line.split()[4].startswith(f"{path}/"))]


def test_swapping_a_destination_for_a_symlink_never_mounts_outside(rt: Runtime,
                                                                   tmp_path: Path) -> None:
    host = tmp_path / "hostdir"
    for sub in ("y", "z"):
        (host / sub).mkdir(parents=True)
        (host / sub / "keep").write_text("host file\n")
    before = _snapshot(host)
    src = tmp_path / f"src-{rt.token}"
    src.mkdir()
    (src / "MARK").write_text("bound\n")
    seen = tmp_path / "seen"
    b = rt.bundle(**{"process.args": ["sh", "-c", "cat /proc/self/mountinfo"]})
    (b / "rootfs" / "mnt" / "x").mkdir(parents=True)
    os.symlink(str(host), b / "rootfs" / "mnt" / "x-link")
    cfg = rt.config(b)
    cfg["root"]["readonly"] = False
    cfg["mounts"] += [
        {"destination": "/mnt/x/y", "type": "tmpfs", "source": "tmpfs",
         "options": ["size=1232k"]},
        {"destination": "/mnt/x/z", "type": "bind", "source": str(src), "options": ["rbind"]},
    ]
    cfg["hooks"] = {"createContainer": [{
        "path": "/bin/sh", "env": ["PATH=/usr/bin:/bin"],
        "args": ["sh", "-c", f"cat /proc/self/mountinfo >> {seen}"]}]}
    rt.write_config(b, cfg)

    flipper = subprocess.Popen([sys.executable, "-c", FLIPPER, str(b / "rootfs" / "mnt" / "x"),
                                str(b / "rootfs" / "mnt" / "x-link")],
                               stdout=subprocess.PIPE, text=True)
    ok = failed = 0
    reasons: set[str] = set()
    try:
        assert flipper.stdout is not None and flipper.stdout.readline() == "go\n"
        for _ in range(RUNS):
            seen.write_text("")
            p = rt("run", "-b", str(b), rt.new_id())
            astray = _mounts_on(host, seen.read_text())
            assert not astray, f"a mount landed on the host directory: {astray}"
            assert not _mounts_on(host, Path("/proc/self/mountinfo").read_text())
            assert _snapshot(host) == before, "the host directory was changed"
            if p.returncode == 0:
                assert "size=1232k" in p.stdout and rt.token in p.stdout, p.stdout
                ok += 1
            else:
                lines = error_lines(p.stderr)
                assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
                assert "mounts[" in lines[0], lines
                reasons.add(lines[0].split(': ', 3)[-1])
                failed += 1
            assert flipper.poll() is None, "the flipper stopped"
    finally:
        flipper.kill()
        flipper.wait()
        if flipper.stdout is not None:
            flipper.stdout.close()
    print(f"{ok} runs mounted inside the container, {failed} refused: {reasons}")
