"""Failover pairs and the HA reservation (n+1) check.

When a host fails, everything it ran is gone; its restartable VMs (HA VMs and the hosted
engine) are placed again by the same scheduler on the other hosts, the engine first, then by
priority (:func:`~hcisim.placement.inventory.priority_order`), each seeing the ones
before it. A VM's *failover host* is where that puts it.

"Fits" has two meanings here, and the report keeps them apart:
- **greedy** (what the cluster will do): the scheduler, in restart order, finds a host for
  every HA VM. This is the n+1 verdict (``HostLossCheck.ok``), and it is what oVirt's HA VM
  reservation (ha-vm-reservation.md) approximates.
- **packing exists** (what is possible): some assignment of all those VMs to the survivors
  passes every filter together (exhaustive search, :func:`exhaustive_restart`).
Greedy success implies a packing exists (the greedy result is one). The converse is false:
with two resources and fragments, greedy order can strand a VM that a different order would
have placed; then ``ok`` is False but ``packing_exists`` is True, and the report says so.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from hcisim.placement.inventory import ClusterSpec, Placement, VmSpec, loads, priority_order
from hcisim.placement.scheduler import place, rejection

EXHAUSTIVE_LIMIT = 12  # VMs per failed host beyond which the exhaustive search is skipped


@dataclass(frozen=True)
class FailoverPair:
    vm: str
    host: str
    failover_host: str | None  # None: fits nowhere, or not restarted (not HA)
    ha: bool  # restarted automatically (HA VM or the hosted engine)


def restart_candidates(cluster: ClusterSpec, placement: Placement, failed: str) -> list[VmSpec]:
    """The VMs of ``failed`` that are restarted elsewhere, in restart order."""
    return priority_order(cluster.vm(v) for v, h in placement.items()
                          if h == failed and cluster.vm(v).restartable)


def survivors_placement(placement: Placement, failed: Collection[str]) -> dict[str, str]:
    return {v: h for v, h in placement.items() if h not in failed}


def failover_restarts(cluster: ClusterSpec, placement: Placement, failed: str,
                      unavailable: Collection[str] = ()) -> tuple[dict[str, str], tuple[str, ...]]:
    """Where the restartable VMs of ``failed`` go: ({vm: host}, VMs that fit nowhere)."""
    down = {failed, *unavailable}
    res = place(cluster, survivors_placement(placement, down),
                restart_candidates(cluster, placement, failed), down)
    return dict(res.placed), res.unplaced


def failover_pairs(cluster: ClusterSpec, placement: Placement,
                   unavailable: Collection[str] = ()) -> tuple[FailoverPair, ...]:
    """For every placed VM: its host and where it restarts if that host fails."""
    by_host = {h.name: failover_restarts(cluster, placement, h.name, unavailable)[0]
               for h in cluster.hosts}
    return tuple(FailoverPair(v.name, placement[v.name], by_host[placement[v.name]].get(v.name),
                              v.restartable)
                 for v in cluster.vms if v.name in placement)


def failover_rows(pairs: Sequence[FailoverPair]) -> list[tuple[str, str, str, bool]]:
    """Rows of the ``failover_pairs`` observation table ('' = not restarted / fits nowhere)."""
    return [(p.vm, p.host, p.failover_host or "", p.ha) for p in pairs]


# --- exhaustive search ---------------------------------------------------------------------

def exhaustive_restart(cluster: ClusterSpec, placement: Placement, failed: str,
                       vms: Sequence[VmSpec] | None = None,
                       unavailable: Collection[str] = ()) -> dict[str, str] | None:
    """Some assignment of ``vms`` (default: the restart candidates of ``failed``) to the
    surviving hosts that passes every filter with all of them placed, or None if none does.

    Backtracking over hosts, biggest VMs first; exact (no budget), so keep ``vms`` small.
    """
    down = {failed, *unavailable}
    todo = sorted(vms if vms is not None else restart_candidates(cluster, placement, failed),
                  key=lambda v: (-v.ram_gib, -v.vcpus, v.name))
    current = survivors_placement(placement, down)
    host_loads = loads(cluster, current)

    def search(i: int) -> bool:
        if i == len(todo):
            return True
        vm = todo[i]
        for h in cluster.hosts:
            if rejection(cluster, vm, h.name, current, host_loads, down) is not None:
                continue
            current[vm.name] = h.name
            host_loads[h.name].add(vm)
            if search(i + 1):
                return True
            del current[vm.name]
            ld = host_loads[h.name]
            ld.ram_gib -= vm.ram_gib
            ld.vcpus -= vm.vcpus
            ld.vms -= 1
        return False

    if not search(0):
        return None
    return {vm.name: current[vm.name] for vm in todo}


def max_restartable(cluster: ClusterSpec, placement: Placement, failed: str,
                    unavailable: Collection[str] = ()) -> int:
    """The largest number of ``failed``'s restart candidates that can run together."""
    cands = restart_candidates(cluster, placement, failed)
    n = len(cands)
    for size in range(n, 0, -1):
        for mask in range(1 << n):
            if bin(mask).count("1") != size:
                continue
            subset = [cands[i] for i in range(n) if mask >> i & 1]
            if exhaustive_restart(cluster, placement, failed, subset, unavailable) is not None:
                return size
    return 0


