"""zero_downtime and vm_restart_within on hand-built observations."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.claims import evaluate
from hcisim.observations import Recorder
from tests.claims.cases import build, healthy_run, io, power_loss, scenario, state

ZD = {"kind": "zero_downtime", "max_stall_s": 45}


def test_survivors_with_a_short_stall_pass_and_the_failed_hosts_vm_is_not_judged() -> None:
    (v,) = evaluate(scenario([ZD]), build(healthy_run()))
    assert v.verdict == "pass"
    assert v.measured == pytest.approx(20.0)  # the ping-timeout stall of a and c
    assert v.evidence[0]["vm"] in {"a", "c"}
    assert {"note": "1 VM(s) on failed hosts not judged", "vms": ["b"]} in v.evidence


def test_a_stall_longer_than_the_tolerance_fails_and_names_the_vm() -> None:
    rec = healthy_run()
    io(rec, "c", 300, 360, "error")
    (v,) = evaluate(scenario([ZD]), build(rec))
    assert v.verdict == "fail" and v.measured == pytest.approx(60.0)
    assert v.evidence[0] == {"vm": "c", "volume": "data", "problem": "io_stall",
                             "stall_s": 60.0, "at_s": 300.0, "host": "host3"}


def test_a_survivor_that_goes_down_fails_even_without_a_stall() -> None:
    rec = Recorder()
    power_loss(rec)
    state(rec, "a", "host1", 0, 200)
    state(rec, "a", "host1", 200, 260, "down", "killed")
    state(rec, "a", "host1", 260, 400)
    (v,) = evaluate(scenario([{**ZD, "vms": ["a"]}]), build(rec))
    assert v.verdict == "fail" and v.measured == 0.0
    assert v.evidence[0]["problem"] == "down" and v.evidence[0]["for_s"] == 60.0


@pytest.mark.parametrize(("paused_s", "allowed", "verdict"),
                         [(5.0, 10.0, "pass"), (10.0, 10.0, "pass"), (15.0, 10.0, "fail")])
def test_pausing_is_allowed_up_to_max_paused(paused_s: float, allowed: float,
                                             verdict: str) -> None:
    rec = Recorder()
    state(rec, "c", "host3", 0, 100)
    state(rec, "c", "host3", 100, 100 + paused_s, "paused", "storage I/O error")
    state(rec, "c", "host3", 100 + paused_s, 400)
    claim = {**ZD, "vms": ["c"], "max_paused_s": allowed}
    (v,) = evaluate(scenario([claim], faults=[]), build(rec))
    assert v.verdict == verdict


def test_migrating_counts_as_running() -> None:
    rec = Recorder()
    state(rec, "a", "host1", 0, 100)
    state(rec, "a", "host1", 100, 130, "migrating")
    state(rec, "a", "host3", 130, 400)
    (v,) = evaluate(scenario([{**ZD, "vms": ["a"]}], faults=[]), build(rec))
    assert v.verdict == "pass"


def test_every_claimed_vm_on_the_failed_host_is_not_applicable() -> None:
    (v,) = evaluate(scenario([{**ZD, "vms": ["b"]}]), build(healthy_run()))
    assert v.verdict == "n/a"


def test_scheduler_placed_vm_is_judged_by_where_it_ran_not_by_the_scenario() -> None:
    # c has no fixed host in the scenario; the run put it on host2, which failed.
    sc = scenario([{**ZD, "vms": ["c"]}])
    rec = Recorder()
    power_loss(rec)
    state(rec, "c", "host2", 0, 100)
    state(rec, "c", "host2", 100, 400, "down")
    (v,) = evaluate(sc, build(rec))
    assert v.verdict == "n/a"


@settings(max_examples=40, deadline=None)
@given(stalls=st.lists(st.floats(0, 100), min_size=2, max_size=2), limit=st.floats(0, 100))
def test_verdict_is_worst_survivor_stall_against_the_limit(stalls: list[float],
                                                           limit: float) -> None:
    rec = Recorder()
    for vm, host, s in (("a", "host1", stalls[0]), ("c", "host3", stalls[1])):
        state(rec, vm, host, 0, 400)
        io(rec, vm, 0, 100)
        if s > 0:
            io(rec, vm, 100, 100 + s, "stalled")
        io(rec, vm, 100 + s, 400)
    (v,) = evaluate(scenario([{**ZD, "max_stall_s": limit}], faults=[]), build(rec))
    assert v.measured == pytest.approx(max(stalls))
    assert (v.verdict == "fail") == (max(stalls) > limit + 1e-9)


RW = {"kind": "vm_restart_within", "within_s": 90}


def test_ha_vm_back_within_the_limit_passes() -> None:
    (v,) = evaluate(scenario([RW]), build(healthy_run()))
    assert v.verdict == "pass" and v.measured == pytest.approx(60.0)
    assert v.evidence == [{"vm": "b", "failed_host": "host2", "fault": "node_power_loss",
                           "fault_at_s": 100.0, "restart_s": 60.0, "back_at_s": 160.0,
                           "on_host": "host1"}]


def test_ha_vm_back_too_late_fails() -> None:
    (v,) = evaluate(scenario([{**RW, "within_s": 59}]), build(healthy_run()))
    assert v.verdict == "fail" and v.measured == pytest.approx(60.0)


def test_ha_vm_never_back_fails_and_serialises_as_json() -> None:
    rec = Recorder()
    power_loss(rec)
    state(rec, "b", "host2", 0, 100)
    state(rec, "b", "host2", 100, 400, "down")
    (v,) = evaluate(scenario([RW]), build(rec))
    assert v.verdict == "fail" and v.measured == float("inf")
    d = json.loads(json.dumps(v.to_dict(), allow_nan=False))
    assert d["measured"] is None and d["evidence"][0]["restart_s"] is None


def test_no_host_failed_is_not_applicable() -> None:
    rec = Recorder()
    state(rec, "b", "host2", 0, 400)
    (v,) = evaluate(scenario([RW], faults=[]), build(rec))
    assert v.verdict == "n/a"


def test_a_brick_crash_is_not_a_host_failure() -> None:
    rec = Recorder()
    rec.event(100, "fault_start", "host2", "brick_crash", "scenario")
    state(rec, "b", "host2", 0, 400)
    sc = scenario([RW], faults=[{"at_s": 100, "kind": "brick_crash", "target": "host2"}])
    (v,) = evaluate(sc, build(rec))
    assert v.verdict == "n/a"


def test_scenario_faults_stand_in_when_the_engine_logged_none() -> None:
    rec = healthy_run()
    rec._rows["events"].clear()
    (v,) = evaluate(scenario([RW]), build(rec))
    assert v.verdict == "pass" and v.evidence[0]["fault_at_s"] == 100.0
