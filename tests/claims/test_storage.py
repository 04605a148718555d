"""replicas, no_split_brain and heal_within on hand-built observations."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.claims import evaluate
from hcisim.observations import Recorder
from tests.claims.cases import build, healthy_run, power_loss, scenario

REP = {"kind": "replicas", "min_copies": 2}
NSB = {"kind": "no_split_brain"}
HEAL = {"kind": "heal_within", "within_s": 60}


def test_writes_on_two_or_three_bricks_pass_replicas_2() -> None:
    (v,) = evaluate(scenario([REP]), build(healthy_run()))
    assert v.verdict == "pass" and v.measured == 2.0 and v.limit == 2.0


def test_replicas_3_fails_while_a_brick_was_down_and_says_when() -> None:
    (v,) = evaluate(scenario([{**REP, "min_copies": 3}]), build(healthy_run()))
    assert v.verdict == "fail" and v.measured == 2.0
    assert {e["vm"] for e in v.evidence} == {"a", "c"}
    assert all(e["from_s"] == 120.0 and e["to_s"] == 150.0 for e in v.evidence)


def test_a_lost_acknowledged_write_fails_whatever_the_copies() -> None:
    rec = healthy_run()
    rec.add("writes", "a", "data", 300.0, 310.0, 1e6, 3, True, 4096.0)
    (v,) = evaluate(scenario([REP]), build(rec))
    assert v.verdict == "fail"
    assert v.evidence[0]["problem"] == "acknowledged but lost"
    assert v.evidence[0]["lost_bytes"] == 4096.0


def test_rows_without_acknowledged_bytes_do_not_count() -> None:
    rec = healthy_run()
    rec.add("writes", "a", "data", 130.0, 140.0, 0.0, 0, False, 0.0)  # ENOTCONN: nothing acked
    assert [v.verdict for v in evaluate(scenario([REP, NSB]), build(rec))] == ["pass", "pass"]


def test_no_writes_at_all_is_not_applicable() -> None:
    assert [v.verdict for v in evaluate(scenario([REP, NSB]), build(Recorder()))] == [
        "n/a", "n/a"]


@settings(max_examples=40, deadline=None)
@given(copies=st.lists(st.integers(0, 3), min_size=1, max_size=6), need=st.integers(1, 3))
def test_replicas_verdict_is_the_fewest_copies_of_acked_writes(copies: list[int],
                                                               need: int) -> None:
    rec = Recorder()
    for i, c in enumerate(copies):
        rec.add("writes", "a", "data", float(i), float(i + 1), 1e6 if c else 0.0, c, True, 0.0)
    (v,) = evaluate(scenario([{**REP, "min_copies": need}]), build(rec))
    acked = [c for c in copies if c]
    if not acked:
        assert v.verdict == "n/a"
    else:
        assert v.measured == min(acked)
        assert (v.verdict == "pass") == (min(acked) >= need)


def test_a_write_flagged_without_quorum_fails_no_split_brain() -> None:
    rec = healthy_run()
    rec.add("writes", "c", "data", 130.0, 131.0, 65536.0, 1, False, 0.0)
    (v,) = evaluate(scenario([NSB]), build(rec))
    assert v.verdict == "fail" and v.measured == 65536.0
    assert v.evidence[0]["witness"] == "writes.quorum"


def _no_quorum(rec: Recorder, t0: float, t1: float) -> None:
    for t, q in ((t0, False), (t1, True)):
        for h in ("host1", "host2", "host3"):
            rec.add("volume_state", t, "data", h, "data", h == "host1", 0.0, q)


def test_a_write_inside_a_no_quorum_stretch_of_volume_state_fails_too() -> None:
    rec = healthy_run()
    _no_quorum(rec, 300.0, 320.0)
    rec.add("writes", "a", "data", 305.0, 310.0, 1e6, 1, True, 0.0)
    (v,) = evaluate(scenario([NSB]), build(rec))
    assert v.verdict == "fail" and v.evidence[0]["witness"] == "volume_state"


def test_a_write_straddling_the_quorum_loss_is_not_blamed() -> None:
    # Interval tables are coarse: a row ending after quorum was lost may hold writes from
    # before; only rows wholly inside the stretch are proof.
    rec = healthy_run()
    _no_quorum(rec, 300.0, 320.0)
    rec.add("writes", "a", "data", 295.0, 301.0, 1e6, 3, True, 0.0)
    (v,) = evaluate(scenario([NSB]), build(rec))
    assert v.verdict == "pass" and v.measured == 0.0


def test_heal_done_within_the_limit_of_the_repair_passes() -> None:
    (v,) = evaluate(scenario([HEAL]), build(healthy_run()))
    assert v.verdict == "pass"
    assert v.measured == pytest.approx(50.0)  # repaired at 150, pending 0 from 200
    assert v.evidence[0]["max_pending_bytes"] == 5e9


def test_heal_slower_than_the_limit_fails() -> None:
    (v,) = evaluate(scenario([{**HEAL, "within_s": 49}]), build(healthy_run()))
    assert v.verdict == "fail" and v.measured == pytest.approx(50.0)


def _still_pending(duration: float) -> Recorder:
    rec = Recorder()
    power_loss(rec)
    for t, p in ((0.0, 0.0), (150.0, 5e9), (200.0, 1e9)):
        rec.add("volume_state", t, "data", "host2", "data", t != 120, p, True)
    return rec


def test_still_healing_long_after_the_repair_fails_with_a_lower_bound() -> None:
    (v,) = evaluate(scenario([HEAL]), build(_still_pending(400.0)))
    assert v.verdict == "fail" and v.measured == pytest.approx(250.0)
    assert "lower bound" in v.evidence[0]["note"]


def test_still_healing_when_the_run_ends_before_the_deadline_is_not_applicable() -> None:
    sc = scenario([{**HEAL, "within_s": 600}])
    (v,) = evaluate(sc, build(_still_pending(400.0)))
    assert v.verdict == "n/a"


def test_no_repair_means_nothing_to_judge() -> None:
    rec = Recorder()
    power_loss(rec, end=None)
    sc = scenario([HEAL], faults=[{"at_s": 100, "kind": "node_power_loss", "target": "host2"}])
    (v,) = evaluate(sc, build(rec))
    assert v.verdict == "n/a"


def test_heal_within_names_one_volume() -> None:
    vols = [{"name": "data", "type": "replica3", "bricks": [
        {"host": "host1"}, {"host": "host2"}, {"host": "host3"}]},
        {"name": "other", "type": "replica3", "bricks": [
            {"host": "host1"}, {"host": "host2"}, {"host": "host3"}]}]
    rec = healthy_run()
    for t, p in ((0.0, 0.0), (150.0, 1e9)):  # "other" never finishes
        rec.add("volume_state", t, "other", "host2", "data", True, p, True)
    sc = scenario([{**HEAL, "volume": "data"}, HEAL], volumes=vols)
    only_data, every = evaluate(sc, build(rec))
    assert only_data.verdict == "pass"
    assert every.verdict == "fail" and every.evidence[0]["volume"] == "other"


def test_a_replica3_write_on_one_brick_has_no_majority_whatever_the_flag_says() -> None:
    # quorum_type none: the engine calls it quorum, but one brick of three is no majority
    rec = healthy_run()
    rec.add("writes", "a", "data", 300.0, 310.0, 1e6, 1, True, 0.0)
    (v,) = evaluate(scenario([NSB]), build(rec))
    assert v.verdict == "fail" and v.evidence[0]["witness"] == "fewer than 2 of 3 bricks"


def test_an_arbiter_write_on_one_data_brick_is_normal() -> None:
    vols = [{"name": "data", "type": "arbiter", "bricks": [
        {"host": "host1"}, {"host": "host2"}, {"host": "host3"}]}]
    rec = Recorder()
    rec.add("writes", "a", "data", 0.0, 10.0, 1e6, 1, True, 0.0)  # data brick + arbiter
    (v,) = evaluate(scenario([NSB], volumes=vols), build(rec))
    assert v.verdict == "pass"
