"""The storage model's side of the compute model's port (:mod:`hcisim.model.compute.ports`).

The compute model tells the storage model where VMs run, which are paused, which live
migrations are on the wire and which hosts are in maintenance; the storage model answers
whether a VM's disks are usable from a host, and reports each migration flow's max-min
share of the NICs it crosses.

Why the port queues: the compute model calls it from its SimPy processes, often many times
in one instant (a failed host's VMs are marked down one by one; maintenance starts several
migrations at once), and sometimes from inside the storage model's own settle (a VM pauses
because settle found its disk in error). Each call records a change; one zero-delay SimPy
event then applies all the changes of that instant and settles once. The model's rule
"every change: advance, apply, settle" is kept, nothing re-enters a settle, and a host
failure costs one settle however many VMs it had.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import simpy

from hcisim.model.fluid import FlowNetwork

if TYPE_CHECKING:
    from hcisim.model.engine import StorageModel

_RATE_TOL = 1e-9  # relative: solver noise below this is not a change of rate


class FluidMigrationFlow:
    """A live migration's stream from ``src`` to ``dst`` on the migration network: one flow
    in the storage model's :class:`FlowNetwork`, sharing NICs max-min with storage I/O."""

    def __init__(self, port: ModelStoragePort, vm: str, src: str, dst: str,
                 cap_mb_s: float) -> None:
        self._port = port
        self.name = f"migration:{vm}"
        self.src, self.dst, self.cap_mb_s = src, dst, cap_mb_s
        self._rate = 0.0
        self._event: simpy.Event | None = None
        self.open = True

    def rate_mb_s(self) -> float:
        return self._rate

    def changed(self) -> Any:
        if self._event is None:
            self._event = self._port.env.event()
        return self._event

    def close(self) -> None:
        if self.open:
            self.open = False
            self._port.close_flow(self)

    def resolved(self, rate: float) -> None:
        """The network was re-solved: fire :meth:`changed` if this flow's rate moved."""
        if abs(rate - self._rate) <= _RATE_TOL * max(1.0, self._rate):
            return
        self._rate = rate
        ev, self._event = self._event, None
        if ev is not None and not ev.triggered:
            ev.succeed()


class ModelStoragePort:
    """Implements :class:`~hcisim.model.compute.ports.StoragePort` over a StorageModel."""

    def __init__(self, model: StorageModel) -> None:
        self.model = model
        self.env = model.env
        self.flows: dict[str, FluidMigrationFlow] = {}
        self._queued: list[Callable[[], None]] = []
        self._flush_scheduled = False

    # --- queued changes ------------------------------------------------------------------
    def _change(self, change: Callable[[], None]) -> None:
        self._queued.append(change)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            ev = self.env.timeout(0)
            ev.callbacks.append(lambda _ev: self.flush())

    def flush(self) -> None:
        """Apply every queued change of this instant as one storage-model change."""
        self._flush_scheduled = False
        if self._queued:
            self.model.apply(self.apply_queued)

    def apply_queued(self) -> None:
        batch, self._queued = self._queued, []
        for change in batch:
            change()

    # --- StoragePort ---------------------------------------------------------------------
    def vm_storage_ok(self, vm: str, host: str) -> bool:
        return self.model.storage_usable(vm, host)

    def vm_placed(self, vm: str, host: str | None) -> None:
        self._change(lambda: self.model.place_vm(vm, host))

    def vm_io_paused(self, vm: str, paused: bool) -> None:
        self._change(lambda: self.model.pause_vm(vm, paused))

    def open_migration_flow(self, vm: str, src: str, dst: str,
                            cap_mb_s: float) -> FluidMigrationFlow:
        flow = FluidMigrationFlow(self, vm, src, dst, cap_mb_s)
        self._change(lambda: self.flows.__setitem__(flow.name, flow))
        return flow

    def close_flow(self, flow: FluidMigrationFlow) -> None:
        def remove() -> None:
            self.flows.pop(flow.name, None)
            self.model.net.remove_flow(flow.name)
        self._change(remove)

    def host_maintenance(self, host: str, entering: bool) -> None:
        self._change(lambda: self.model.maintenance(host, entering))

    def gluster_bricks(self) -> dict[str, list[tuple[str, bool]]]:
        """Bricks as a peer's ``gluster volume status`` shows them: ONLINE when the brick
        serves and some other running host reaches its host on the storage network."""
        cluster, world = self.model.cluster, self.model.world
        return {v.name: [(b.host, world.brick_serving(b) and any(
                    world.link(p, b.host) for p in self.model.views.pool if p != b.host))
                         for b in v.bricks]
                for v in cluster.volumes.values()}

    def unsynced_entries(self) -> dict[str, list[tuple[str, int]]]:
        """Entries ``gluster volume heal info`` lists per brick: a serving brick indexes
        every shard another brick of its volume misses (AFR's pending xattrs live on the
        bricks that took the writes); a brick that is down lists nothing."""
        cluster, heal = self.model.cluster, self.model.heal
        online = self.gluster_bricks()
        out: dict[str, list[tuple[str, int]]] = {}
        for v in cluster.volumes.values():
            missing = {b.host: heal.of(b).pending_shards() for b in v.data_bricks}
            up = dict(online.get(v.name, []))
            out[v.name] = [(b.host, math.ceil(sum(n for h, n in missing.items()
                                                  if h != b.host) - 1e-9)
                            if up.get(b.host) else 0) for b in v.bricks]
        return out

    # --- settle hooks --------------------------------------------------------------------
    def set_flows(self, net: FlowNetwork) -> None:
        """Put every open migration on the network: tx of the source's and rx of the
        target's migration NIC (which may be the storage NIC); no rate while the two hosts
        cannot reach each other on that network (the migration then stalls and times out)."""
        cluster, world = self.model.cluster, self.model.world
        for f in self.flows.values():
            rs, rd = cluster.migration_role(f.src), cluster.migration_role(f.dst)
            role = rs if rs == rd else "management"
            demand = f.cap_mb_s if world.link(f.src, f.dst, role) else 0.0
            net.add_flow(f.name, demand, {cluster.tx(f.src, role): 1.0,
                                          cluster.rx(f.dst, role): 1.0})

    def resolved(self, net: FlowNetwork) -> None:
        for f in self.flows.values():
            f.resolved(net.rate(f.name))
