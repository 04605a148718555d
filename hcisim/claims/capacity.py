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
from hcisim.scenario import Scenario
from hcisim.scenario.claims import HaReservation, UsableCapacityAtLeast
from hcisim.scenario.cluster import Volume
from hcisim.scenario.workload import PRIORITY_RANK

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
    """For each host, restart its HA VMs on the others, one by one as the scheduler would.

    Capacities follow the scheduler's memory and CPU filters: RAM x memory_overcommit_pct,
    cores x cpu_overcommit vCPUs. Restartable VMs (HA, and the hosted engine) go one at a
    time, the engine first, then by priority and largest RAM, each to the allowed survivor
    with the most free RAM. Greedy on purpose: oVirt restarts VMs one by one the same way,
    so a packing that exists only in another order does not help on the day.
    """
    where = placement(sc, obs)
    mem_f = sc.compute.memory_overcommit_pct / 100.0
    ram_cap = {h.name: h.ram_gib * mem_f for h in sc.hosts}
    cpu_cap = {h.name: h.cores * sc.compute.cpu_overcommit for h in sc.hosts}
    ram_used = dict.fromkeys(ram_cap, 0.0)
    cpu_used = dict.fromkeys(cpu_cap, 0.0)
    for vm in sc.vms:
        h = where.get(vm.name)
        if h in ram_used:
            ram_used[h] += vm.ram_gib
            cpu_used[h] += vm.vcpus
    chosen = set(vms) if vms is not None else None
    plans: list[HostLoss] = []
    for failed in sc.host_names:
        movers = sorted((vm for vm in sc.vms if (vm.ha or vm.hosted_engine)
                         and where.get(vm.name) == failed
                         and (chosen is None or vm.name in chosen)),
                        key=lambda v: (not v.hosted_engine, PRIORITY_RANK[v.priority],
                                       -v.ram_gib, -v.vcpus, v.name))
        free_ram = {h: ram_cap[h] - ram_used[h] for h in sc.host_names if h != failed}
        free_cpu = {h: cpu_cap[h] - cpu_used[h] for h in sc.host_names if h != failed}
        plan = HostLoss(failed, [v.name for v in movers])
        for vm in movers:
            allowed = [h for h in free_ram if not vm.pinned_to or h in vm.pinned_to]
            fits = [h for h in allowed if free_ram[h] + _EPS >= vm.ram_gib
                    and free_cpu[h] + _EPS >= vm.vcpus]
            if not fits:
                plan.unplaced.append(vm.name)
                continue
            dest = max(fits, key=lambda h: (free_ram[h], free_cpu[h]))
            free_ram[dest] -= vm.ram_gib
            free_cpu[dest] -= vm.vcpus
            plan.placed[vm.name] = dest
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
