"""Speed of the compute model on a large inventory. Off by default; run with
``.venv/bin/pytest tests/compute/test_compute_bench.py -m benchmark -s``. Prints wall times;
asserts only results (the machine may be shared)."""

from __future__ import annotations

import time

import pytest
import simpy

from hcisim.model.compute import ComputeModel, SteadyStorage
from hcisim.observations import Recorder
from hcisim.placement.failover import failover_pairs, ha_reservation
from hcisim.placement.inventory import cluster_of
from hcisim.placement.scheduler import schedule_unplaced
from hcisim.scenario import Scenario, load_scenario, with_overrides


def big_scenario(n_vms: int, days: float) -> Scenario:
    """``n_vms`` small VMs on the default hosts; every 6 h a host loses power for 30 min and
    3 h later another host goes through maintenance."""
    sc = load_scenario()
    vms = [{"name": f"vm{i}", "vcpus": 2, "ram_gib": 2 + i % 4 * 2, "ha": i % 3 != 0,
            "priority": ["low", "medium", "high"][i % 3], "disks": []} for i in range(n_vms)]
    faults = [{"at_s": 3600 * (1 + 6 * k), "kind": "node_power_loss",
               "target": f"host{1 + k % 3}", "duration_s": 1800} for k in range(int(days * 4))]
    ops = [{"at_s": 3600 * (4 + 6 * k), "kind": "maintenance", "host": f"host{1 + (k + 1) % 3}"}
           for k in range(int(days * 4))] + [
          {"at_s": 3600 * (5 + 6 * k), "kind": "activate", "host": f"host{1 + (k + 1) % 3}"}
          for k in range(int(days * 4))]
    return with_overrides(sc, {"vms": vms, "faults": faults, "operations": ops,
                               "duration_s": days * 86400, "claims": []})


@pytest.mark.benchmark
def test_failover_pairs_and_n_plus_one_for_120_vms() -> None:
    sc = big_scenario(120, 1)
    cluster = cluster_of(sc)
    t0 = time.perf_counter()
    placement = schedule_unplaced(cluster, {}).placement
    pairs = failover_pairs(cluster, placement)
    report = ha_reservation(cluster, placement)
    dt = time.perf_counter() - t0
    assert len(pairs) == 120 and report.checks
    print(f"\n120 VMs: placement + failover pairs + n+1 in {dt * 1000:.0f} ms")


@pytest.mark.benchmark
def test_one_week_of_failures_and_maintenance() -> None:
    sc = big_scenario(60, 7)
    env, rec = simpy.Environment(), Recorder()
    cm = ComputeModel(env, sc, rec, SteadyStorage(env))
    t0 = time.perf_counter()
    cm.start()
    env.run(until=sc.duration_s)
    cm.finish(sc.duration_s)
    dt = time.perf_counter() - t0
    assert rec.count("migrations") > 0 and rec.count("vm_state") > 0
    print(f"\n60 VMs, 7 days, 28 power losses + 28 maintenances: {dt:.2f} s, "
          f"{rec.count('events')} events, {rec.count('migrations')} migrations")
