"""sanlock's side of the VM leases: which leases a host can no longer renew, when its sanlock
kills their holders, and when another host's start can acquire them.

oVirt gives an HA VM a VM lease (vm-leases.md): a sanlock paxos lease on the shared
storage, held by the VM's qemu. Its host keeps it by renewing its *delta lease* in the
lockspace every 2 x io_timeout. A host whose storage stops taking those writes (power
loss, a hang, its storage link cut) cannot renew: 8 x io_timeout after its last good
renewal its sanlock kills the holders (``kill_pids``), and another host's acquire succeeds
only once it has not seen that delta lease move for ``host_dead`` = 8 x io_timeout + 60 s
(``paxos_lease_acquire``): a host cut off from storage cannot release its lease on disk.
Until then a start elsewhere blocks in sanlock's acquire (it is not refused: the owner's
delta lease is stale), so the engine's start that comes first simply waits. The timing
rules are :func:`hcisim.placement.ha_rules.lease_timeline`, shared with the lab's
management plane; the scenario's ``compute.fencing.lease_io_timeout_s`` sets io_timeout.

A power-management fence frees nothing: sanlock knows nothing of it (``paxos_lease_acquire``
grants another host's lease only when it is released, its owner's delta lease is free or
of a newer generation, or host_dead has passed), so the engine's start at the fence waits
in the acquire like any other (:mod:`hcisim.model.compute.ha`). A host fenced while its
storage worked (a management cut) stops renewing at the fence: its leases are stuck from
then (``released`` with the host down).

Not modelled: a lease stays unavailable until ``host_dead`` even if the host's storage
returns (or a fenced host boots again) after its holders were killed (sanlock would rejoin
the lockspace with a new generation, which frees it earlier); lockspace loss of every host
at once (quorum loss of the lease volume).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from hcisim.placement.ha_rules import LeaseTimeline, lease_timeline
from hcisim.scenario import Scenario
from hcisim.scenario.faults import Fault

if TYPE_CHECKING:
    from hcisim.model.compute.process import ComputeModel

Proc = Generator[Any, Any, None]


def stops_renewals(fault: Fault) -> bool:
    """Whether ``fault`` stops its target's delta-lease renewals: the host's writes no
    longer reach the storage (power loss and hangs cut everything; a NIC loss that cuts the
    storage network). A partition cuts links to some peers only: not counted."""
    return fault.kind != "partition" and "storage" in fault.networks


def renewal_windows(sc: Scenario) -> list[tuple[str, float, float | None]]:
    """(host, from, until or None) for every fault of ``sc`` that stops renewals."""
    return [(f.target, f.at_s, f.end_s) for f in sc.faults if stops_renewals(f)]


class LeaseBook:
    """Which hosts stopped renewing, which VM leases are stuck on disk and until when. Pure
    bookkeeping; :class:`Leases` drives it in simulated time. A VM's lease is held by the
    host it runs on (running, paused or migrating there)."""

    def __init__(self, io_timeout_s: float) -> None:
        self.io_timeout_s = io_timeout_s
        self.stopped: dict[str, LeaseTimeline] = {}  # host -> since when it cannot renew
        self.stuck: dict[str, tuple[str, float]] = {}  # vm -> (old host, free from)

    def stop(self, host: str, t: float, holders: list[str]) -> LeaseTimeline:
        """``host`` stops renewing at ``t``: the leases it holds are stuck until free."""
        tl = lease_timeline(self.io_timeout_s, t)
        self.stopped[host] = tl
        for vm in holders:
            self.stuck.setdefault(vm, (host, tl.free_s))
        return tl

    def resume(self, host: str, holders: set[str]) -> None:
        """``host`` renews again: the leases it still holds are fine."""
        self.stopped.pop(host, None)
        for vm in [v for v, (h, _) in self.stuck.items() if h == host and v in holders]:
            del self.stuck[vm]

    def released(self, vm: str, host: str, t: float, host_died: bool) -> None:
        """``vm``'s qemu on ``host`` is gone. A host that still renews releases the lease at
        once; a dead one or one that cannot renew leaves it on disk until it is free."""
        if host_died or host in self.stopped:
            self.stuck.setdefault(vm, (host, lease_timeline(self.io_timeout_s, t).free_s))
        else:
            self.stuck.pop(vm, None)

    def acquired(self, vm: str) -> None:
        self.stuck.pop(vm, None)

    def free_at(self, vm: str) -> float:
        """When a start elsewhere can acquire ``vm``'s lease (-inf: now)."""
        entry = self.stuck.get(vm)
        return entry[1] if entry is not None else -math.inf


class Leases:
    """The sanlock daemons of the model's hosts: renewals stop and resume with the
    scenario's faults; a host that cannot renew kills its lease holders after
    id_renewal_fail, and the engine restarts them (the start waits for the lease)."""

    def __init__(self, model: ComputeModel) -> None:
        self.m = model
        self.book = LeaseBook(model.fencing.lease_io_timeout_s)

    def start(self) -> None:
        for host, at, end in renewal_windows(self.m.sc):
            self.m.env.process(self._window(host, at, end))

    def holders(self, host: str) -> list[str]:
        m = self.m
        return [vm for vm, h in m.placement.items() if h == host
                and m.cluster.vm(vm).holds_lease
                and m.log.state(vm) in ("running", "paused", "migrating")]

    def _window(self, host: str, at: float, end: float | None) -> Proc:
        env = self.m.env
        yield env.timeout(at)
        tl = self.book.stop(host, env.now, self.holders(host))
        until = math.inf if end is None else end
        if tl.holders_killed_s < until:
            yield env.timeout(tl.holders_killed_s - env.now)
            self._kill_holders(host, tl)
        if end is not None:
            yield env.timeout(max(0.0, end - env.now))
            self.book.resume(host, set(self.holders(host)))

    def _kill_holders(self, host: str, tl: LeaseTimeline) -> None:
        """sanlock's ``kill_pids``: SIGTERM to every process holding a lease of ``host``."""
        m, env = self.m, self.m.env
        holders = self.holders(host)
        if holders:
            m.rec.event(env.now, "lease_lost", host,
                        f"no delta-lease renewal for {env.now - tl.last_renewal_s:g} s "
                        f"(8 x io_timeout): sanlock kills {', '.join(holders)}")
        for vm in holders:
            m.kill(vm, f"killed by sanlock: {host} lost its lease")
            spec = m.cluster.vm(vm)
            if spec.hosted_engine:
                m.env.process(m._engine_recovery(env.now, host_died=False))
            elif spec.ha:
                m._restart_all([spec], f"{vm} killed by sanlock on {host}")
        for vm, (h, free) in list(self.book.stuck.items()):
            if h == host:
                env.process(self._expiry(vm, host, free))

    def _expiry(self, vm: str, host: str, free: float) -> Proc:
        env = self.m.env
        yield env.timeout(max(0.0, free - env.now))
        if self.book.stuck.get(vm) == (host, free):
            self.m.rec.event(env.now, "lease_expired", vm,
                             f"{host}'s delta lease dead (host_dead): others may acquire")

    def wait_for(self, vm: str, host: str) -> Proc:
        """A start of ``vm`` on ``host``: sanlock's acquire blocks until the lease is free."""
        env = self.m.env
        free = self.book.free_at(vm)
        waited = max(0.0, free - env.now)
        if waited > 0:
            yield env.timeout(waited)
        self.book.acquired(vm)
        self.m.rec.event(env.now, "lease_acquired", vm,
                         f"on {host}" + (f" after waiting {waited:g} s" if waited else ""))
