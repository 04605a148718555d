"""Claims about sizing: n+1 HA reservation and usable storage capacity.

Both are computed from the scenario (hosts, VMs, volumes); the HA reservation also reads
where the run placed the VMs (failover_pairs, else vm_state) because the scheduler may have
placed VMs the scenario left unpinned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hcisim.claims.timeline import host_of
from hcisim.claims.verdict import Verdict, rounded
from hcisim.observations import Observations
from hcisim.placement import cluster_of
from hcisim.placement.failover import failover_restarts
from hcisim.placement.inventory import loads, priority_order
from hcisim.scenario import Scenario
from hcisim.scenario.claims import HaReservation, UsableCapacityAtLeast
from hcisim.scenario.cluster import Volume

_EPS = 1e-9


@dataclass
class HostLoss:
    """What happens to the HA VMs of ``failed_host`` if it alone fails."""

    failed_host: str
    ha_vms: list[str]
    placed: dict[str, str] = field(default_factory=dict)  # VM -> survivor it restarts on
    unplaced: list[str] = field(default_factory=list)
    ram_short_gib: float = 0.0  # RAM of the VMs that do not fit: the room the survivors lack
    vcpu_short: float = 0.0
    ram_deficit_gib: float = 0.0  # max(0, needed - free in total); 0: fragmentation only
    vcpu_deficit: float = 0.0
    free_ram_gib: dict[str, float] = field(default_factory=dict)  # survivors, after restarts
    free_vcpus: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"failed_host": self.failed_host, "ha_vms": len(self.ha_vms),
                "unplaced": self.unplaced, "ram_short_gib": rounded(self.ram_short_gib),
                "vcpu_short": rounded(self.vcpu_short),
                "ram_deficit_gib": rounded(self.ram_deficit_gib),
                "vcpu_deficit": rounded(self.vcpu_deficit),
                "free_ram_gib_after": {h: rounded(x) for h, x in self.free_ram_gib.items()},
                "free_vcpus_after": {h: rounded(x) for h, x in self.free_vcpus.items()}}


def placement(sc: Scenario, obs: Observations) -> dict[str, str]:
    """VM -> host at the start of the run (failover_pairs, else vm_state, else scenario)."""
    fp = obs["failover_pairs"]
    from_table = {str(v): str(h) for v, h in zip(fp["vm"], fp["host"], strict=True) if str(h)}
    where: dict[str, str] = {}
    for vm in sc.vms:
        host = from_table.get(vm.name) or host_of(sc, obs, vm.name, 0.0)
        if host:
            where[vm.name] = host
    return where


def ha_plan(sc: Scenario, obs: Observations, vms: tuple[str, ...] | None = None) -> list[HostLoss]:
    """For each host, restart its HA VMs on the others as the scheduler would.

    The restarts are the shared failover rules (:mod:`hcisim.placement`: the oVirt
    scheduler's filters and weights, one VM at a time in restart order: the engine first,
    then by priority), the same ones the model runs, so a claim judged on a lab uses the
    same failover order as the model. Capacities are the scheduler's: RAM x
    memory_overcommit_pct, cores x cpu_overcommit vCPUs.
    """
    where = placement(sc, obs)
    cluster = cluster_of(sc)
    chosen = set(vms) if vms is not None else None
    plans: list[HostLoss] = []
    for failed in sc.host_names:
        movers = [v.name for v in priority_order(cluster.vms)
                  if v.restartable and where.get(v.name) == failed
                  and (chosen is None or v.name in chosen)]
        placed, unplaced = failover_restarts(cluster, where, failed)
        after = {v: h for v, h in where.items() if h != failed} | placed
        used = loads(cluster, after)
        survivors = [h for h in sc.host_names if h != failed]
        free_ram = {h: cluster.ram_capacity_gib(h) - used[h].ram_gib for h in survivors}
        free_cpu = {h: cluster.vcpu_capacity(h) - used[h].vcpus for h in survivors}
        plan = HostLoss(failed, movers, placed={v: placed[v] for v in movers if v in placed},
                        unplaced=[v for v in unplaced if v in movers])
        plan.ram_short_gib = sum(sc.vm(v).ram_gib for v in plan.unplaced)
        plan.vcpu_short = float(sum(sc.vm(v).vcpus for v in plan.unplaced))
        plan.ram_deficit_gib = max(0.0, plan.ram_short_gib - max(0.0, sum(free_ram.values())))
        plan.vcpu_deficit = max(0.0, plan.vcpu_short - max(0.0, sum(free_cpu.values())))
        plan.free_ram_gib, plan.free_vcpus = free_ram, free_cpu
        plans.append(plan)
    return plans


def ha_reservation(sc: Scenario, obs: Observations, c: HaReservation) -> Verdict:
    """n+1: the HA VMs of any single failed host fit on the others. Measured: the most HA
    VMs left without a host by one host's failure (limit 0).

    When the run recorded failover pairs (the engine's own scheduler, with every filter:
    affinity, pinning...), they decide; the plan computed from the scenario gives the
    shortfall as evidence, and stands alone when the table is empty (a lab without oVirt).
    """
    name = c.name or c.kind
    plans = ha_plan(sc, obs, c.vms)
    if not any(p.ha_vms for p in plans):
        return Verdict(name, c.kind, "n/a", None, 0.0, "VMs", [{"note": "no HA VM to reserve for"}])
    evidence = [p.to_dict() for p in plans if p.ha_vms]
    planned = max(len(p.unplaced) for p in plans)
    fp = obs["failover_pairs"]
    fp = fp[fp["ha"]]
    if c.vms is not None:
        fp = fp[fp["vm"].isin(c.vms)]
    if fp.empty:
        worst = planned
    else:
        homeless = sorted(str(v) for v in fp[fp["failover_host"] == ""]["vm"])
        worst = len(homeless)
        evidence.insert(0, {"source": "failover_pairs", "no_failover_host": homeless})
        if planned and not homeless:
            evidence.append({"note": "the run's scheduler placed every HA VM; the plan "
                             "computed from the scenario alone did not"})
    return Verdict(name, c.kind, "fail" if worst else "pass", float(worst), 0.0, "VMs",
                   evidence)


def usable_gb(sc: Scenario, vol: Volume) -> float:
    """What a volume can hold: its smallest data brick.

    Replica 3 keeps every byte on all three bricks, so usable = raw / 3 with equal bricks
    (the smallest brick with unequal ones); an arbiter volume holds data on its two data
    bricks only, so usable = one data brick (the arbiter brick stores metadata).
    """
    return min(sc.host(b.host).disk(b.disk).capacity_gb for b in vol.data_bricks)


def _disk_sharers(sc: Scenario, vol: Volume) -> list[str]:
    mine = {(b.host, b.disk or sc.host(b.host).disks[0].name) for b in vol.bricks}
    return sorted(v.name for v in sc.volumes if v.name != vol.name and mine & {
        (b.host, b.disk or sc.host(b.host).disks[0].name) for b in v.bricks})


def usable_capacity_at_least(sc: Scenario, obs: Observations,
                             c: UsableCapacityAtLeast) -> Verdict:
    """Each named volume (or every volume) can hold at least ``gb``. Volumes whose bricks
    share disks share that capacity; the evidence names them."""
    name = c.name or c.kind
    vols = [sc.volume(c.volume)] if c.volume is not None else list(sc.volumes)
    items: list[dict[str, Any]] = []
    for vol in vols:
        raw = sum(sc.host(b.host).disk(b.disk).capacity_gb for b in vol.bricks)
        item: dict[str, Any] = {"volume": vol.name, "type": vol.type,
                                "usable_gb": rounded(usable_gb(sc, vol)), "raw_gb": rounded(raw),
                                "provisioned_gb": rounded(vol.size_gb)}
        sharers = _disk_sharers(sc, vol)
        if sharers:
            item["shares_disks_with"] = sharers
        items.append(item)
    worst = min(float(i["usable_gb"]) for i in items)
    return Verdict(name, c.kind, "pass" if worst + _EPS >= c.gb else "fail", worst, c.gb, "GB",
                   sorted(items, key=lambda i: float(i["usable_gb"])))
