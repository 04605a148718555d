"""Where VMs run and where they go when their host fails: one set of rules for every engine.

Pure (no time, no I/O) and part of the shared vocabulary: it imports only the scenario.
The model's compute side, capacity, the claims and every lab backend place VMs with it, so
a scenario with unplaced VMs runs the same cluster on the model and on a lab.

For a scenario: :func:`initial_placement` (each VM's host at the start: the scenario's
``host``, else the oVirt scheduler's choice; None: fits nowhere) and :func:`failover_order`
(each placed VM's host and where it restarts if that host fails, in restart order). The
rules underneath: :mod:`.inventory` (the cluster as the scheduler sees it),
:mod:`.scheduler` (filters and weights per policy), :mod:`.failover` (restart order,
failover pairs, the HA reservation), :mod:`.hosted_engine` (the HA agents' scores).
"""

from __future__ import annotations

from hcisim.placement.failover import (
    FailoverPair,
    ReservationReport,
    failover_pairs,
    failover_rows,
    ha_reservation,
    reservation_summary,
)
from hcisim.placement.inventory import ClusterSpec, HostSpec, VmSpec, cluster_of, given_placement
from hcisim.placement.scheduler import choose_host, place, schedule_unplaced
from hcisim.scenario import Scenario


def initial_placement(sc: Scenario) -> dict[str, str | None]:
    """Every VM of ``sc`` -> the host it starts on (None: it fits nowhere and stays down).

    VMs with a ``host`` stay there; the others are placed by the scheduler in priority
    order, exactly as the model's compute side places them at time 0.
    """
    placed = schedule_unplaced(cluster_of(sc), given_placement(sc)).placement
    return {vm.name: placed.get(vm.name) for vm in sc.vms}


def failover_order(sc: Scenario, placement: dict[str, str | None] | None = None
                   ) -> tuple[FailoverPair, ...]:
    """For every placed VM (default: :func:`initial_placement`): its host and where it is
    restarted if that host fails (None: not restarted or fits nowhere)."""
    where = initial_placement(sc) if placement is None else placement
    return failover_pairs(cluster_of(sc), {v: h for v, h in where.items() if h is not None})


__all__ = [
    "ClusterSpec", "FailoverPair", "HostSpec", "ReservationReport", "VmSpec", "choose_host",
    "cluster_of", "failover_order", "failover_pairs", "failover_rows", "given_placement",
    "ha_reservation", "initial_placement", "place", "reservation_summary",
    "schedule_unplaced",
]
