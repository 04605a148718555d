"""A lab guest that holds its VM lease: qemu started through ``sanlock client command``.

The guest itself is helper H's (:mod:`hcisim.lab.guests`); only its command line changes:
the host's sanlock daemon acquires the VM's lease for the starting process, which then
execs qemu, so sanlock kills exactly that qemu when the host loses the lease. A lease held
elsewhere makes the start fail with sanlock's reason (in the guest's ``qemu.log``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from hcisim.lab.errors import LabError
from hcisim.lab.guests.image import GuestImage, ensure_image
from hcisim.lab.guests.lab import DISK_BYTES, guest_spec
from hcisim.lab.guests.qemu import Guest, GuestSpec, make_disk
from hcisim.lab.guests.qmp import QmpEvent
from hcisim.lab.plane.sanlock import LeaseStore, SanlockHost, holder_argv, host_dead_s


@dataclass(frozen=True)
class LeasedGuestSpec(GuestSpec):
    """A :class:`GuestSpec` whose qemu holds ``vm``'s lease of ``store`` via ``sanlock``."""

    sanlock_host: SanlockHost | None = None
    store: LeaseStore | None = None

    @property
    def launch_wait_s(self) -> float:
        """sanlock's acquire blocks while the lease's old host may still be alive, at most
        paxos_acquire_held_max = host_dead + 7 x io_timeout (timeouts.c ``log_timeouts``);
        qemu opens its QMP socket only after. Giving up earlier (qemu's 15 s) abandons a
        paxos ballot, and the next acquire meets it (-16, EBUSY). Acquiring first for a
        process that exits and then again for qemu fails too: the first is still being
        released (-11, EAGAIN; seen here)."""
        base = super().launch_wait_s
        if self.store is None:
            return base
        return base + host_dead_s(self.store.io_timeout_s) + 7 * self.store.io_timeout_s

    def argv(self, image: GuestImage, accel: str = "tcg") -> list[str]:
        base = super().argv(image, accel)
        if self.sanlock_host is None or self.store is None:
            return base
        return holder_argv(self.sanlock_host, self.store, self.disk.parent, self.name, base)


def launch_guest(be: Any, vm: str, host: str, volume: str, store: LeaseStore | None,
                 image: GuestImage | None = None,
                 on_event: Callable[[QmpEvent], None] | None = None, **options: Any) -> Guest:
    """Launch ``vm`` on ``host`` (paused, QMP connected; :meth:`Guest.boot` next), its qemu
    holding ``vm``'s lease of ``store`` (None: no lease), like
    :func:`hcisim.lab.guests.lab.start_guest` otherwise.

    Raises LabError (with sanlock's answer) when the lease is held by a live host.
    """
    h = be.lab_.host(host)
    mount = be.mount_path(host, volume)
    base = guest_spec(h, mount, vm, **options)
    sh = SanlockHost(h.name, h.netns, h.dir)
    spec = LeasedGuestSpec(**{f.name: getattr(base, f.name) for f in fields(GuestSpec)},
                           sanlock_host=sh if store else None, store=store)
    if not spec.disk.exists():
        make_disk(spec.disk, DISK_BYTES)
    guest = Guest(spec, image or ensure_image(), on_event)
    try:
        guest.launch()  # stops what it started if it fails
    except LabError as exc:
        raise LabError(f"start {vm} on {host}" + (" with its lease" if store else ""),
                       exc.reason) from None
    return guest
