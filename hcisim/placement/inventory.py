"""The compute view of a cluster: hosts, VMs and the rules the scheduler obeys, as plain data.

Frozen dataclasses rather than the pydantic scenario, so that the algorithms can be driven by
hypothesis-generated clusters as cheaply as by a scenario file; :func:`cluster_of` converts a
scenario. A *placement* is a mapping VM name -> host name of the VMs that hold resources.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from hcisim.scenario import Scenario
from hcisim.scenario.compute import SchedulingPolicy
from hcisim.scenario.workload import PRIORITY_RANK

GIB_MB = 1073.741824  # 2^30 bytes in MB (10^6 bytes): migration works in MB and MB/s

Placement = Mapping[str, str]


@dataclass(frozen=True)
class HostSpec:
    name: str
    cores: int = 32
    ram_gib: float = 256.0
    power_management: bool = True


@dataclass(frozen=True)
class VmSpec:
    name: str
    vcpus: int = 2
    ram_gib: float = 4.0
    ha: bool = False
    priority: str = "low"
    lease: bool = True
    hosted_engine: bool = False
    pinned_to: tuple[str, ...] = ()
    boot_s: float = 30.0
    dirty_rate_mb_s: float = 20.0
    working_set_gib: float | None = None

    @property
    def rank(self) -> int:
        """0 for high priority, 2 for low: restarts and placement go in rank order."""
        return PRIORITY_RANK[self.priority]

    @property
    def restartable(self) -> bool:
        """Restarted automatically after a failure: HA VMs, and the hosted engine (its agents)."""
        return self.ha or self.hosted_engine

    @property
    def holds_lease(self) -> bool:
        """oVirt offers a VM lease only to HA VMs (vm-leases.md), so lease without HA is inert."""
        return self.ha and self.lease

    @property
    def migrate_mb(self) -> float:
        """RAM a migration copies: the working set (zero pages cost nearly nothing)."""
        gib = self.working_set_gib if self.working_set_gib is not None else self.ram_gib
        return min(gib, self.ram_gib) * GIB_MB


@dataclass(frozen=True)
class AffinityRule:
    name: str
    vms: frozenset[str]
    positive: bool = False
    enforcing: bool = True


@dataclass(frozen=True)
class ClusterSpec:
    """Everything placement needs. The SPM is the first host (see :attr:`spm`)."""

    hosts: tuple[HostSpec, ...]
    vms: tuple[VmSpec, ...] = ()
    policy: SchedulingPolicy = "evenly_distributed"
    affinity: tuple[AffinityRule, ...] = ()
    memory_overcommit_pct: float = 100.0
    cpu_overcommit: float = 4.0
    high_vm_count: int = 10
    migration_threshold: int = 5
    spm_vm_grace: int = 5

    @cached_property
    def host_by_name(self) -> dict[str, HostSpec]:
        return {h.name: h for h in self.hosts}

    @cached_property
    def vm_by_name(self) -> dict[str, VmSpec]:
        return {v.name: v for v in self.vms}

    def host(self, name: str) -> HostSpec:
        return self.host_by_name[name]

    def vm(self, name: str) -> VmSpec:
        return self.vm_by_name[name]

    @property
    def spm(self) -> str:
        """The SPM host. Rule: the first host in scenario order.

        oVirt elects the SPM among the data center's hosts (usually the first one activated)
        and keeps it there until that host fails; the scenario has no SPM field, so we take
        the first host, and a user who wants "the SPM fails" fails that host.
        """
        return self.hosts[0].name

    @property
    def engine_vm(self) -> VmSpec | None:
        for v in self.vms:
            if v.hosted_engine:
                return v
        return None

    def ram_capacity_gib(self, host: str) -> float:
        """RAM the memory filter lets VMs commit on ``host`` (with memory_overcommit_pct)."""
        return self.host(host).ram_gib * self.memory_overcommit_pct / 100.0

    def vcpu_capacity(self, host: str) -> float:
        """vCPUs the CPU filter lets VMs commit on ``host`` (cores x cpu_overcommit)."""
        return self.host(host).cores * self.cpu_overcommit


@dataclass
class HostLoad:
    """What the VMs placed on one host commit."""

    ram_gib: float = 0.0
    vcpus: int = 0
    vms: int = 0

    def add(self, vm: VmSpec) -> None:
        self.ram_gib += vm.ram_gib
        self.vcpus += vm.vcpus
        self.vms += 1


def loads(cluster: ClusterSpec, placement: Placement) -> dict[str, HostLoad]:
    """Committed RAM, vCPUs and VM count of every host under ``placement``."""
    out = {h.name: HostLoad() for h in cluster.hosts}
    for vm_name, host in placement.items():
        out[host].add(cluster.vm(vm_name))
    return out


def vms_on(placement: Placement, host: str) -> list[str]:
    return [vm for vm, h in placement.items() if h == host]


def priority_order(vms: Iterable[VmSpec]) -> list[VmSpec]:
    """High priority first, then larger RAM first (harder to place), then by name.

    The hosted engine goes before everything: its agents restart it, and the engine must be
    up before any other HA VM is restarted.
    """
    return sorted(vms, key=lambda v: (not v.hosted_engine, v.rank, -v.ram_gib, v.name))


def cluster_of(sc: Scenario) -> ClusterSpec:
    """The compute view of a scenario."""
    c = sc.compute
    return ClusterSpec(
        hosts=tuple(HostSpec(h.name, h.cores, h.ram_gib, h.power_management) for h in sc.hosts),
        vms=tuple(
            VmSpec(v.name, v.vcpus, v.ram_gib, v.ha, v.priority, v.lease, v.hosted_engine,
                   v.pinned_to, v.boot_s, v.dirty_rate_mb_s, v.working_set_gib)
            for v in sc.vms
        ),
        policy=c.scheduling_policy,
        affinity=tuple(AffinityRule(g.name, frozenset(g.vms), g.positive, g.enforcing)
                       for g in c.affinity_groups),
        memory_overcommit_pct=c.memory_overcommit_pct,
        cpu_overcommit=c.cpu_overcommit,
        high_vm_count=c.high_vm_count,
        migration_threshold=c.migration_threshold,
        spm_vm_grace=c.spm_vm_grace,
    )


def given_placement(sc: Scenario) -> dict[str, str]:
    """The VMs the scenario puts on a host itself (the rest are for the scheduler)."""
    return {v.name: v.host for v in sc.vms if v.host is not None}
