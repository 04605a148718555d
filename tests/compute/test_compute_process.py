"""The compute model in simulated time, against the pure rules and with a scripted storage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.model.compute import ComputeModel, SteadyStorage
from hcisim.model.compute.migration import PiecewiseBandwidth, migrate
from hcisim.model.compute.outage import plan_host_loss
from hcisim.observations import Recorder, conform
from hcisim.scenario import Scenario, load_scenario, with_overrides
from tests.compute.fakes import ScriptedStorage

DEFAULT = load_scenario()


def run(sc: Scenario, storage: Callable[[simpy.Environment], Any] = SteadyStorage,
        script: Callable[[simpy.Environment, ComputeModel], Any] | None = None
        ) -> tuple[Recorder, ComputeModel, Any]:
    env = simpy.Environment()
    rec = Recorder()
    port = storage(env)
    cm = ComputeModel(env, sc, rec, port)
    cm.start()
    if script is not None:
        env.process(script(env, cm))
    env.run(until=sc.duration_s)
    cm.finish(sc.duration_s)
    return rec, cm, port


def states(rec: Recorder) -> pd.DataFrame:
    return conform("vm_state", rec.frame("vm_state"))


def restart_starts(rec: Recorder) -> dict[str, float]:
    st_ = states(rec)
    r = st_[st_["state"] == "restarting"]
    return {str(v): float(t) for v, t in zip(r["vm"], r["t_start_s"], strict=True)}


def test_intervals_cover_the_run_for_every_vm() -> None:
    rec, _, _ = run(DEFAULT)
    st_ = states(rec)
    for vm, g in st_.groupby("vm"):
        g = g.sort_values("t_start_s")
        assert g["t_start_s"].iloc[0] == 0.0 and g["t_end_s"].iloc[-1] == DEFAULT.duration_s
        assert (g["t_start_s"].to_numpy()[1:] == g["t_end_s"].to_numpy()[:-1]).all(), vm
    assert len(conform("failover_pairs", rec.frame("failover_pairs"))) == len(DEFAULT.vms)


scenario_draws = st.fixed_dictionaries({
    "failed": st.sampled_from(["host1", "host2", "host3"]),
    "engine_on": st.sampled_from(["host1", "host2", "host3"]),
    "pm": st.lists(st.booleans(), min_size=3, max_size=3),
    "leases": st.lists(st.booleans(), min_size=13, max_size=13),
    "loss": st.sampled_from(["node_power_loss", "node_hang"]),
    "duration": st.sampled_from([None, 200.0]),
})


def drawn_scenario(d: dict[str, Any]) -> Scenario:
    over: dict[str, Any] = {"duration_s": 4000, "faults": [
        {"at_s": 900, "kind": d["loss"], "target": d["failed"], "duration_s": d["duration"]}],
        "vms[0].host": d["engine_on"]}
    for i, pm in enumerate(d["pm"]):
        over[f"hosts[{i}].power_management"] = pm
    for i, lease in enumerate(d["leases"]):
        over[f"vms[{i}].lease"] = lease
    return with_overrides(DEFAULT, over)


@settings(max_examples=30, deadline=None)
@given(scenario_draws)
def test_single_host_failure_properties(d: dict[str, Any]) -> None:
    sc = drawn_scenario(d)
    rec, cm, _ = run(sc)
    st_ = states(rec)
    failed = d["failed"]
    on_failed = {v for v, h in cm.initial_placement.items() if h == failed}
    # no VM on a surviving host ever restarts, stops or pauses because of one host failure
    survivors = st_[~st_["vm"].isin(on_failed)]
    assert set(survivors["state"]) <= {"running"}
    ev = rec.frame("events")
    ups = ev[ev["kind"] == "engine_up"]["t_s"]
    starts = restart_starts(rec)
    plan = plan_host_loss(sc.compute, cm.cluster, cm.initial_placement, failed,
                          "hang" if d["loss"] == "node_hang" else "power_loss", 900.0)
    for vm, t in starts.items():
        assert vm in on_failed
        if vm == "engine":
            continue
        # HA restart never before detection + fencing, or the lease expiry, or the failed
        # host coming back (it then reports its VMs down)
        ready = plan.timeline.restart_ready_s(cm.cluster.vm(vm))
        back = 900.0 + d["duration"] if d["duration"] is not None else None
        if ready is None and back is None:
            pytest.fail(f"{vm} restarted without fencing, lease or the host returning")
        assert t >= min(x for x in (ready, back) if x is not None) - 1e-9
        if d["engine_on"] == failed:  # engine first
            assert not ups.empty and t >= float(ups.iloc[0]) - 1e-9
    if d["duration"] is None:  # the SimPy run and the pure plan agree on every restart
        for r in plan.restarts:
            if r.host is not None:
                assert starts[r.vm] == pytest.approx(r.start_s), r.vm
        if plan.engine is not None:
            assert starts["engine"] == pytest.approx(plan.engine.start_at_s)
            assert float(ups.iloc[0]) == pytest.approx(plan.engine.up_at_s)
        for vm in plan.stays_down:
            assert vm not in starts


def test_storage_pause_resume_and_lease_kill() -> None:
    sc = with_overrides(DEFAULT, {"faults": [], "duration_s": 1000})

    def script(env: simpy.Environment, cm: ComputeModel) -> Any:
        yield env.timeout(100)
        port = cm.storage
        assert isinstance(port, ScriptedStorage)
        for vm in ("db1", "app2", "db3"):
            cm.vm_storage_changed(vm, False)
        port.broken["db3"] = 400.0
        yield env.timeout(50)
        cm.vm_storage_changed("db1", True)  # back before kill_paused_s: resumed
        yield env.timeout(250)
        cm.vm_storage_changed("app2", True)
        cm.vm_storage_changed("db3", True)

    rec, _, port = run(sc, ScriptedStorage, script)
    st_ = states(rec)

    def iv(vm: str) -> list[tuple[str, float, float]]:
        g = st_[st_["vm"] == vm].sort_values("t_start_s")
        return list(zip(g["state"], g["t_start_s"], g["t_end_s"], strict=True))

    assert iv("db1") == [("running", 0, 100), ("paused", 100, 150), ("running", 150, 1000)]
    assert iv("app2") == [("running", 0, 100), ("paused", 100, 400), ("running", 400, 1000)]
    # db3 holds a lease: killed at 100 + 80; its storage is unusable until 400, so restarts
    # fail and are retried every 30 s: the first retry at or after 400 s is 180 + 8 x 30 = 420
    db3 = iv("db3")
    assert db3[1][:2] == ("paused", 100) and db3[2][0] == "down" and db3[2][1] == 180
    assert ("restarting", 420.0, 450.0) in db3 and db3[-1][0] == "running"
    assert (100, "vm_io_paused", ("db1", True)) in port.calls


def test_maintenance_evacuates_with_slot_limits_and_stops_bricks() -> None:
    # db1 keeps 4 GiB hot: with all its 32 GiB re-dirtied at 20 MB/s, the passes shrink so
    # slowly that vdsm's progress rule (no new low in 240 s) aborts it, see the next test
    sc = with_overrides(DEFAULT, {"faults": [], "duration_s": 3000, "vms[1].working_set_gib": 4,
                                  "operations": [
                                      {"at_s": 100, "kind": "maintenance", "host": "host1"},
                                      {"at_s": 2500, "kind": "activate", "host": "host1"}]})
    rec, cm, port = run(sc, ScriptedStorage)
    mig = conform("migrations", rec.frame("migrations"))
    assert set(mig["vm"]) == {v for v, h in cm.initial_placement.items() if h == "host1"}
    assert (mig["outcome"] != "aborted").all()
    assert not [v for v, h in cm.placement.items() if h == "host1"]
    times = sorted([(t, 1) for t in mig["t_start_s"]] + [(t, -1) for t in mig["t_end_s"]],
                   key=lambda x: (x[0], x[1]))
    running = peak = 0
    for _, step in times:
        running += step
        peak = max(peak, running)
    assert peak == sc.compute.migration.max_outgoing
    enter = [c for c in port.calls if c[1] == "host_maintenance"]
    assert enter[0][2] == ("host1", True) and enter[0][0] == pytest.approx(mig["t_end_s"].max())
    assert enter[1] == (2500, "host_maintenance", ("host1", False))
    for vm, src, dst, t0, t1, rounds in zip(mig["vm"], mig["src_host"], mig["dst_host"],
                                            mig["t_start_s"], mig["t_end_s"], mig["rounds"],
                                            strict=True):
        # each equals the pure algorithm: capped while the VM runs, the link for the rest
        link = cm.migrations.link_mb_s(str(src), str(dst))
        pure = migrate(cm.migrations.memory(str(vm)), sc.compute.migration,
                       PiecewiseBandwidth((0.0,), (link,)), float(t0))
        assert float(t1) == pytest.approx(pure.t_end_s)
        assert int(rounds) == pure.rounds


def test_a_large_vm_dirtying_all_its_ram_is_stopped_by_vdsms_progress_rule() -> None:
    """db1: 32 GiB, every page re-dirtied at 20 MB/s, 52 MiB/s: passes of 631, 231, 85... s.
    vdsm samples the remaining data every 10 s; a later pass goes below the lowest sample of
    the earlier ones only in its last seconds, so 240 s pass without a new low."""
    sc = with_overrides(DEFAULT, {"faults": [], "duration_s": 3000, "operations": [
        {"at_s": 100, "kind": "migrate", "vm": "db1", "host": "host3"}]})
    rec, cm, _ = run(sc, ScriptedStorage)
    row = conform("migrations", rec.frame("migrations")).iloc[0]
    assert row["outcome"] == "aborted" and cm.placement["db1"] == "host1"
    assert int(row["rounds"]) >= 3 and float(row["t_end_s"]) > 100 + 631 + 231
    ev = rec.frame("events")
    assert ev["detail"].str.contains("no progress within progress_timeout_s").any()


def test_migration_follows_flow_rate_changes() -> None:
    sc = with_overrides(DEFAULT, {"faults": [], "duration_s": 3000, "operations": [
        {"at_s": 10, "kind": "migrate", "vm": "web1", "host": "host3"}]})
    steps = ((0.0, 40.0), (100.0, 10.0), (400.0, 50.0))
    rec, cm, _ = run(sc, lambda env: ScriptedStorage(env, steps))
    row = conform("migrations", rec.frame("migrations")).iloc[0]
    pure = migrate(cm.migrations.memory("web1"), sc.compute.migration,
                   PiecewiseBandwidth(tuple(t for t, _ in steps), tuple(r for _, r in steps)),
                   10.0)
    assert float(row["t_end_s"]) == pytest.approx(pure.t_end_s)
    assert row["outcome"] == pure.outcome and cm.placement["web1"] == (
        "host3" if pure.moved else "host1")


def test_migrate_to_a_full_host_is_rejected() -> None:
    sc = with_overrides(DEFAULT, {"faults": [], "duration_s": 100, "hosts[2].ram_gib": 80,
                                  "operations": [{"at_s": 10, "kind": "migrate", "vm": "db1",
                                                  "host": "host3"}]})
    rec, _, _ = run(sc)
    ev = rec.frame("events")
    assert ev[ev["kind"] == "operation"]["detail"].str.contains("rejected: memory").any()
    assert rec.frame("migrations").empty


def test_engine_moves_when_its_host_loses_the_management_network() -> None:
    sc = with_overrides(DEFAULT, {"hosts[0].power_management": False, "faults": [
        {"at_s": 500, "kind": "nic_loss", "target": "host1", "network": "management"}]})
    rec, cm, _ = run(sc)
    ev = rec.frame("events")
    down = ev[ev["kind"] == "engine_down"]
    assert float(down["t_s"].iloc[0]) == 500.0  # next agent tick: host1 lost 1600 points
    assert cm.placement["engine"] != "host1"
    st_ = states(rec)
    others = st_[(st_["vm"] != "engine")]
    assert set(others["state"]) == {"running"}  # no PM: the other VMs keep running


def test_stranded_restart_waits_for_the_next_retry_after_room_appears() -> None:
    """host2's HA VMs fit nowhere (the survivors are full); host2 comes back at 1900 s. The
    restart happens at the first engine retry time (30 s x 10, then every 1800 s, counted
    from the first failed try) at or after the host's return, as trying at every retry
    would: the model waits for a change instead of polling, without changing the times."""
    from hcisim.model.compute.ha import retry_times

    sc = with_overrides(DEFAULT, {"duration_s": 6000, "hosts[0].ram_gib": 80,
                                  "hosts[2].ram_gib": 64, "faults": [
                                      {"at_s": 900, "kind": "node_power_loss",
                                       "target": "host2", "duration_s": 1000}]})
    rec, cm, _ = run(sc)
    plan = plan_host_loss(sc.compute, cm.cluster, cm.initial_placement, "host2",
                          "power_loss", 900.0)
    first = plan.timeline.fenced_at_s
    assert first is not None and all(r.host is None for r in plan.restarts)
    retry = next(t for t in retry_times(sc.compute.ha_restart, first, sc.duration_s)
                 if t >= 1900)
    assert retry == first + 300 + 1800  # past the ten short retries
    starts = restart_starts(rec)
    assert starts["db2"] == pytest.approx(retry)  # high priority first, on host2
    assert {cm.placement[v] for v in ("db2", "web2", "web5")} == {"host2"}
    ev = rec.frame("events")
    failed = ev[(ev["kind"] == "vm_down") & (ev["target"] == "db2")
                & ev["detail"].str.contains("fits nowhere")]
    assert len(failed) == 1  # one event for the failure, not one per try
