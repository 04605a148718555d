"""What vdsm does with a VM that storage errors paused: resume, leave paused, or kill.

oVirt's ``VmResumeBehavior`` per VM: ``auto_resume`` (continue the VM as soon as its
storage is usable again; the default for VMs that are not HA with a lease),
``leave_paused`` (do nothing), ``kill`` (kill it once it has been paused for vdsm's
``vm_kill_paused_time``, 80 s, so HA can restart it elsewhere; resumed if the storage
returns before that). "Usable again" is judged here as vdsm's storage-domain monitor
does, by doing I/O: a small write + fsync on the host's own mount of the volume must
return within a deadline.
"""

from __future__ import annotations

import contextlib
import enum
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from hcisim.lab.errors import LabError
from hcisim.lab.guests.qemu import Guest
from hcisim.lab.guests.qmp import QmpEvent


class ResumeBehavior(enum.StrEnum):
    AUTO_RESUME = "auto_resume"
    LEAVE_PAUSED = "leave_paused"
    KILL = "kill"


VDSM_KILL_PAUSED_S = 80.0


def mount_writable(mount: Path, name: str, timeout_s: float = 2.0) -> bool:
    """True if a write + fsync of ``mount/.hcisim-probe-<name>`` returns in ``timeout_s``.

    The I/O runs in a daemon thread: on a hung mount it may never return, and the caller
    must not hang with it.
    """
    result: list[bool] = []

    def probe() -> None:
        try:
            fd = os.open(mount / f".hcisim-probe-{name}", os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, f"{time.time():.6f}\n".encode(), 0)
                os.fsync(fd)
            finally:
                os.close(fd)
            result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True, name=f"probe {mount}")
    t.start()
    t.join(timeout_s)
    return bool(result and result[0])


@dataclass(frozen=True)
class ResumeAction:
    t: float
    action: str  # resumed | killed | left_paused
    paused_s: float


class AutoResume(threading.Thread):
    """Watch one guest; when qemu says ``io-error`` apply the behaviour (poll every ``poll_s``)."""

    def __init__(self, guest: Guest, behavior: ResumeBehavior,
                 storage_usable: Callable[[], bool], poll_s: float = 0.5,
                 kill_after_s: float = VDSM_KILL_PAUSED_S) -> None:
        super().__init__(name=f"auto-resume {guest.spec.name}", daemon=True)
        self.guest = guest
        self.behavior = behavior
        self.storage_usable = storage_usable
        self.poll_s = poll_s
        self.kill_after_s = kill_after_s
        self.actions: list[ResumeAction] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _paused_since(self) -> float:
        stops = self.guest.qmp.events_named("STOP")
        return stops[-1].t if stops else time.time()

    def run(self) -> None:
        left_paused_at: float | None = None
        while not self._halt.wait(self.poll_s):
            if not self.guest.running():
                return
            try:
                status = self.guest.status()
            except LabError:
                continue  # qemu busy or going away: ask again next poll
            if status != "io-error":
                left_paused_at = None
                continue
            since = self._paused_since()
            paused = time.time() - since
            if self.behavior is ResumeBehavior.LEAVE_PAUSED:
                if left_paused_at != since:
                    left_paused_at = since
                    self.actions.append(ResumeAction(time.time(), "left_paused", paused))
                continue
            if self.behavior is ResumeBehavior.KILL and paused >= self.kill_after_s:
                self.actions.append(ResumeAction(time.time(), "killed", paused))
                self.guest.add_event(QmpEvent(time.time(), "SHUTDOWN",
                                              {"reason": "killed: paused too long"}))
                self.guest.kill()
                return
            if self.storage_usable():
                with contextlib.suppress(LabError):
                    self.guest.qmp.execute("cont")
                    self.actions.append(ResumeAction(time.time(), "resumed",
                                                     time.time() - since))
