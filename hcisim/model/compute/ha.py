"""What the engine does when a host stops answering, as a pure timeline.

Sources checked (ovirt-site):
- "Automatic Fencing" (develop/developer-guide, wiki Automatic_Fencing) and the Admin Guide's
  "Soft-Fencing Hosts": on the first failed call the host goes *Connecting*; the engine then
  waits TimeoutToResetVdsInSeconds (60 s) + DelayResetPerVmInSeconds (0.5 s) x running VMs +
  DelayResetForSpmInSeconds (20 s) if the host is the SPM; then it restarts vdsm over ssh
  (soft fencing); if that fails the host is *Non Responsive* and, with power management, it
  is fenced (power cycled). Soft fencing also runs without power management.
- The same page: no fencing during DisableFenceAtStartupInSec (300 s) after the engine starts.
- vm-leases.md: without fencing, an HA VM with a VM lease can be started elsewhere once the
  sanlock lease of the dead host has expired; an HA VM without a lease on an unfenced host
  cannot be restarted (the engine cannot know it is dead). When another host can acquire the
  lease is sanlock's rule (:func:`hcisim.placement.ha_rules.lease_timeline`: host_dead =
  8 x io_timeout + 60 s after the dead host's last renewal, 141 s after the failure on
  average with io_timeout 10 s), not the 80 s at which the dead host's own sanlock would
  have killed its holders.
- A power-management fence does not free a VM lease. The engine starts the HA VMs at the
  fence, but the new host's qemu holds the VM lease, and sanlock's ``paxos_lease_acquire``
  (src/paxos_lease.c) grants a lease owned by another host only when it is released on
  disk, when the owner's delta lease is free or owned by a newer generation (the owner
  rejoined the lockspace after a reboot), or when the acquirer has not seen that delta
  lease move for host_dead seconds. Nothing in the fence tells sanlock (neither ovirt-engine
  nor vdsm release another host's lease), so a leased VM runs elsewhere at the later of the
  fence and :func:`~hcisim.placement.ha_rules.lease_timeline`'s ``free_s``, counted from
  when the host stopped renewing: the failure for a power loss or a hang, the fence (its
  power cut) for a management cut. The lab's sanlock does exactly this (docs/plane.md).
  A fenced host that reboots and rejoins the lockspace before host_dead would free it
  earlier; the model's and the lab's fence leave the host off until the fault ends.
- oVirt 4.4 release notes (MaxTimeAutoStartBlockedOnPriority): HA VMs restart in priority
  order, a lower priority waiting until the higher ones are Up, for at most 600 s.

Detection: a host that lost power or network has no TCP peer, so the engine's first call
fails after vdsConnectionTimeout (20 s). A hung host keeps its TCP connection; its calls
time out only after vdsTimeout (180 s). The engine must be running: when it is down (the
hosted engine was on the failed host), every clock here starts when it is back up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hcisim.placement.ha_rules import fence_grace_s as fence_grace_s
from hcisim.placement.ha_rules import iter_retry_times as iter_retry_times
from hcisim.placement.ha_rules import lease_timeline
from hcisim.placement.inventory import VmSpec
from hcisim.scenario.compute import Fencing, HaRestart
from hcisim.scenario.faults import HostLoss as HostLoss
from hcisim.scenario.faults import loss_kills_vms

# What a scenario fault does to a host from the compute side is the fault table's
# ``host_loss`` (``Fault.host_loss``); storage-side effects (bricks, quorum, a VM's disk
# failing) reach compute through the storage model's per-VM notifications instead.
vms_die = loss_kills_vms


@dataclass(frozen=True)
class HostFailureTimeline:
    host: str
    loss: HostLoss
    failed_at_s: float
    connecting_at_s: float  # the engine's first failed call
    non_responsive_at_s: float  # grace elapsed, soft fencing (ssh) failed
    fenced_at_s: float | None  # power management fence done (None: no PM)
    lease_expired_at_s: float  # sanlock leases of its VMs free (inf: still renewed)

    @property
    def restart_begins_s(self) -> float | None:
        """When the engine begins restarting the host's HA VMs: at the fence; without
        power management once the VM leases are free (None: never automatically)."""
        if self.fenced_at_s is not None:
            return self.fenced_at_s
        if math.isfinite(self.lease_expired_at_s):
            return max(self.non_responsive_at_s, self.lease_expired_at_s)
        return None

    def restart_ready_s(self, vm: VmSpec) -> float | None:
        """When ``vm`` can start running elsewhere (None: never automatically): the engine's
        start (:attr:`restart_begins_s`) and, for a VM with a lease, sanlock's acquire, which
        blocks until the lease is free even after a fence."""
        if not vm.ha:
            return None
        if self.fenced_at_s is None and not vm.holds_lease:
            return None  # unfenced: only a lease proves the VM is dead
        begins = self.restart_begins_s
        if begins is None:
            return None
        return max(begins, self.lease_expired_at_s) if vm.holds_lease else begins

    def vms_stop_at_s(self) -> float | None:
        """When the host's VMs stop (the failure, or the fence for a management cut)."""
        return self.failed_at_s if vms_die(self.loss) else self.fenced_at_s


