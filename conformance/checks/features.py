"""config-linux.md features that need a host-side peer: netDevices, intelRdt, seccomp notify."""

from __future__ import annotations

import array
import json
import os
import socket
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

from conformance.checks.util import need_x86_64
from conformance.harness import Ctx
from conformance.registry import Skip, check, expect


class Veth:
    """A veth pair on the host; deleting either end (or the netns it moved to) removes both."""

    def __init__(self) -> None:
        self.name = f"cf{uuid.uuid4().hex[:8]}"
        r = subprocess.run(
            ["ip", "link", "add", self.name, "type", "veth", "peer", "name", self.name + "p"],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise Skip(f"cannot create a veth pair on this host: {r.stderr.strip()}")

    def close(self) -> None:
        for n in (self.name, self.name + "p"):
            subprocess.run(["ip", "link", "del", n], capture_output=True)


@check("net-devices", "config-linux.md#network-devices")
def net_devices(ctx: Ctx) -> None:
    """A netDevices interface is moved in, renamed, up, and keeps its global address."""
    veth = Veth()
    try:
        subprocess.run(["ip", "addr", "add", "10.254.77.1/24", "dev", veth.name], check=True)
        cfg = ctx.config("ip -o link show cfeth0; ip -o addr show cfeth0")
        cfg["linux"]["netDevices"] = {veth.name: {"name": "cfeth0"}}
        out = ctx.run_ok(cfg)
        expect("cfeth0" in out, f"no cfeth0 in the container: {out.strip()[:200]!r}")
        flags = out.split("<", 1)[1].split(">", 1)[0].split(",") if "<" in out else []
        expect("UP" in flags, f"cfeth0 flags {flags}: not up")
        expect("10.254.77.1/24" in out, "the interface lost its global IPv4 address")
    finally:
        veth.close()


@check("net-devices-name-clash", "config-linux.md#network-devices")
def net_devices_clash(ctx: Ctx) -> None:
    """Moving an interface under a name that exists in the container (lo) is an error."""
    veth = Veth()
    try:
        cfg = ctx.config("true")
        cfg["linux"]["netDevices"] = {veth.name: {"name": "cfeth0"}}
        ctx.control(cfg, "the name clash")
    finally:
        veth.close()
    veth = Veth()
    try:
        cfg["linux"]["netDevices"] = {veth.name: {"name": "lo"}}
        expect(ctx.run(cfg).rc != 0, "run succeeded moving an interface in as 'lo'")
    finally:
        veth.close()


@check("intelrdt-without-resctrl", "config-linux.md#intelrdt")
def intelrdt(ctx: Ctx) -> None:
    """intelRdt set while no resctrl filesystem is mounted generates an error."""
    if "resctrl" in Path("/proc/mounts").read_text():
        raise Skip("resctrl is mounted on this host")
    cfg = ctx.config("true")
    ctx.control(cfg, "intelRdt")
    cfg["linux"]["intelRdt"] = {"closID": "conformance"}
    expect(ctx.run(cfg).rc != 0, "run succeeded with intelRdt but no resctrl mounted")


class Listener:
    """A seccomp agent stand-in: records every connection's payload and passed fds."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.conns: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.conns.append(self._read(conn))

    def _read(self, conn: socket.socket) -> dict[str, Any]:
        conn.settimeout(3)
        data, fds, calls, closed = b"", [], 0, False
        try:
            while True:
                msg, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(64 * 4))
                if not msg and not anc:
                    closed = True
                    break
                calls += 1
                data += msg
                for level, kind, payload in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        a = array.array("i")
                        a.frombytes(payload[: len(payload) - len(payload) % 4])
                        fds.append((calls, list(a)))
                        for fd in a:  # closing the notify fd fails the trapped call (ENOSYS)
                            os.close(fd)
        except (TimeoutError, OSError):
            pass
        finally:
            conn.close()
        return {"data": data, "fds": fds, "closed": closed}

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


def _notify_cfg(ctx: Ctx, sock: Path) -> dict[str, Any]:
    cfg = ctx.config("probe mkdir /tmp/conf-notify")
    cfg["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": str(sock),
        "listenerMetadata": "conformance-meta",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
    }
    return cfg


@check("seccomp-notify-listener", "config-linux.md#the-container-process-state")
def seccomp_notify(ctx: Ctx) -> None:
    """SCMP_ACT_NOTIFY: one connection to listenerPath, the container process state as JSON,
    the seccomp fd over SCM_RIGHTS in the first sendmsg, then the connection is closed."""
    ctx.need_probe()
    need_x86_64()
    sock = ctx.tmp / "agent.sock"
    listener = Listener(sock)
    try:
        p = ctx.run(_notify_cfg(ctx, sock))
    finally:
        listener.close()
    expect(p.rc == 0, f"run with a seccomp listener failed: {p.tail()}")
    expect(len(listener.conns) == 1, f"{len(listener.conns)} connections, expected exactly 1")
    c = listener.conns[0]
    expect(c["closed"], "the runtime did not close the connection after sending the state")
    try:
        st = json.loads(c["data"])
    except json.JSONDecodeError:
        raise AssertionError(f"payload is not JSON: {c['data'][:80]!r}") from None
    for key in ("ociVersion", "fds", "pid", "state"):
        expect(key in st, f"container process state lacks {key}: {sorted(st)}")
    expect(st.get("metadata") == "conformance-meta", f"metadata {st.get('metadata')!r}")
    expect("seccompFd" in st.get("fds", []), f"fds {st.get('fds')}, expected seccompFd")
    expect(c["fds"] and c["fds"][0][0] == 1, f"fds not sent in the first sendmsg: {c['fds']}")
    n = sum(len(g) for _, g in c["fds"])
    expect(n == len(st["fds"]), f"{n} fds passed, state lists {len(st['fds'])}")
    expect("errno=38" in p.out or "errno=0" in p.out, f"probe: {p.out.strip()!r}")


@check("seccomp-notify-unreachable", "config-linux.md#seccomp")
def seccomp_notify_unreachable(ctx: Ctx) -> None:
    """A listenerPath nobody listens on generates an error."""
    ctx.need_probe()
    need_x86_64()
    ctx.control(ctx.config("true"), "the seccomp listener")
    cfg = _notify_cfg(ctx, ctx.tmp / "nobody.sock")
    expect(ctx.run(cfg).rc != 0, "run succeeded although the seccomp listener is unreachable")
