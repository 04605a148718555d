"""The compute model wired into the storage model: one simulation, one set of tables.

Oracles: the compute model's pure plan (:func:`plan_host_loss`) for HA restart times, the
max-min share of a NIC for migration against storage traffic, the port's rule that I/O
comes from the host compute placed the VM on, and Gluster's quorum rules for pauses.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hcisim.model import StorageModel
from hcisim.model.compute.outage import plan_host_loss
from hcisim.model.elaborate import nic_mb_s
from hcisim.model.pingtimer import syn_schedule
from hcisim.observations import Observations, summarize
from hcisim.placement.ha_rules import lease_timeline
from hcisim.placement.inventory import GIB_MB, cluster_of
from hcisim.runner import run_scenario
from hcisim.scenario import Scenario, load_scenario, with_overrides

from .cases import HOSTS, SILENT, clusters, faults

CATALOGUE = Path(__file__).resolve().parents[2] / "scenarios"
DEFAULT = load_scenario()
EPS = 1e-6


_RUNS: dict[str, tuple[StorageModel, Observations]] = {}


def simulated(sc: Scenario) -> tuple[StorageModel, Observations]:
    """The model and its observations, once per scenario in this module."""
    key = sc.model_dump_json()
    if key not in _RUNS:
        m = StorageModel(sc)
        _RUNS[key] = (m, m.run())
    return _RUNS[key]


def catalogue(name: str, **over: Any) -> Scenario:
    return with_overrides(load_scenario(CATALOGUE / f"{name}.yaml"), over)


def intervals(obs: Observations, vm: str) -> list[tuple[str, str, float, float]]:
    st_ = obs["vm_state"]
    g = st_[st_["vm"] == vm].sort_values("t_start_s")
    return list(zip(g["state"], g["host"], g["t_start_s"], g["t_end_s"], strict=True))


def restart_starts(obs: Observations) -> dict[str, float]:
    st_ = obs["vm_state"]
    r = st_[st_["state"] == "restarting"]
    return {str(v): float(t) for v, t in zip(r["vm"], r["t_start_s"], strict=True)}


def events(obs: Observations, kind: str) -> pd.DataFrame:
    ev = obs["events"]
    return ev[ev["kind"] == kind]


# --- host failure: HA restart on the survivors, I/O from the new host ----------------------

def test_power_loss_restarts_ha_vms_on_survivors_after_fencing() -> None:
    sc = with_overrides(DEFAULT, {"claims": []})
    m, obs = simulated(sc)
    cluster = cluster_of(sc)
    plan = plan_host_loss(sc.compute, cluster, m.compute.initial_placement, "host2",
                          "power_loss", 900.0)
    on_host2 = {v for v, h in m.compute.initial_placement.items() if h == "host2"}
    starts = restart_starts(obs)
    assert set(starts) == {v for v in on_host2 if sc.vm(v).ha}  # db2, web2, web5
    fenced = plan.timeline.fenced_at_s
    assert fenced is not None and fenced >= 900 + sc.compute.fencing.vds_connection_timeout_s
    for r in plan.restarts:
        assert r.host is not None and r.host != "host2"
        assert starts[r.vm] == pytest.approx(r.start_s)  # the storage model changes nothing
        assert starts[r.vm] >= fenced - EPS  # never before detection + fencing
    assert [s for s, *_ in intervals(obs, "backup1")] == ["running", "down"]  # not HA
    for vm in sc.vms:  # survivors never leave running
        if vm.name not in on_host2:
            assert [s for s, *_ in intervals(obs, vm.name)] == ["running"], vm.name
    # the failover_pairs table and the n+1 report come with the run
    assert len(obs["failover_pairs"]) == len(sc.vms)
    assert "ha_reservation" in obs.meta and obs.meta["sim_events"] > 0


def test_restarted_vm_does_its_io_from_the_new_host() -> None:
    sc = with_overrides(DEFAULT, {"claims": []})
    m, obs = simulated(sc)
    new = m.compute.placement["db2"]
    assert new != "host2" and m.vm_host["db2"] == new
    (plan,) = [p for p in m.plans.values() if p.disk.vm == "db2"]
    wf = plan.disk.write_frac
    # at the end all three bricks are up: the client on ``new`` sends each write to the two
    # remote bricks, and its own brick costs only its disk
    assert plan.client == new
    assert plan.usage[m.cluster.tx(new)] == pytest.approx(2 * wf)
    assert m.cluster.tx("host2") not in plan.usage or plan.read_brick == "host2"
    io = obs["vm_io"]
    db2 = io[io["vm"] == "db2"].sort_values("t_start_s")
    up = restart_starts(obs)["db2"] + sc.vm("db2").boot_s
    dead = db2[(db2["t_start_s"] >= 900) & (db2["t_end_s"] <= up)]
    assert not dead.empty and (dead["status"] == "stopped").all()
    assert (dead["read_mb_s"] + dead["write_mb_s"] == 0).all()
    after = db2[db2["t_start_s"] >= up]
    assert (after["status"] == "ok").all() and (after["write_mb_s"] > 0).all()


def test_engine_host_failure_restarts_the_engine_first() -> None:
    sc = with_overrides(DEFAULT, {"claims": [], "duration_s": 2400, "faults": [
        {"at_s": 900, "kind": "node_power_loss", "target": "host1"}]})
    m, obs = simulated(sc)
    plan = plan_host_loss(sc.compute, cluster_of(sc), m.compute.initial_placement, "host1",
                          "power_loss", 900.0)
    assert plan.engine is not None
    up = float(events(obs, "engine_up")["t_s"].iloc[0])
    assert up == pytest.approx(plan.engine.up_at_s)
    starts = restart_starts(obs)
    assert starts["engine"] == pytest.approx(plan.engine.start_at_s)
    others = {vm: t for vm, t in starts.items() if vm != "engine"}
    assert others and min(others.values()) >= up - EPS  # nothing restarts before the engine
    assert others == pytest.approx({r.vm: r.start_s for r in plan.restarts if r.host})


def test_lease_expiry_without_power_management() -> None:
    sc = catalogue("compute-host-failure-no-pm")
    r = run_scenario(sc)
    obs = r.observations
    starts = restart_starts(obs)
    f = sc.compute.fencing
    lease = lease_timeline(f.lease_io_timeout_s, 300.0).free_s
    # non-responsive at 300 + 20 + 60 + 4 x 0.5 + 30 = 412 s, before the leases are free
    # for another host (441 s); app1 (medium) waits for db1 (high) to be up
    assert starts == {"db1": 441.0, "app1": 471.0} and min(starts.values()) >= lease
    for vm in ("db1", "app1"):
        state, host, *_ = intervals(obs, vm)[-1]
        assert state == "running" and host in ("host1", "host2")
    for vm in ("legacy", "scratch"):  # no lease / not HA: nobody may restart them
        assert intervals(obs, vm)[-1][0] == "down"
    assert r.passed


# --- storage failure: pause, resume, lease kill, restart elsewhere -------------------------

def longest_reconnect_wait(sc: Scenario) -> float:
    """The longest a client can take to use a brick after its host answers again: the gap
    between a connect's last SYN and the first SYN of the reconnect timer's next try
    (docs/model.md, "Reconnect"), plus the handshake."""
    m = sc.model
    sends, give_up = syn_schedule(m.syn_linear_timeouts)
    next_try = m.reconnect_timer_s * math.ceil(give_up / m.reconnect_timer_s)
    return max(float(np.diff(sends).max()), next_try - sends[-1]) + m.reconnect_delay_s


def test_storage_loss_pauses_then_kills_a_leased_ha_vm_and_restarts_it() -> None:
    sc = catalogue("storage-nic-loss", **{"vms[5].ha": True})  # app3 on host3, with a lease
    _, obs = simulated(sc)
    t_fault, t_back = 600.0, 900.0
    ping = sc.volumes[0].options.ping_timeout_s
    app3 = intervals(obs, "app3")
    states = [s for s, *_ in app3]
    # killed by host3's sanlock, then down until another host can acquire its lease
    assert states == ["running", "paused", "down", "restarting", "running"]
    paused_at, boot_at = app3[1][2], app3[3][2]
    assert t_fault + ping - EPS <= paused_at <= t_fault + 4 * ping + EPS  # quorum lost
    kills = events(obs, "vm_down")
    kills = kills[kills["target"] == "app3"]
    lease = lease_timeline(sc.compute.fencing.lease_io_timeout_s, t_fault)
    # sanlock's kill (8 x io_timeout after host3's last renewal) comes before vdsm's
    assert lease.holders_killed_s < paused_at + sc.compute.fencing.kill_paused_s
    assert list(kills["t_s"]) == [pytest.approx(lease.holders_killed_s)]
    assert "lease" in str(kills["detail"].iloc[0])
    # rerun on a host whose storage works (host3's does not), once the lease is free
    assert boot_at == pytest.approx(lease.free_s) and app3[3][1] != "host3"
    log3 = intervals(obs, "log3")  # not HA: paused until the storage comes back
    assert [s for s, *_ in log3] == ["running", "paused", "running"]
    # resumed when its client uses the bricks again: after the repair, within the longest
    # wait a reconnecting client can have (its connect's SYNs, then the next timer try)
    assert log3[1][2] <= t_back < log3[2][2] <= t_back + longest_reconnect_wait(sc)
    io = obs["vm_io"]
    moved = io[(io["vm"] == "app3") & (io["t_start_s"] >= boot_at + sc.vm("app3").boot_s)]
    assert not moved.empty and (moved["status"] == "ok").all()
    assert (moved["read_mb_s"] > 0).all()  # reads during host3's outage: from the new host


# --- maintenance and migration -------------------------------------------------------------

def test_maintenance_under_load_migrates_two_at_a_time_then_stops_bricks() -> None:
    sc = catalogue("compute-maintenance-under-load")
    _, obs = simulated(sc)
    mig = obs["migrations"]
    assert sorted(mig["vm"]) == ["app2", "db2", "web2", "web5"]
    assert (mig["outcome"] == "converged").all() and set(mig["src_host"]) == {"host2"}
    edges = sorted([(t, 1) for t in mig["t_start_s"]] + [(t, -1) for t in mig["t_end_s"]])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak == sc.compute.migration.max_outgoing
    down = events(obs, "brick_down")
    assert list(down["target"]) == ["data/host2"]
    assert float(down["t_s"].iloc[0]) == pytest.approx(float(mig["t_end_s"].max()))
    s = summarize(obs, [v.name for v in sc.vms], ["data"])
    assert all(v["max_io_stall_s"] == 0 and v["downtime_s"] == 0 for v in s["vms"].values())
    heal = events(obs, "heal_start")
    up = events(obs, "brick_up")
    (back,) = up[up["t_s"] >= 2700]["t_s"]  # activated at 2700: the clients' next try
    assert 2700 < back <= 2700 + sc.model.reconnect_timer_s + sc.model.reconnect_delay_s
    assert list(heal["t_s"]) == [pytest.approx(back + sc.model.heal_noticed_s)]
    for vm, dst in zip(mig["vm"], mig["dst_host"], strict=True):
        assert intervals(obs, str(vm))[-1][:2] == ("running", dst)


def shared_nic_scenario(separate: bool) -> Scenario:
    """A 1 GbE storage NIC, a heavy writer on host1, and a VM migrating host1 -> host2 over
    the storage NIC (``separate`` False) or its own 1 GbE migration NIC."""
    nics = [{"name": "mgmt0", "gbps": 1, "networks": ["management"]},
            {"name": "stor0", "gbps": 1, "networks": ["storage"] if separate
             else ["storage", "migration"]}]
    if separate:
        nics.append({"name": "mig0", "gbps": 1, "networks": ["migration"]})
    return Scenario.model_validate({
        "name": "shared-nic", "seed": 1, "duration_s": 600,
        "hosts": [{"name": h, "disks": [{"bandwidth_mb_s": 2000}], "nics": nics}
                  for h in HOSTS],
        "volumes": [{"name": "data", "type": "replica3", "bricks": [{"host": h} for h in HOSTS]}],
        "vms": [{"name": "writer", "host": "host1", "disks": [{"volume": "data", "size_gb": 10,
                 "io": {"read_pct": 0, "block_kib": 1024, "mb_s": 500, "queue_depth": 32,
                        "random": False}}]},
                {"name": "mover", "host": "host1", "ram_gib": 8}],
        "operations": [{"at_s": 100, "kind": "migrate", "vm": "mover", "host": "host2"}]})


@pytest.mark.parametrize("separate", [False, True])
def test_migration_competes_with_storage_only_on_a_shared_nic(separate: bool) -> None:
    sc = shared_nic_scenario(separate)
    _, obs = simulated(sc)
    (row,) = obs["migrations"].to_dict("records")
    assert row["outcome"] == "converged"
    t0, t1 = float(row["t_start_s"]), float(row["t_end_s"])
    io = obs["vm_io"]
    w = io[io["vm"] == "writer"]
    nic = nic_mb_s(1)

    def writes_at(t: float) -> list[float]:
        return list(w[(w["t_start_s"] <= t) & (w["t_end_s"] > t)]["write_mb_s"])

    assert writes_at(t0 - 1) == [pytest.approx(nic / 2)]  # two remote bricks
    # shared: max-min on host1's tx, the writer takes 2 units per MB/s, the migration 1:
    # both rise together until 2x + x = NIC
    expected = nic / 3 if not separate else nic / 2
    for t in (t0 + 1, (t0 + t1) / 2, t1 - 1):
        assert writes_at(t) == [pytest.approx(expected)]
    assert writes_at(t1 + 1) == [pytest.approx(nic / 2)]
    rate = min(expected if not separate else nic, sc.compute.migration.max_bandwidth_mb_s)
    assert t1 - t0 >= sc.vm("mover").ram_gib * GIB_MB / rate - EPS  # RAM / bandwidth
    assert intervals(obs, "mover")[-1][:2] == ("running", "host2")


def test_unplaced_vms_are_placed_by_the_scheduler_before_io_starts() -> None:
    over: dict[str, Any] = {"claims": [], "faults": []}
    over.update({f"vms[{i}].host": None for i in range(len(DEFAULT.vms))})
    sc = with_overrides(DEFAULT, over)
    m, obs = simulated(sc)
    placed = m.compute.initial_placement
    assert set(placed) == {v.name for v in sc.vms} and len(set(placed.values())) == 3
    io = obs["vm_io"]
    first = io[io["t_start_s"] == 0.0]
    assert set(first["vm"]) == {v.name for v in sc.vms if v.disks}
    assert (first["status"] == "ok").all()  # flows built from t = 0 on the chosen hosts
    for vm, host in placed.items():
        assert intervals(obs, vm) == [("running", host, 0.0, sc.duration_s)]
        assert m.vm_host[vm] == host


# --- whole-run properties ------------------------------------------------------------------

def test_same_seed_same_tables_with_compute() -> None:
    sc = with_overrides(DEFAULT, {"claims": [], "operations": [
        {"at_s": 200, "kind": "migrate", "vm": "web1"},
        {"at_s": 300, "kind": "maintenance", "host": "host3"},
        {"at_s": 1500, "kind": "activate", "host": "host3"}]})
    a, b = StorageModel(sc).run(), StorageModel(sc).run()
    assert not a["migrations"].empty and not a["failover_pairs"].empty
    for name in a.tables:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)


@st.composite
def compute_scenarios(draw: st.DrawFn) -> Scenario:
    """Random cluster and workload, random HA/lease flags, one fault (a silent loss, a
    management cut or a brick crash) and maybe a maintenance of another host."""
    d = draw(clusters(n_vms=(2, 6)))
    for vm in d["vms"]:
        vm["ha"] = draw(st.booleans())
        vm["lease"] = draw(st.booleans())
        vm["ram_gib"] = draw(st.sampled_from([2, 8, 16]))
    f = draw(faults((*SILENT, "brick_crash"), min_duration=30.0))
    if f["kind"] in ("nic_loss", "partition") and draw(st.booleans()):
        f["network"] = "management"
    d["faults"] = [f]
    d["duration_s"] = 900.0
    for i, h in enumerate(HOSTS):
        d["hosts"][i]["power_management"] = draw(st.booleans())
        d["hosts"][i]["name"] = h
    if draw(st.booleans()):
        other = draw(st.sampled_from([h for h in HOSTS if h != f["target"]]))
        d["operations"] = [{"at_s": draw(st.floats(0, 400)), "kind": "maintenance",
                            "host": other},
                           {"at_s": 700.0, "kind": "activate", "host": other}]
    return Scenario.model_validate(d)


def _state_at(st_: pd.DataFrame, times: list[float]) -> list[str]:
    out = []
    for t in times:
        row = st_[(st_["t_start_s"] <= t) & (st_["t_end_s"] > t)]
        assert len(row) == 1, t
        out.append(str(row["state"].iloc[0]))
    return out


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(compute_scenarios())
def test_io_only_while_running_and_states_cover_the_run(sc: Scenario) -> None:
    """Every VM has contiguous vm_state intervals over the whole run; a VM moves data only
    while it runs (or migrates); one fault never restarts a VM of another host."""
    m, obs = simulated(sc)
    st_all = obs["vm_state"]
    io = obs["vm_io"]
    target = sc.faults[0].target
    for vm in sc.vms:
        st_ = st_all[st_all["vm"] == vm.name].sort_values("t_start_s")
        assert float(st_["t_start_s"].iloc[0]) == 0.0
        assert float(st_["t_end_s"].iloc[-1]) == sc.duration_s
        assert (st_["t_start_s"].to_numpy()[1:] == st_["t_end_s"].to_numpy()[:-1]).all()
        moving = io[(io["vm"] == vm.name) & (io["read_mb_s"] + io["write_mb_s"] > 0)]
        mids = [(a + b) / 2 for a, b in zip(moving["t_start_s"], moving["t_end_s"],
                                             strict=True)]
        assert set(_state_at(st_, mids)) <= {"running", "migrating"}, vm.name
        if not sc.operations and m.compute.initial_placement.get(vm.name) != target:
            # the other two hosts keep quorum: their VMs never stop
            assert set(st_["state"]) == {"running"}, vm.name
