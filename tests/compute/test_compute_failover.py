"""Failover pairs and the n+1 check, against an exhaustive search on small random clusters.

"Fits" (see hcisim.placement.failover): greedy = the scheduler in restart order places
every HA VM; packing exists = some assignment of all of them passes every filter together.
The relation that truly holds: greedy success => a packing exists, and greedy never restarts
more VMs than the largest set that can run together. The converse fails (example below).
"""

from __future__ import annotations

import pandas as pd
from hypothesis import event, given, settings

from hcisim.observations import conform
from hcisim.observations.schema import COLUMNS
from hcisim.placement.failover import (
    exhaustive_restart,
    failover_pairs,
    failover_restarts,
    failover_rows,
    ha_reservation,
    max_restartable,
    restart_candidates,
)
from hcisim.placement.inventory import (
    ClusterSpec,
    HostSpec,
    VmSpec,
    cluster_of,
    given_placement,
)
from hcisim.placement.scheduler import schedule_unplaced
from hcisim.scenario import load_scenario
from tests.compute.strategies import clusters
from tests.compute.test_compute_scheduler import valid


def test_default_scenario_pairs() -> None:
    sc = load_scenario()
    c, p = cluster_of(sc), given_placement(sc)
    pairs = failover_pairs(c, p)
    assert [x.vm for x in pairs] == [v.name for v in sc.vms]
    for x in pairs:
        if x.ha:
            assert x.failover_host not in (None, x.host)
        else:
            assert x.failover_host is None
    df = conform("failover_pairs", pd.DataFrame(failover_rows(pairs), columns=list(
        COLUMNS["failover_pairs"])))
    assert set(df[~df["ha"]]["failover_host"]) == {""}
    assert ha_reservation(c, p).ok


def test_engine_restarts_first_and_by_score() -> None:
    hosts = (HostSpec("a", 16, 64), HostSpec("b", 16, 64), HostSpec("c", 16, 64))
    vms = (VmSpec("engine", 4, 16, ha=True, hosted_engine=True),
           VmSpec("busy", 40, 8), VmSpec("ha1", 2, 8, ha=True, priority="high"))
    c = ClusterSpec(hosts, vms, cpu_overcommit=4.0)
    restarts, _ = failover_restarts(c, {"engine": "a", "ha1": "a", "busy": "b"}, "a")
    assert list(restarts) == ["engine", "ha1"]
    assert restarts["engine"] == "c"  # b's CPU load (40/64) costs agent score


def test_n_plus_one_names_the_stranded_and_the_shortfall() -> None:
    hosts = (HostSpec("a", 16, 64), HostSpec("b", 16, 64), HostSpec("c", 16, 64))
    vms = tuple(VmSpec(f"{h}{i}", 2, 30, ha=True, priority="high" if i == 0 else "low")
                for h in "abc" for i in range(2))
    c = ClusterSpec(hosts, vms)
    p = {v.name: v.name[0] for v in vms}
    rep = ha_reservation(c, p)
    assert not rep.ok
    # each host runs 60 GiB of 64; the survivors have 2 x 4 GiB free: both VMs stranded
    assert rep.stranded == {h: (f"{h}0", f"{h}1") for h in "abc"}
    assert rep.ram_short_gib == 60
    assert all(ch.ram_deficit_gib == 60 - 8 for ch in rep.checks)


def test_greedy_can_miss_a_packing_and_the_report_says_so() -> None:
    # survivors b and c have 10 GiB free each; restarts of 6, 4, 4, 3, 3 GiB. The scheduler
    # (evenly_distributed: least CPU, then most free RAM) goes 6->b, 4->c, 4->c, 3->b and
    # strands the last 3, while {6, 4} and {4, 3, 3} pack exactly.
    hosts = (HostSpec("a", 64, 64), HostSpec("b", 64, 10), HostSpec("c", 64, 10))
    vms = (VmSpec("x6", 1, 6, ha=True), VmSpec("y4", 1, 4, ha=True), VmSpec("z4", 1, 4, ha=True),
           VmSpec("u3", 1, 3, ha=True), VmSpec("w3", 1, 3, ha=True))
    c = ClusterSpec(hosts, vms)
    p = {v.name: "a" for v in vms}
    check = ha_reservation(c, p).checks[0]
    assert not check.ok and check.packing_exists
    assert ha_reservation(c, p).greedy_misses == ("a",)
    assert exhaustive_restart(c, p, "a") is not None
    assert check.ram_deficit_gib == 0  # only fragmentation strands it


@settings(max_examples=80, deadline=None)
@given(clusters(max_vms=8))
def test_greedy_fit_implies_exhaustive_fit(cluster: ClusterSpec) -> None:
    placement = schedule_unplaced(cluster, {}).placement
    for h in cluster.hosts:
        restarts, stranded = failover_restarts(cluster, placement, h.name)
        after = {**{v: x for v, x in placement.items() if x != h.name}, **restarts}
        assert valid(cluster, after) == []  # greedy restarts obey every filter
        packing = exhaustive_restart(cluster, placement, h.name)
        if not stranded:
            assert packing is not None
        if packing is not None:
            after_x = {**{v: x for v, x in placement.items() if x != h.name}, **packing}
            assert valid(cluster, after_x) == []
        if stranded and packing is not None:
            event("greedy strands a VM although a packing exists")
        assert len(restarts) <= max_restartable(cluster, placement, h.name)
        assert len(restarts) + len(stranded) == len(restart_candidates(cluster, placement,
                                                                       h.name))