# --- HA reservation (n+1) --------------------------------------------------------------------

@dataclass(frozen=True)
class HostLossCheck:
    """What a failure of ``host`` would leave down.

    ``ram_short_gib``/``vcpu_short``: resources of the HA VMs that would not restart, i.e.
    the free room the survivors lack. ``ram_deficit_gib``/``vcpu_deficit``: the aggregate
    lower bound, max(0, needed - free in total); it is 0 when only fragmentation strands VMs.
    """

    host: str
    restarts: Mapping[str, str]
    stranded: tuple[str, ...]
    ram_short_gib: float
    vcpu_short: float
    ram_deficit_gib: float
    vcpu_deficit: float
    packing_exists: bool | None  # None: too many VMs to search

    @property
    def ok(self) -> bool:
        return not self.stranded


@dataclass(frozen=True)
class ReservationReport:
    checks: tuple[HostLossCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def stranded(self) -> dict[str, tuple[str, ...]]:
        """Failed host -> the HA VMs that would not restart."""
        return {c.host: c.stranded for c in self.checks if c.stranded}

    @property
    def ram_short_gib(self) -> float:
        return max((c.ram_short_gib for c in self.checks), default=0.0)

    @property
    def vcpu_short(self) -> float:
        return max((c.vcpu_short for c in self.checks), default=0.0)

    @property
    def greedy_misses(self) -> tuple[str, ...]:
        """Hosts whose HA VMs could all run elsewhere, but not in the scheduler's order."""
        return tuple(c.host for c in self.checks if not c.ok and c.packing_exists)


def host_loss_check(cluster: ClusterSpec, placement: Placement, failed: str,
                    unavailable: Collection[str] = ()) -> HostLossCheck:
    restarts, stranded = failover_restarts(cluster, placement, failed, unavailable)
    cands = restart_candidates(cluster, placement, failed)
    down = {failed, *unavailable}
    surv = loads(cluster, survivors_placement(placement, down))
    free_ram = sum(cluster.ram_capacity_gib(h) - ld.ram_gib for h, ld in surv.items()
                   if h not in down)
    free_cpu = sum(cluster.vcpu_capacity(h) - ld.vcpus for h, ld in surv.items()
                   if h not in down)
    need_ram = sum(v.ram_gib for v in cands)
    need_cpu = sum(v.vcpus for v in cands)
    lost = [cluster.vm(v) for v in stranded]
    packing: bool | None
    if not stranded:
        packing = True
    elif len(cands) > EXHAUSTIVE_LIMIT:
        packing = None
    else:
        packing = exhaustive_restart(cluster, placement, failed, None, unavailable) is not None
    return HostLossCheck(
        host=failed, restarts=restarts, stranded=stranded,
        ram_short_gib=sum((v.ram_gib for v in lost), 0.0),
        vcpu_short=float(sum(v.vcpus for v in lost)),
        ram_deficit_gib=max(0.0, need_ram - free_ram),
        vcpu_deficit=max(0.0, need_cpu - free_cpu), packing_exists=packing)


def ha_reservation(cluster: ClusterSpec, placement: Placement,
                   unavailable: Collection[str] = ()) -> ReservationReport:
    """n+1: for every single host failure, do all its HA VMs restart on the others?"""
    return ReservationReport(tuple(
        host_loss_check(cluster, placement, h.name, unavailable)
        for h in cluster.hosts if h.name not in unavailable))


def reservation_summary(report: ReservationReport) -> dict[str, object]:
    """The report as plain data (for summary.json / meta and the CLI)."""
    return {
        "ok": report.ok,
        "ram_short_gib": report.ram_short_gib,
        "vcpu_short": report.vcpu_short,
        "hosts": {
            c.host: {"ok": c.ok, "stranded": list(c.stranded), "ram_short_gib": c.ram_short_gib,
                     "vcpu_short": c.vcpu_short, "ram_deficit_gib": c.ram_deficit_gib,
                     "vcpu_deficit": c.vcpu_deficit, "packing_exists": c.packing_exists,
                     "restarts": dict(c.restarts)}
            for c in report.checks
        },
        "greedy_misses": list(report.greedy_misses),
    }

