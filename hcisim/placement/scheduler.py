"""VM placement the way the oVirt scheduler does it: filters, then weights, per policy.

Filters (a host failing any one is out; ovirt-site scheduler-policies.md):
- the host is up and not in maintenance (the caller passes the ``unavailable`` hosts);
- pinning: a VM pinned to hosts runs only there;
- CPU: the VM's vCPUs fit in the host's cores (oVirt's CPU filter), and committed vCPUs stay
  within cores x ``cpu_overcommit``;
- memory: committed RAM stays within the host's RAM x ``memory_overcommit_pct`` / 100;
- enforcing affinity: a positive group's VMs share one host, a negative group's never do.

Weights (lower is better), per ``scheduling_policy``; a soft (non-enforcing) affinity
violation weighs more than any policy weight, and scenario host order breaks every tie:
- ``evenly_distributed``: lowest CPU load after placing, then most free RAM;
- ``vm_evenly_distributed``: fewest VMs (the SPM counts ``spm_vm_grace`` extra), then CPU;
- ``power_saving``: pack: highest CPU load after placing, then least free RAM (best fit);
- ``none``: first host that passes the filters.
The hosted engine VM is placed by its agents: highest ovirt-ha-agent score among the hosts
that pass the filters (:mod:`hosted_engine`).

CPU load here is committed vCPUs / (cores x cpu_overcommit): the scenario gives no guest CPU
utilisation, so what is committed stands in for what the engine would measure.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from hcisim.placement.hosted_engine import HostHealth, agent_free_ram_gib, agent_score
from hcisim.placement.inventory import (
    ClusterSpec,
    HostLoad,
    Placement,
    VmSpec,
    loads,
    priority_order,
    vms_on,
)
from hcisim.scenario.compute import HostedEngine

_EPS = 1e-9
_AGENT = HostedEngine()


def cpu_load(cluster: ClusterSpec, host: str, load: HostLoad) -> float:
    return load.vcpus / cluster.vcpu_capacity(host)


def rejection(cluster: ClusterSpec, vm: VmSpec, host: str, placement: Placement,
              host_loads: Mapping[str, HostLoad], unavailable: Collection[str] = ()
              ) -> str | None:
    """Why ``host`` cannot take ``vm`` (the first filter it fails), or None if it can.

    ``placement`` must not contain ``vm`` itself; ``host_loads`` are the loads of it.
    """
    if host in unavailable:
        return "host unavailable"
    if vm.pinned_to and host not in vm.pinned_to:
        return "pinned elsewhere"
    spec = cluster.host(host)
    load = host_loads[host]
    if vm.vcpus > spec.cores:
        return "more vCPUs than host cores"
    if load.ram_gib + vm.ram_gib > cluster.ram_capacity_gib(host) + _EPS:
        return "memory"
    if load.vcpus + vm.vcpus > cluster.vcpu_capacity(host) + _EPS:
        return "cpu"
    for rule in cluster.affinity:
        if not rule.enforcing or vm.name not in rule.vms:
            continue
        others = {placement[m] for m in rule.vms if m != vm.name and m in placement}
        if rule.positive and others and others != {host}:
            return f"affinity group {rule.name}"
        if not rule.positive and host in others:
            return f"anti-affinity group {rule.name}"
    return None


def _soft_violations(cluster: ClusterSpec, vm: VmSpec, host: str, placement: Placement) -> int:
    n = 0
    for rule in cluster.affinity:
        if rule.enforcing or vm.name not in rule.vms:
            continue
        others = [placement[m] for m in rule.vms if m != vm.name and m in placement]
        n += sum(1 for h in others if (h != host) == rule.positive)
    return n


def _weight(cluster: ClusterSpec, vm: VmSpec, host: str, load: HostLoad,
            he_health: Mapping[str, HostHealth], placement: Placement) -> tuple[float, ...]:
    cpu_after = (load.vcpus + vm.vcpus) / cluster.vcpu_capacity(host)
    free_after = cluster.ram_capacity_gib(host) - load.ram_gib - vm.ram_gib
    if vm.hosted_engine:
        base = he_health.get(host, HostHealth())
        on_host = {v: cluster.vm(v).ram_gib for v in vms_on(placement, host)}
        health = HostHealth(cpu_load=min(1.0, cpu_load(cluster, host, load)),
                            free_ram_gib=agent_free_ram_gib(cluster.host(host).ram_gib,
                                                            on_host, vm.name),
                            gateway_ok=base.gateway_ok,
                            bridge_ok=base.bridge_ok, start_retries=base.start_retries)
        return (-agent_score(_AGENT, health, vm.ram_gib), cpu_after)
    policy = cluster.policy
    if policy == "evenly_distributed":
        return (cpu_after, -free_after)
    if policy == "vm_evenly_distributed":
        grace = cluster.spm_vm_grace if host == cluster.spm else 0
        return (load.vms + grace, cpu_after)
    if policy == "power_saving":
        return (-cpu_after, free_after)
    return ()


def _choose(cluster: ClusterSpec, vm: VmSpec, placement: Placement,
            host_loads: Mapping[str, HostLoad], unavailable: Collection[str],
            he_health: Mapping[str, HostHealth]) -> str | None:
    best: tuple[tuple[float, ...], str] | None = None
    for i, h in enumerate(cluster.hosts):
        if rejection(cluster, vm, h.name, placement, host_loads, unavailable) is not None:
            continue
        key = (float(_soft_violations(cluster, vm, h.name, placement)),
               *_weight(cluster, vm, h.name, host_loads[h.name], he_health, placement),
               float(i))
        if best is None or key < best[0]:
            best = (key, h.name)
    return None if best is None else best[1]


def choose_host(cluster: ClusterSpec, vm: VmSpec, placement: Placement,
                unavailable: Collection[str] = (),
                he_health: Mapping[str, HostHealth] | None = None) -> str | None:
    """The host the scheduler picks for ``vm`` given what is already placed (None: none fits).

    ``vm`` may be in ``placement`` (a migration): it is left out of its current host's load.
    """
    others = {k: v for k, v in placement.items() if k != vm.name}
    return _choose(cluster, vm, others, loads(cluster, others), unavailable, he_health or {})


@dataclass(frozen=True)
class PlacementResult:
    placement: dict[str, str]  # the input placement plus every VM placed here
    placed: tuple[tuple[str, str], ...]  # (vm, host) in the order they were placed
    unplaced: tuple[str, ...]  # VMs that fit nowhere, in the order they were tried


def place(cluster: ClusterSpec, placement: Placement, vms: Sequence[VmSpec],
          unavailable: Collection[str] = (),
          he_health: Mapping[str, HostHealth] | None = None) -> PlacementResult:
    """Place ``vms`` one after another in the given order; each sees the ones before it."""
    current = dict(placement)
    host_loads = loads(cluster, current)
    placed: list[tuple[str, str]] = []
    unplaced: list[str] = []
    for vm in vms:
        host = _choose(cluster, vm, current, host_loads, unavailable, he_health or {})
        if host is None:
            unplaced.append(vm.name)
            continue
        current[vm.name] = host
        host_loads[host].add(vm)
        placed.append((vm.name, host))
    return PlacementResult(current, tuple(placed), tuple(unplaced))


def schedule_unplaced(cluster: ClusterSpec, placement: Placement,
                      unavailable: Collection[str] = ()) -> PlacementResult:
    """Place every VM of the cluster that ``placement`` leaves out, in priority order."""
    todo = [v for v in cluster.vms if v.name not in placement]
    return place(cluster, placement, priority_order(todo), unavailable)


def unbalanced_hosts(cluster: ClusterSpec, placement: Placement,
                     unavailable: Collection[str] = ()) -> tuple[str, ...]:
    """Hosts ``vm_evenly_distributed`` would migrate VMs away from.

    A host is overloaded when it runs more than ``high_vm_count`` VMs and more than
    ``migration_threshold`` VMs above the least loaded available host (the SPM counting
    ``spm_vm_grace`` extra), as the engine's EvenGuestDistributionBalancePolicyUnit defines it.
    """
    counts = {h: ld.vms + (cluster.spm_vm_grace if h == cluster.spm else 0)
              for h, ld in loads(cluster, placement).items() if h not in unavailable}
    if not counts:
        return ()
    low = min(counts.values())
    return tuple(h for h, n in counts.items()
                 if n > cluster.high_vm_count and n - low > cluster.migration_threshold)
