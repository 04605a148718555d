"""The one place where guests meet a running netns lab (the entry point for the lab run).

``start_guest(be, vm, host, volume)`` puts a guest on host ``host``'s FUSE mount of
``volume`` of the lab behind backend ``be``, in that host's network namespace, with its pid
file where ``hcisim lab down`` looks (``<lab>/h/<host>/pids/guest-<vm>.pid``: the netns
reclaim already kills every pid file there whose process lives in the lab's namespaces;
:func:`hcisim.lab.guests.qemu.reclaim_guests` does it for guests alone). ``check_guest``
reads the guest's acknowledged records back from every data brick with the same checker
as the fio VMs' history; ``check_vm`` reads every boot of a VM on every host (an HA
restart), so the checker can also prove the VM never ran twice.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from hcisim.lab.guests.image import GuestImage, ensure_image
from hcisim.lab.guests.qemu import SECTOR, Guest, GuestSpec, kvm_usable, make_disk
from hcisim.lab.history import CheckResult, History, check, parse_history

DISK_BYTES = 4 << 20  # the whole history fits one shard of the lab's 4 MiB shard size


class HostPaths(Protocol):
    name: str
    netns: str
    dir: Path

    @property
    def piddir(self) -> Path: ...


class LabView(Protocol):
    """What a guest needs of a lab backend (the netns backend has it)."""

    def mount_path(self, host: str, volume: str) -> Path: ...

    def data_brick_paths(self, volume: str) -> list[Path]: ...


def history_relname(vm: str) -> str:
    """The disk image is segment 0 of the history: ``<volume>/<vm>-guest.0``."""
    return f"{vm}-guest"


def guest_spec(host: HostPaths, mount: Path, vm: str, **options: Any) -> GuestSpec:
    """A guest in ``host``'s namespace: KVM where this machine has usable hardware
    virtualisation (:func:`kvm_usable`), software emulation (TCG) otherwise."""
    disk = mount / f"{history_relname(vm)}.0"
    options.setdefault("accel", "kvm" if kvm_usable()[0] else "tcg")
    return GuestSpec(name=vm, netns=host.netns, host=host.name, disk=disk,
                     run_dir=host.dir / "guests" / vm, pidfile=host.piddir / f"guest-{vm}.pid",
                     **options)


def start_guest(be: Any, vm: str, host: str, volume: str, image: GuestImage | None = None,
                disk_bytes: int = DISK_BYTES, **options: Any) -> Guest:
    """Create the VM's disk on ``host``'s mount, launch qemu there (paused, QMP connected).

    Call :meth:`Guest.boot` next; use the result as a context manager so qemu is stopped
    whatever happens. ``options`` go to :class:`GuestSpec` (mem_mib, dirty rate...).
    A backend whose hosts are machines of their own (libvirt node VMs) starts the guest
    inside the node itself (its ``start_node_guest``: it may refuse, see
    hcisim.lab.libvirt.nested).
    """
    in_node = getattr(be, "start_node_guest", None)
    if in_node is not None:
        guest: Guest = in_node(vm, host, volume, image, disk_bytes, **options)
        return guest
    mount = be.mount_path(host, volume)
    spec = guest_spec(be.lab_.host(host), mount, vm, **options)
    if not spec.disk.exists():
        make_disk(spec.disk, disk_bytes)
    guest = Guest(spec, image or ensure_image())
    guest.launch()
    return guest


def start_destination(be: Any, source: Guest, host: str, volume: str, port: int = 49152,
                      network: str = "storage") -> tuple[Guest, str]:
    """The same guest waiting for its migration stream on ``host``; returns it and the URI.

    It listens on ``host``'s address on ``network`` (the lab's storage, management or
    migration network), so the stream crosses the lab's links; its disk is the same image
    file seen through ``host``'s own mount of ``volume``.
    """
    h = be.lab_.host(host)
    addr = h.address(network)
    uri = f"tcp:{addr}:{port}"
    base = guest_spec(h, be.mount_path(host, volume), source.spec.name)
    spec = dataclasses.replace(source.spec, netns=base.netns, host=base.host, disk=base.disk,
                               run_dir=base.run_dir, pidfile=base.pidfile, incoming=uri)
    guest = Guest(spec, source.image)
    guest.launch()
    return guest, uri


def vm_history_logs(lab_dir: Path, vm: str) -> list[Path]:
    """Every history log ``vm`` left in the lab: this boot's and earlier boots' (kept as
    ``history.<boot>.log``, :func:`hcisim.lab.guests.qemu.keep_history`) on every host."""
    return sorted(lab_dir.glob(f"h/*/guests/{vm}/history*.log"))


SETTLE_S = 0.5  # an agent's line reaches its log well within this (port and link thread)


def check_vm(be: Any, vm: str, volume: str, reader: str, record_size: int = 64) -> CheckResult:
    """Every boot of ``vm`` on every host of the lab, checked as one disk: each
    acknowledged record that no newer boot rewrote on the bricks (and through
    ``reader``'s mount), and the "ran twice" findings (:func:`hcisim.lab.history.check`).

    The guest may still run: its logs are read again ``SETTLE_S`` after the bricks, and
    what it wrote meanwhile (its sector writes go past its last logged record, with zeros)
    counts as a newer write, not as a loss of an older boot's records there."""
    def logs() -> History:
        text = "".join(log.read_text() for log in vm_history_logs(be.lab_.dir, vm))
        return parse_history(text, vm)

    def since() -> History:
        time.sleep(SETTLE_S)
        return logs()

    mount = be.mount_path(reader, volume)
    spec = guest_spec(be.lab_.host(reader), mount, vm, record_size=record_size)
    return check(logs(), history_relname(vm), record_size, spec.per_file(),
                 be.data_brick_paths(volume), mount, block=SECTOR, since=since)


def merged_history(guests: list[Guest]) -> str:
    """One history log of a guest that moved: the hosts' logs in the order it ran there."""
    return "".join(g.spec.history_log.read_text() for g in guests
                   if g.spec.history_log.exists())


def check_guest(be: LabView, guest: Guest | Sequence[Guest], volume: str,
                host: str) -> CheckResult:
    """Every acknowledged record of a guest on every data brick (and via ``host``'s mount).

    ``guest`` may be the list of the qemus it ran in (source, then migration destination).
    """
    guests = [guest] if isinstance(guest, Guest) else list(guest)
    s = guests[0].spec
    history = parse_history(merged_history(guests), s.name)
    return check(history, history_relname(s.name), s.record_size, s.per_file(),
                 be.data_brick_paths(volume), be.mount_path(host, volume), block=SECTOR)
