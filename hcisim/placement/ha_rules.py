"""The engine's HA clocks that every engine shares: the fence grace and the retry times.

Pure functions of the scenario's ``compute.fencing`` and ``compute.ha_restart``, here in
the vocabulary so that the model (:mod:`hcisim.model.compute.ha`) and the lab's
management plane (:mod:`hcisim.lab.plane.engine`) run the same rules without importing
each other. Sources: ovirt-engine ``ConfigValues`` (TimeoutToResetVdsInSeconds,
DelayResetPerVmInSeconds, DelayResetForSpmInSeconds, RetryToRunAutoStartVm*). Likewise
sanlock's VM-lease timing, from the scenario's ``fencing.lease_io_timeout_s``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from hcisim.scenario.compute import Fencing, HaRestart


def fence_grace_s(f: Fencing, running_vms: int, spm: bool) -> float:
    """TimeoutToResetVdsInSeconds + 0.5 s per running VM + 20 s if SPM."""
    return f.reset_vds_timeout_s + f.per_vm_delay_s * running_vms + (f.spm_delay_s if spm else 0)


def iter_retry_times(policy: HaRestart, first_try_s: float, until_s: float) -> Iterator[float]:
    """When the engine retries an HA VM that failed to start (30 s x 10, then every 30 min),
    lazily: a year holds 17,520 half-hours, and most restarts need none of them."""
    t = first_try_s
    n = 0
    while True:
        t += policy.retry_short_s if n < policy.retry_short_tries else policy.retry_long_s
        n += 1
        if t > until_s:
            return
        yield t


# --- sanlock VM leases (sanlock 3.8 src/timeouts.c, lockspace.c, paxos_lease.c) -------------

WATCHDOG_FIRE_TIMEOUT_S = 60  # sanlock's DEFAULT_WATCHDOG_FIRE_TIMEOUT: a constant in 3.8.5


def lease_renewal_s(io_timeout_s: float) -> float:
    """id_renewal_seconds: a host renews its delta lease this often (2 x io_timeout)."""
    return 2.0 * io_timeout_s


def lease_renewal_fail_s(io_timeout_s: float) -> float:
    """id_renewal_fail_seconds: this long after its last successful renewal a host's sanlock
    kills its lease holders (8 x io_timeout; ``check_our_lease``, ``kill_pids``)."""
    return 8.0 * io_timeout_s


def lease_host_dead_s(io_timeout_s: float) -> float:
    """host_dead_seconds: another host may take a lease of a host whose delta lease it has
    not seen move for longer than this (id_renewal_fail + watchdog_fire_timeout)."""
    return lease_renewal_fail_s(io_timeout_s) + WATCHDOG_FIRE_TIMEOUT_S


@dataclass(frozen=True)
class LeaseTimeline:
    """What sanlock does to the VM leases of a host that stops renewing at ``stopped_s``.

    The phase of the renewals is unknown (the lockspace was joined before the run), so the
    holder's last successful renewal is taken half a renewal interval before: the middle of
    ``[stopped_s - 2 x io_timeout, stopped_s]`` (``last_renewal_s``). Another host's renewal
    thread reads the lockspace once per its own renewal and notes when it last saw the
    timestamp move (``last_live``, ``check_other_leases``): on average one io_timeout after
    the renewal (``seen_s``). Its acquire waits until ``now - last_live > host_dead``, in
    whole seconds, polling every second (``paxos_lease_acquire``): on average 1 s past it.
    """

    stopped_s: float
    last_renewal_s: float
    holders_killed_s: float  # the holder's sanlock kills its lease holders (SIGTERM)
    seen_s: float  # the other hosts last saw its delta lease move
    free_s: float  # another host's acquire succeeds

    @property
    def phase_spread_s(self) -> float:
        """The unknown renewal phases alone move the lab's ``holders_killed_s`` by up to this
        either way (one io_timeout) and its ``free_s`` by up to twice this."""
        return self.stopped_s - self.last_renewal_s


def lease_timeline(io_timeout_s: float, stopped_s: float) -> LeaseTimeline:
    """The lease timeline of a host whose storage stops taking its renewals at ``stopped_s``
    (power loss, a hang, its storage link cut)."""
    last = stopped_s - lease_renewal_s(io_timeout_s) / 2
    seen = last + lease_renewal_s(io_timeout_s) / 2
    return LeaseTimeline(stopped_s, last, last + lease_renewal_fail_s(io_timeout_s), seen,
                         seen + lease_host_dead_s(io_timeout_s) + 1.0)


# --- the HCI fencing policy (vdsm gluster/fence.py ``can_fence_host``) --------------------

# volume -> its replica set's bricks in order: (host, ONLINE as a peer's glusterd sees it)
GlusterBricks = Mapping[str, Sequence[tuple[str, bool]]]


def gluster_fence_veto(f: Fencing, host: str, bricks: GlusterBricks) -> str | None:
    """Why the cluster's fencing policy forbids fencing ``host`` now (None: it may).

    The engine asks a proxy host's vdsm, which reads ``gluster volume status`` and applies
    the two Gluster policies (oVirt defaults off; RHHI requires both on):
    ``skip_fencing_if_gluster_bricks_up``: a brick of ``host`` is ONLINE;
    ``skip_fencing_if_gluster_quorum_not_met``: ``host`` has ONLINE bricks and, in a replica
    set, fewer than ceil(replica / 2) of the others are ONLINE (quorum-type auto, as vdsm
    counts it): fencing would take the set below quorum. A host whose bricks are already
    offline (power loss) may always be fenced.
    """
    for volume, replica_set in bricks.items():
        going = sum(1 for h, up in replica_set if h == host and up)
        if f.skip_fencing_if_gluster_bricks_up and going:
            return f"Gluster brick of {host} on {volume} is ONLINE"
        if f.skip_fencing_if_gluster_quorum_not_met and going and len(replica_set) > 1:
            remaining = sum(1 for h, up in replica_set if h != host and up)
            if remaining < math.ceil(len(replica_set) / 2):
                return f"Gluster quorum not met for {volume} without {host}"
    return None
