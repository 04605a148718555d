"""The compute scenarios of the catalogue say what their comments promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcisim.model.compute.outage import plan_host_loss
from hcisim.observations import conform
from hcisim.placement.failover import ha_reservation
from hcisim.placement.ha_rules import lease_timeline
from hcisim.placement.inventory import cluster_of
from hcisim.scenario import Scenario, load_scenario
from tests.compute.test_compute_process import restart_starts, run, states

CATALOGUE = Path(__file__).resolve().parents[2] / "scenarios"


def load(name: str) -> Scenario:
    return load_scenario(CATALOGUE / f"{name}.yaml")


def test_no_power_management_restarts_through_leases() -> None:
    sc = load("compute-host-failure-no-pm")
    rec, _, _ = run(sc)
    starts = restart_starts(rec)
    # non-responsive at 300 + 20 + 60 + 4 x 0.5 + 30 = 412 s; the leases are free for
    # another host only at 300 + host_dead (8 x 10 + 60 s) + 1 s = 441 s (sanlock, the dead
    # host's last renewal half a renewal interval before the failure, seen as much later)
    io = sc.compute.fencing.lease_io_timeout_s
    assert lease_timeline(io, 300.0).free_s == 441.0
    assert starts["db1"] == 441.0 and starts["app1"] == 471.0  # medium waits for high up
    ev = rec.frame("events")
    expired = ev[ev["kind"] == "lease_expired"]
    acquired = ev[ev["kind"] == "lease_acquired"]
    assert sorted(expired["target"]) == ["app1", "db1"] and set(expired["t_s"]) == {441.0}
    assert dict(zip(acquired["target"], acquired["t_s"], strict=True)) == \
        {"db1": 441.0, "app1": 471.0}
    st_ = states(rec)
    last = st_.sort_values("t_start_s").groupby("vm").last()
    assert last.loc["legacy", "state"] == "down" and last.loc["scratch", "state"] == "down"
    assert set(st_[st_["vm"].isin(["engine", "web1"])]["state"]) == {"running"}


def test_engine_host_failure_engine_first() -> None:
    sc = load("compute-engine-host-fails")
    rec, cm, _ = run(sc)
    ev = rec.frame("events")
    up = float(ev[ev["kind"] == "engine_up"]["t_s"].iloc[0])
    # the engine VM's lease is free at 600 + 141 s, the agents' next 10 s tick, then boot_s
    assert up == 750 + 300
    starts = restart_starts(rec)
    assert min(t for vm, t in starts.items() if vm != "engine") >= up
    assert starts["db1"] == up + 300  # DisableFenceAtStartupInSec
    plan = plan_host_loss(sc.compute, cm.cluster, cm.initial_placement, "host1", t_fail=600)
    assert plan.engine is not None and plan.engine.up_at_s == up
    assert {r.vm: r.start_s for r in plan.restarts} == {
        vm: t for vm, t in starts.items() if vm != "engine"}


def test_maintenance_under_load_evacuates() -> None:
    sc = load("compute-maintenance-under-load")
    rec, cm, _ = run(sc)
    mig = conform("migrations", rec.frame("migrations"))
    assert sorted(mig["vm"]) == ["app2", "db2", "web2", "web5"]
    assert (mig["outcome"] == "converged").all()
    assert cm.host_state["host2"] == "up"  # activated again at 2700 s
    ev = rec.frame("events")
    assert ev["detail"].str.contains("maintenance: entered").any()


def test_n_plus_one_failure_names_vms_that_would_not_restart() -> None:
    sc = load("compute-n1-fails")
    rec, cm, _ = run(sc)
    rep = ha_reservation(cluster_of(sc), cm.initial_placement)
    assert not rep.ok
    assert rep.stranded["host2"] == ("sap2", "db2")
    assert rep.ram_short_gib == 96
    st_ = states(rec)
    last = st_.sort_values("t_start_s").groupby("vm").last()
    assert last.loc["sap2", "state"] == "down" and last.loc["db2", "state"] == "down"
    assert last.loc["app2", "state"] == "running"
    # the stranded high-priority VMs block the rest for MaxTimeAutoStartBlockedOnPriority
    assert restart_starts(rec)["app2"] == pytest.approx(711.5 + 600)


@pytest.mark.parametrize(("name", "outcome"), [("minimal", "aborted"), ("suspend", "aborted"),
                                               ("postcopy", "post_copy")])
def test_vm_that_cannot_converge(name: str, outcome: str) -> None:
    sc = load(f"compute-no-converge-{name}")
    rec, cm, _ = run(sc)
    row = conform("migrations", rec.frame("migrations")).iloc[0]
    assert row["outcome"] == outcome
    assert cm.placement["hot"] == ("host2" if outcome == "post_copy" else "host1")
