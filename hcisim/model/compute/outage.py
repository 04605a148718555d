"""The predicted outage of one host failure, without simulation: who is down, and until when.

Chains the pure rules: the hosted engine's way back (if it ran there), the engine's
detection and fencing (or lease expiry), the scheduler's failover placement, and the
restarts in priority tiers. The SimPy model produces the same times when storage stays
healthy (tests/compute check it); this is what ``hcisim failover`` prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hcisim.model.compute.ha import (
    HostFailureTimeline,
    HostLoss,
    PlannedRestart,
    host_failure_timeline,
    restart_schedule,
)
from hcisim.placement.failover import failover_restarts
from hcisim.placement.ha_rules import lease_timeline
from hcisim.placement.hosted_engine import (
    EngineRestart,
    HostHealth,
    agent_cpu_load,
    agent_free_ram_gib,
    agent_score,
    engine_restart,
)
from hcisim.placement.inventory import ClusterSpec, Placement, vms_on
from hcisim.scenario.compute import Compute


@dataclass(frozen=True)
class OutagePlan:
    host: str
    timeline: HostFailureTimeline
    engine_vm: str | None  # the hosted engine VM, if it ran on the failed host
    engine: EngineRestart | None  # its way back (None: it did not run there)
    restarts: tuple[PlannedRestart, ...]  # HA VMs the engine restarts (host None: nowhere)
    stays_down: tuple[str, ...]  # VMs never restarted automatically

    def back_at(self, vm: str) -> float:
        """When ``vm`` runs again (inf: not within the plan)."""
        if self.engine is not None and vm == self.engine_vm:
            return self.engine.up_at_s
        for r in self.restarts:
            if r.vm == vm:
                return r.up_s
        return math.inf


def agent_scores(cluster: ClusterSpec, placement: Placement, hosts: list[str],
                 compute: Compute) -> dict[str, int]:
    vm = cluster.engine_vm
    ram = vm.ram_gib if vm is not None else 0.0
    engine = vm.name if vm is not None else None
    return {h: agent_score(compute.hosted_engine, HostHealth(
        cpu_load=agent_cpu_load(cluster.vcpu_capacity(h),
                                {v: cluster.vm(v).vcpus for v in vms_on(placement, h)}, engine),
        free_ram_gib=agent_free_ram_gib(
            cluster.host(h).ram_gib, {v: cluster.vm(v).ram_gib for v in vms_on(placement, h)},
            engine)), ram) for h in hosts}


def plan_host_loss(compute: Compute, cluster: ClusterSpec, placement: Placement, failed: str,
                   loss: HostLoss = "power_loss", t_fail: float = 0.0) -> OutagePlan:
    """What a ``loss`` of ``failed`` at ``t_fail`` does, if nothing else goes wrong."""
    f = compute.fencing
    victims = [cluster.vm(v) for v in vms_on(placement, failed)]
    survivors = [h.name for h in cluster.hosts if h.name != failed]
    restarts, _ = failover_restarts(cluster, placement, failed)
    engine: EngineRestart | None = None
    engine_vm = cluster.engine_vm
    if engine_vm is not None and placement.get(engine_vm.name) == failed:
        rest = {v: h for v, h in placement.items() if h != failed}
        engine = engine_restart(compute.hosted_engine, t_fail, host_died=True,
                                lease_expiry_s=lease_timeline(f.lease_io_timeout_s, 0.0).free_s,
                                scores=agent_scores(cluster, rest, survivors, compute),
                                order=survivors)
        engine = EngineRestart(engine.down_at_s, engine.noticed_at_s, engine.start_at_s,
                               engine.up_at_s, restarts.get(engine_vm.name))
    engine_up = engine.up_at_s if engine is not None else t_fail
    tl = host_failure_timeline(
        f, failed, loss, t_fail, power_management=cluster.host(failed).power_management,
        running_vms=len(victims), spm=failed == cluster.spm, engine_up_from_s=engine_up,
        engine_started_at_s=engine_up if engine is not None else -math.inf)
    ready_vms = [(v, tl.restart_ready_s(v)) for v in victims if not v.hosted_engine]
    todo = [(v, restarts.get(v.name)) for v, r in ready_vms if r is not None]
    begins = tl.restart_begins_s
    ready = {v.name: r for v, r in ready_vms if r is not None}
    planned = restart_schedule(todo, math.inf if begins is None else begins,
                               compute.ha_restart, engine_up, not_before_s=ready) \
        if todo else ()
    down = tuple(v.name for v, r in ready_vms if r is None)
    return OutagePlan(failed, tl, engine_vm.name if engine is not None and engine_vm else None,
                      engine, planned, down)
