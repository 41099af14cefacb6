"""linux.netDevices: move host interfaces into the container's network
namespace (parent side, pyroute2; imported only when the config asks)."""

from __future__ import annotations

import os

from pyrunc.errors import PyruncError

TYPE_CHECKING = False  # typing costs ~3 ms to import; only the checkers need it
if TYPE_CHECKING:
    from typing import Any

IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0


def _err(host: str, msg: str) -> PyruncError:
    return PyruncError(f"config.json: linux.netDevices.{host}: {msg}")


def move_devices(devices: dict[str, dict[str, Any]], init_pid: int) -> None:
    from pyroute2 import IPRoute, NetNS
    from pyroute2.netlink.exceptions import NetlinkError

    ns_path = f"/proc/{init_pid}/ns/net"
    with IPRoute() as host:
        for name, opts in devices.items():
            new_name = opts.get("name") or name
            links = host.link_lookup(ifname=name)
            if not links:
                raise _err(name, "no such network device on the host")
            idx = links[0]
            addrs = [(a["family"], a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                     for a in host.get_addr(index=idx)
                     if a["scope"] == RT_SCOPE_UNIVERSE
                     and (a.get_attr("IFA_FLAGS") or a["flags"]) & IFA_F_PERMANENT]
            with NetNS(ns_path) as ct:
                if "%d" not in new_name and ct.link_lookup(ifname=new_name):
                    raise _err(name, f"a device named {new_name!r} already exists in the "
                               "container's network namespace")
            fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                host.link("set", index=idx, net_ns_fd=fd, ifname=new_name)
            except NetlinkError as e:
                raise _err(name, f"cannot move into the container: {e.args[-1]}") from None
            finally:
                os.close(fd)
            with NetNS(ns_path) as ct:
                found = ct.link_lookup(ifname=new_name) if "%d" not in new_name else []
                if not found:  # a %d template: the kernel chose the name; find it by index
                    found = [link["index"] for link in ct.get_links()
                             if link["index"] == idx] or [idx]
                cidx = found[0]
                for family, address, prefixlen in addrs:
                    try:
                        ct.addr("add", index=cidx, address=address, prefixlen=prefixlen,
                                family=family)
                    except NetlinkError as e:
                        raise _err(name, f"cannot restore address {address}: "
                                   f"{e.args[-1]}") from None
                ct.link("set", index=cidx, state="up")
