"""OOM notifications for `events`, as runc gets them: on v1 an eventfd
registered on memory.oom_control through cgroup.event_control; on v2 the
kernel's "modified" notification on memory.events (kernfs files wake poll()
with POLLPRI), where a rising oom_kill count is an OOM."""

from __future__ import annotations

import os
import select

from pyrunc.cgroups import fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyrunc.cgroups import Manager


class OomWatch:
    def __init__(self, mgr: Manager) -> None:
        self.fd = -1
        self.v2 = mgr.v2
        self.dir = mgr.dir_of("memory")
        self.poll = select.poll()
        if self.dir is not None and self.v2:
            from pyrunc.cgroups.v2 import controllers

            if "memory" not in controllers(self.dir):
                self.dir = None
        if self.dir is None:
            return  # no memory controller: nothing to watch
        if self.v2:
            self.fd = os.open(os.path.join(self.dir, "memory.events"), os.O_RDONLY | os.O_CLOEXEC)
            self.kills = self._kills()  # reading also arms the next notification
            self.poll.register(self.fd, select.POLLPRI | select.POLLERR)
            return
        self.fd = os.eventfd(0, os.EFD_CLOEXEC)
        ctl = os.open(os.path.join(self.dir, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            fs.write_raw(self.dir, "cgroup.event_control", f"{self.fd} {ctl}")
        finally:
            os.close(ctl)  # the kernel holds its own reference now
        self.poll.register(self.fd, select.POLLIN)

    def _kills(self) -> int:
        return fs.parse_keyed(os.pread(self.fd, 4096, 0).decode()).get("oom_kill", 0)

    def wait(self, timeout: float) -> int:
        """Wait up to timeout seconds; the number of OOM events seen."""
        if self.fd < 0:
            select.select([], [], [], timeout)
            return 0
        if not self.poll.poll(max(0, int(timeout * 1000))):
            return 0
        if self.v2:
            try:
                kills = self._kills()
            except OSError:  # the cgroup is gone
                self.close()
                return 0
            new, self.kills = max(0, kills - self.kills), kills
            return new
        os.eventfd_read(self.fd)
        # The eventfd also fires when the cgroup goes away: that is no OOM.
        return 0 if self.gone() else 1

    def gone(self) -> bool:
        return self.dir is not None and not os.path.exists(self.dir)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

