"""A power-management fence frees no VM lease (sanlock ``paxos_lease_acquire``): a leased HA
VM of a fenced host runs elsewhere only once sanlock may give its lease to another host,
host_dead after the fenced host's last renewal, as the lab's sanlock does. The rule is the
shared :func:`hcisim.placement.ha_rules.lease_timeline`; here in the pure timeline, the
restart plan, and the SimPy model on the lab-ha scenarios with leases switched on."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hcisim.model import StorageModel
from hcisim.model.compute.ha import host_failure_timeline, restart_schedule
from hcisim.model.compute.outage import plan_host_loss
from hcisim.observations import Observations
from hcisim.placement import initial_placement
from hcisim.placement.ha_rules import lease_host_dead_s, lease_timeline
from hcisim.placement.inventory import VmSpec, cluster_of
from hcisim.scenario import Scenario, load_scenario, with_overrides
from hcisim.scenario.compute import Fencing, HaRestart
from tests.compute.test_compute_process import drawn_scenario, run, scenario_draws, states

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
LEASED = {"vms[0].lease": True, "vms[1].lease": True}  # db1, app1
OFF = {"compute.fencing.skip_fencing_if_gluster_bricks_up": False,
       "compute.fencing.skip_fencing_if_gluster_quorum_not_met": False}


def lab_ha(name: str, **over: object) -> Scenario:
    return with_overrides(load_scenario(SCENARIOS / f"lab-ha-{name}.yaml"), dict(over))


def events(obs: Observations, target: str) -> dict[str, float]:
    """First time of each event kind of ``target``."""
    ev = obs["events"]
    ev = ev[ev["target"] == target].sort_values("t_s")
    out: dict[str, float] = {}
    for t, k in zip(ev["t_s"], ev["kind"], strict=True):
        out.setdefault(str(k), float(t))
    return out


def vm_rows(obs: Observations, vm: str) -> list[tuple[float, str, str, str]]:
    st_ = obs["vm_state"]
    rows = st_[st_["vm"] == vm].sort_values("t_start_s")
    return [(float(t), str(s), str(h), str(r)) for t, s, h, r in
            zip(rows["t_start_s"], rows["state"], rows["host"], rows["reason"], strict=True)]


# --- the pure rule ------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1e5), st.sampled_from(["power_loss", "hang", "management_cut"]),
       st.booleans(), st.integers(1, 30), st.integers(0, 40), st.floats(0, 2e5))
def test_a_leased_vm_never_runs_elsewhere_before_sanlock_frees_its_lease(
        t: float, loss: str, pm: bool, io: int, n: int, engine_from: float) -> None:
    f = Fencing(lease_io_timeout_s=io)
    tl = host_failure_timeline(f, "h", loss, t, power_management=pm,  # type: ignore[arg-type]
                               running_vms=n, spm=False, engine_up_from_s=engine_from)
    leased = tl.restart_ready_s(VmSpec("v", ha=True, lease=True))
    plain = tl.restart_ready_s(VmSpec("p", ha=True, lease=False))
    if leased is None:
        # the host may still renew (a management cut, not fenced): nobody may take the lease
        assert loss == "management_cut" and not pm
        return
    # the host renews until it fails, or (its storage still working) until the fence
    stopped = t if loss != "management_cut" else tl.fenced_at_s
    assert stopped is not None
    assert leased >= lease_timeline(io, stopped).free_s - 1e-9
    assert leased >= stopped + lease_host_dead_s(io)  # sanlock's safety, whatever the phase
    if tl.fenced_at_s is not None:  # the engine starts at the fence, the lease may hold it
        assert plain == tl.fenced_at_s
        assert leased == max(tl.fenced_at_s, lease_timeline(io, stopped).free_s)


def test_fence_before_host_dead_leaves_the_lease_deciding() -> None:
    # oVirt's defaults: a power loss at 0 is fenced at 20 + 60 + 30 = 110 s; host_dead 140 s
    # after the last renewal (~10 s before the loss), seen ~10 s late, +1 s: free at 141 s
    tl = host_failure_timeline(Fencing(), "h", "power_loss", 0.0, power_management=True,
                               running_vms=0, spm=False)
    assert tl.fenced_at_s == 110.0 and tl.lease_expired_at_s == 141.0
    assert tl.restart_begins_s == 110.0
    assert tl.restart_ready_s(VmSpec("v", ha=True, lease=True)) == 141.0
    assert tl.restart_ready_s(VmSpec("v", ha=True, lease=False)) == 110.0
    # a management cut: the host renews until the fence cuts its power
    cut = host_failure_timeline(Fencing(), "h", "management_cut", 0.0, power_management=True,
                                running_vms=0, spm=False)
    assert cut.lease_expired_at_s == 110.0 + 141.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["high", "medium", "low"]), st.booleans(),
                          st.floats(0, 300), st.floats(1, 200)), min_size=1, max_size=6),
       st.floats(0, 1e4), st.floats(1, 1000))
def test_planned_restarts_respect_leases_and_priorities(
        vms: list[tuple[str, bool, float, float]], begins: float, block: float) -> None:
    specs = [VmSpec(f"v{i}", ha=True, priority=p, lease=lease, boot_s=boot)  # type: ignore[arg-type]
             for i, (p, lease, _, boot) in enumerate(vms)]
    free = {s.name: begins + d for s, (_, lease, d, _) in zip(specs, vms, strict=True) if lease}
    policy = HaRestart(priority_block_max_s=block)
    plan = {r.vm: r for r in restart_schedule([(s, "h") for s in specs], begins, policy,
                                              not_before_s=free)}
    for s in specs:
        r = plan[s.name]
        assert r.start_s >= max(begins, free.get(s.name, -math.inf)) - 1e-9
        assert r.up_s == pytest.approx(r.start_s + s.boot_s)
        for hi in specs:  # a lower priority waits for the higher ones, at most ``block``
            if hi.rank < s.rank:
                assert r.start_s >= min(plan[hi.name].up_s, begins + block) - 1e-9


# --- the SimPy model on the lab-ha scenarios ----------------------------------------------

def test_power_loss_with_leases_restarts_at_the_lease_not_at_the_fence() -> None:
    sc = lab_ha("power-loss", **LEASED)
    io = sc.compute.fencing.lease_io_timeout_s
    cut = sc.faults[0].at_s
    free = lease_timeline(io, cut).free_s  # 60 + 141 = 201 s with io_timeout 10 s
    obs = StorageModel(sc).run()
    host3 = events(obs, "host3")
    fenced = host3["host_fenced"]
    assert fenced == pytest.approx(cut + 12.5) and fenced < free  # the same fence as before
    db1, app1 = events(obs, "db1"), events(obs, "app1")
    assert db1["lease_acquired"] == pytest.approx(free)
    assert db1["vm_started"] == pytest.approx(free + sc.vm("db1").boot_s)
    # app1 (medium) waits for db1 (high) to be up, but at most priority_block_max_s (120 s
    # here) from the fence: 192.5 s, before db1 is up (216 s); then for its own lease (201 s)
    block_until = min(db1["vm_started"], fenced + sc.compute.ha_restart.priority_block_max_s)
    assert block_until < free
    assert app1["lease_acquired"] == pytest.approx(free)
    assert app1["vm_started"] == pytest.approx(free + sc.vm("app1").boot_s)
    # from the fence to the lease the start waits in sanlock's acquire: down, on no host
    rows = vm_rows(obs, "db1")
    assert [s for _, s, _, _ in rows] == ["running", "down", "down", "restarting", "running"]
    waiting = rows[2]
    assert waiting[0] == pytest.approx(fenced) and waiting[3] == "start waits for its VM lease"
    assert rows[3][0] == pytest.approx(free) and rows[3][2] != "host3"
    # the pure plan (``hcisim failover``) says the same
    plan = plan_host_loss(sc.compute, cluster_of(sc),
                          {v: h for v, h in initial_placement(sc).items() if h is not None},
                          "host3", "power_loss", cut)
    ups = {r.vm: r.up_s for r in plan.restarts}
    assert ups == pytest.approx({"db1": db1["vm_started"], "app1": app1["vm_started"]})


def test_power_loss_without_leases_is_unchanged() -> None:
    obs = StorageModel(lab_ha("power-loss")).run()  # the scenario as the lab runs it
    fenced = events(obs, "host3")["host_fenced"]
    assert events(obs, "db1")["vm_started"] == pytest.approx(fenced + 15.0)
    assert "lease_acquired" not in events(obs, "db1")


def test_management_cut_fence_stops_renewals_at_the_fence() -> None:
    sc = lab_ha("mgmt-cut", **OFF, **LEASED)  # oVirt's default fencing policy: fenced
    io = sc.compute.fencing.lease_io_timeout_s
    obs = StorageModel(sc).run()
    fenced = events(obs, "host3")["host_fenced"]
    free = lease_timeline(io, fenced).free_s  # host3 renewed until its power went
    db1 = events(obs, "db1")
    assert db1["vm_down"] == pytest.approx(fenced)  # the fence killed it on host3
    assert db1["lease_acquired"] == pytest.approx(free)
    assert free == pytest.approx(fenced + 8 * io + 60 + 1)
    assert db1["vm_started"] == pytest.approx(free + sc.vm("db1").boot_s)
    # never two copies: nothing runs db1 between its kill on host3 and the lease
    rows = vm_rows(obs, "db1")
    running = [(t, h) for t, s, h, _ in rows if s in ("running", "restarting", "paused")]
    assert running[0][1] == "host3" and running[1][0] == pytest.approx(free)


@settings(max_examples=30, deadline=None)
@given(scenario_draws)
@example({"failed": "host2", "engine_on": "host1", "pm": [True] * 3, "leases": [True] * 13,
          "loss": "node_power_loss", "duration": None})  # fenced at 1012 s, lease free 1041 s
def test_no_leased_vm_starts_before_its_lease_is_free(d: dict[str, Any]) -> None:
    sc = drawn_scenario(d)
    rec, cm, _ = run(sc)
    io = sc.compute.fencing.lease_io_timeout_s
    fault = sc.faults[0]
    free = lease_timeline(io, fault.at_s).free_s
    back = math.inf if fault.end_s is None else fault.end_s
    st_ = states(rec)
    victims = {v for v, h in cm.initial_placement.items() if h == d["failed"]}
    for vm in victims:
        spec = cm.cluster.vm(vm)
        if spec.hosted_engine or not spec.holds_lease:
            continue
        starts = st_[(st_["vm"] == vm) & (st_["state"] == "restarting")]["t_start_s"]
        for t in starts:  # a fence or not, the lease decides (or the host's return)
            assert float(t) >= min(free, back) - 1e-9, (vm, float(t), free)
