"""The narrow interface between the compute model and the storage model.

The compute model never looks inside the storage model; it needs only this:

``StoragePort`` (implemented by the storage model, called by compute):
- ``vm_storage_ok(vm, host)``: could ``vm``'s disks be used from ``host`` right now
  (quorum on every volume it uses, and ``host``'s client reaches the bricks)? Asked before
  a VM is (re)started on a host, and before the engine VM is started.
- ``vm_placed(vm, host)``: from now on ``vm``'s disk I/O comes from ``host``'s client
  (None: the VM runs nowhere and issues no I/O). Called on start, restart, the end of a
  migration that moved it, and when it goes down.
- ``vm_io_paused(vm, paused)``: the VM is paused (no I/O) or resumed; its host is unchanged.
- ``open_migration_flow(vm, src, dst, cap_mb_s)``: a fluid flow on the migration network
  from ``src`` to ``dst``, at most ``cap_mb_s``; the storage model shares the NICs between it
  and storage traffic (max-min) and reports the flow's rate. Closed by compute when done.
- ``host_maintenance(host, entering)``: the host entered maintenance (every VM left it; stop
  its bricks cleanly: FIN/RST, no ping-timeout stall) or was activated (start its bricks;
  heal what they missed).
- ``gluster_bricks()``: every volume's bricks in order, (host, ONLINE) as ``gluster volume
  status`` on a peer shows them: the brick process serves and a running peer reaches its
  host on the storage network. The engine's fencing policy reads it before a fence
  (:func:`hcisim.placement.ha_rules.gluster_fence_veto`).
- ``unsynced_entries()``: every volume's bricks in order, (host, entries) as ``gluster
  volume heal info`` counts them on each brick: what it indexes for a copy elsewhere that
  missed writes. The engine reads both before maintenance
  (:func:`hcisim.placement.maintenance_rules.maintenance_refusal`).

``MigrationFlow`` (returned by ``open_migration_flow``):
- ``rate_mb_s()``: the flow's current rate; ``changed()``: a SimPy event that fires the next
  time that rate changes (a fresh event per change); ``close()``.

Compute's inbound calls (on :class:`~hcisim.model.compute.process.ComputeModel`), made by the
storage model at the current simulation time:
- ``vm_storage_changed(vm, ok)``: ``vm``'s storage from its host failed (EIO/ENOTCONN: the VM
  pauses) or works again (it resumes);
- ``storage_changed()``: the storage model settled a change; a start that failed because
  storage was not usable from a host may succeed at its next try (optional: a port whose
  storage never changes, like :class:`SteadyStorage`, never calls it);
- ``host_failed(host, loss)`` / ``host_repaired(host)``: only if the storage model drives
  host faults; by default the compute model reads them from the scenario itself.
"""

from __future__ import annotations

from typing import Any, Protocol

import simpy


class MigrationFlow(Protocol):
    def rate_mb_s(self) -> float: ...

    def changed(self) -> Any:
        """A SimPy event that fires when :meth:`rate_mb_s` next changes."""
        ...

    def close(self) -> None: ...


class StoragePort(Protocol):
    def vm_storage_ok(self, vm: str, host: str) -> bool: ...

    def vm_placed(self, vm: str, host: str | None) -> None: ...

    def vm_io_paused(self, vm: str, paused: bool) -> None: ...

    def open_migration_flow(self, vm: str, src: str, dst: str,
                            cap_mb_s: float) -> MigrationFlow: ...

    def host_maintenance(self, host: str, entering: bool) -> None: ...

    def gluster_bricks(self) -> dict[str, list[tuple[str, bool]]]: ...

    def unsynced_entries(self) -> dict[str, list[tuple[str, int]]]: ...


class FixedRateFlow:
    """A migration flow whose rate never changes."""

    def __init__(self, env: simpy.Environment, mb_s: float) -> None:
        self._env = env
        self._mb_s = mb_s
        self._never = env.event()

    def rate_mb_s(self) -> float:
        return self._mb_s

    def changed(self) -> Any:
        return self._never

    def close(self) -> None:
        pass


class SteadyStorage:
    """Storage that never fails, and migration flows at a fixed rate (``mb_s``, default: the
    migration cap). For compute-only runs (placement, failover, migration on an idle
    network): nothing storage-related ever reaches the compute model."""

    def __init__(self, env: simpy.Environment, mb_s: float | None = None) -> None:
        self._env = env
        self._mb_s = mb_s

    def vm_storage_ok(self, vm: str, host: str) -> bool:
        return True

    def vm_placed(self, vm: str, host: str | None) -> None:
        pass

    def vm_io_paused(self, vm: str, paused: bool) -> None:
        pass

    def open_migration_flow(self, vm: str, src: str, dst: str,
                            cap_mb_s: float) -> MigrationFlow:
        return FixedRateFlow(self._env, cap_mb_s if self._mb_s is None else self._mb_s)

    def host_maintenance(self, host: str, entering: bool) -> None:
        pass

    def gluster_bricks(self) -> dict[str, list[tuple[str, bool]]]:
        return {}  # no Gluster here: the fencing policy's Gluster checks pass

    def unsynced_entries(self) -> dict[str, list[tuple[str, int]]]:
        return {}  # nothing to heal: maintenance is never refused for Gluster
