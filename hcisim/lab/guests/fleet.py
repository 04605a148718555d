"""Every VM of a scenario as a real guest: the entry point for the lab run.

``with scenario_guests(be, placement) as fleet:`` starts one qemu per VM that has a disk,
on its host, its disk on that host's mount of the VM's first disk's volume, boots them
all, and stops every one on the way out whatever happened. ``fleet.vm_state(t0, t_end)``
gives the rows for the observations and ``fleet.check(vm)`` the history check.

Sizing: a scenario VM has GiB of RAM, the lab's guests have 128-255 MiB (two shared cores
emulate them in software). Each guest gets ``ram_mib`` (clamped) and its working set and
dirty rate are scaled by the same factor as its RAM, so the ratio that decides whether
migration converges (dirty rate against bandwidth, working set against RAM) is kept when
the migration bandwidth is scaled alike. The factor is in ``fleet.scale[vm]``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hcisim.lab.errors import LabError
from hcisim.lab.guests.image import GuestImage, ensure_image
from hcisim.lab.guests.lab import check_guest, start_guest
from hcisim.lab.guests.qemu import Guest
from hcisim.lab.guests.vmstate import StateRow, vm_state_rows
from hcisim.lab.history import CheckResult
from hcisim.scenario import Scenario

PAGE = 4096
RAM_MIB = 160.0
RAM_RANGE_MIB = (128.0, 255.99)  # small: two shared cores emulate them (TCG)


@dataclass(frozen=True)
class GuestSizing:
    ram_mib: float
    dirty_mib: int
    dirty_pages_s: int
    scale: float  # guest RAM / scenario RAM


def sizing(ram_gib: float, working_set_gib: float | None, dirty_rate_mb_s: float,
           ram_mib: float = RAM_MIB) -> GuestSizing:
    """The lab guest of a scenario VM: RAM clamped, working set and dirty rate scaled."""
    lo, hi = RAM_RANGE_MIB
    ram = min(max(ram_mib, lo), hi)
    scale = ram / (ram_gib * 1024)
    working = (working_set_gib if working_set_gib is not None else ram_gib) * 1024 * scale
    # the memory writer's set must leave room for the kernel and the initramfs
    dirty_mib = int(min(working, ram - 96))
    pages_s = int(dirty_rate_mb_s * 1e6 * scale / PAGE)
    return GuestSizing(ram, max(dirty_mib, 0), pages_s if dirty_mib > 0 else 0, scale)


@dataclass
class Fleet:
    """The guests of one lab run, by VM name."""

    guests: dict[str, Guest] = field(default_factory=dict)
    volumes: dict[str, str] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    boot_s: dict[str, float] = field(default_factory=dict)

    def vm_state(self, t0: float, t_end: float) -> list[StateRow]:
        rows: list[StateRow] = []
        for vm, g in self.guests.items():
            rows += vm_state_rows(vm, g.spec.host, g.qmp.events, t0, t_end)
        return rows

    def check(self, be: Any, vm: str) -> CheckResult:
        g = self.guests[vm]
        return check_guest(be, g, self.volumes[vm], g.spec.host)


@contextlib.contextmanager
def scenario_guests(be: Any, sc: Scenario, placement: dict[str, str],
                    image: GuestImage | None = None, ram_mib: float = RAM_MIB,
                    **options: Any) -> Iterator[Fleet]:
    """Start and boot a guest for every VM of ``sc`` with a disk, on ``placement[vm]``.

    Boots one after the other: on two cores, parallel TCG boots only take longer each.
    Every guest started is stopped on the way out (exception and Ctrl-C included).
    """
    img = image or ensure_image()
    fleet = Fleet()
    with contextlib.ExitStack() as stack:
        for vm in sc.vms:
            if not vm.disks:
                continue
            host = placement.get(vm.name)
            if host is None:
                raise LabError(f"start guest {vm.name}", "the VM has no host in the placement")
            size = sizing(vm.ram_gib, vm.working_set_gib, vm.dirty_rate_mb_s, ram_mib)
            volume = vm.disks[0].volume
            guest = stack.enter_context(start_guest(
                be, vm.name, host, volume, image=img, mem_mib=size.ram_mib, vcpus=1,
                dirty_mib=size.dirty_mib, dirty_pages_s=size.dirty_pages_s, **options))
            fleet.guests[vm.name] = guest
            fleet.volumes[vm.name] = volume
            fleet.scale[vm.name] = size.scale
            fleet.boot_s[vm.name] = guest.boot()
        yield fleet