def host_failure_timeline(f: Fencing, host: str, loss: HostLoss, failed_at_s: float, *,
                          power_management: bool, running_vms: int, spm: bool,
                          engine_up_from_s: float = 0.0, engine_started_at_s: float = -math.inf
                          ) -> HostFailureTimeline:
    """The engine's handling of one host failure.

    ``engine_up_from_s``: the engine answers from then on (it notices nothing before).
    ``engine_started_at_s``: when the engine last started (fencing is off for
    ``disable_fence_at_startup_s`` after it); -inf when it has been up since long before.
    """
    start = max(failed_at_s, engine_up_from_s)
    timeout = f.vds_timeout_s if loss == "hang" else f.vds_connection_timeout_s
    connecting = start + timeout
    non_responsive = connecting + fence_grace_s(f, running_vms, spm) + f.soft_fencing_s
    fenced = None
    if power_management:
        fenced = max(non_responsive, engine_started_at_s + f.disable_fence_at_startup_s)
    # the host stops renewing its delta lease when it fails, or, for a management cut (its
    # storage still works), when the fence cuts its power
    renewals_stop = failed_at_s if vms_die(loss) else fenced
    lease = lease_timeline(f.lease_io_timeout_s, renewals_stop).free_s \
        if renewals_stop is not None else math.inf
    return HostFailureTimeline(host, loss, failed_at_s, connecting, non_responsive, fenced, lease)


@dataclass(frozen=True)
class PlannedRestart:
    vm: str
    host: str | None  # None: fits nowhere (stays down)
    start_s: float
    up_s: float


def restart_schedule(restarts: Sequence[tuple[VmSpec, str | None]], ready_s: float,
                     policy: HaRestart, engine_up_s: float = -math.inf,
                     not_before_s: Mapping[str, float] | None = None
                     ) -> tuple[PlannedRestart, ...]:
    """Start times of HA restarts that the engine begins at ``ready_s``.

    ``restarts`` are (vm, host or None) in placement order. Each priority waits until every
    VM of a higher priority is up, but at most ``priority_block_max_s`` (a VM that fits
    nowhere never comes up, so it blocks for that long); none starts before the engine is up.
    ``not_before_s``: a VM's start runs no earlier than this (its VM lease free: sanlock's
    acquire blocks the start, and the VM is not up for the tiers below until it ran and
    booted). ``start_s`` is when the VM runs. VMs that fit nowhere get
    ``start_s = up_s = inf``.
    """
    later = not_before_s or {}
    t0 = max(ready_s, engine_up_s)
    out: list[PlannedRestart] = []
    higher_up = t0
    for rank in sorted({vm.rank for vm, _ in restarts}):
        start = max(t0, min(higher_up, t0 + policy.priority_block_max_s))
        tier_up = start
        for vm, host in restarts:
            if vm.rank != rank:
                continue
            if host is None:
                out.append(PlannedRestart(vm.name, None, math.inf, math.inf))
                tier_up = math.inf
                continue
            runs = max(start, later.get(vm.name, -math.inf))
            out.append(PlannedRestart(vm.name, host, runs, runs + vm.boot_s))
            tier_up = max(tier_up, runs + vm.boot_s)
        higher_up = max(higher_up, tier_up)
    order = {vm.name: i for i, (vm, _) in enumerate(restarts)}
    return tuple(sorted(out, key=lambda r: order[r.vm]))


def retry_times(policy: HaRestart, first_try_s: float, until_s: float) -> list[float]:
    """:func:`iter_retry_times` as a list."""
    return list(iter_retry_times(policy, first_try_s, until_s))
