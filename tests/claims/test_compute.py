"""Migration and pause claims, and zero_downtime counting pauses, on hand-built observations.

The observations are written as a lab would record them (qemu's migration counters in the
``migrations`` table, QMP's STOP/RESUME as ``vm_state`` rows), so the oracles are the hand
computations in each test.
"""

from __future__ import annotations

import json
import math

import pytest

from hcisim.claims import evaluate
from hcisim.observations import Recorder
from tests.claims.cases import build, io, scenario, state


def migration(rec: Recorder, vm: str, t0: float, total: float, downtime: float,
              outcome: str = "converged", src: str = "host1", dst: str = "host2") -> None:
    rec.add("migrations", vm, src, dst, t0, t0 + total, downtime, 3, 170.0, outcome,
            "minimal_downtime")


def two_migrations() -> Recorder:
    """a: 12 s, 80 ms down; c: 30 s, 450 ms down (its source paused for the switch-over)."""
    rec = Recorder()
    migration(rec, "a", 50, 12.0, 0.08)
    migration(rec, "c", 100, 30.0, 0.45, src="host3", dst="host1")
    state(rec, "a", "host1", 0, 50)
    state(rec, "a", "host1", 50, 61.92, "migrating", "active")
    state(rec, "a", "host1", 61.92, 62.0, "paused", "migration")
    state(rec, "a", "host2", 62.0, 400)
    state(rec, "c", "host3", 0, 129.55)
    state(rec, "c", "host3", 129.55, 130.0, "paused", "migration")
    state(rec, "c", "host1", 130.0, 400)
    return rec


@pytest.mark.parametrize(("within", "verdict"), [(30.0, "pass"), (29.9, "fail")])
def test_migration_completes_within_measures_the_slowest(within: float, verdict: str) -> None:
    claim = {"kind": "migration_completes_within", "within_s": within}
    (v,) = evaluate(scenario([claim], faults=[]), build(two_migrations()))
    assert v.verdict == verdict and v.measured == pytest.approx(30.0) and v.unit == "s"
    assert v.evidence[0]["vm"] == "c" and v.evidence[0]["total_s"] == 30.0


def test_an_aborted_migration_never_completes() -> None:
    rec = two_migrations()
    migration(rec, "a", 200, 240.0, 0.0, outcome="aborted")
    claim = {"kind": "migration_completes_within", "within_s": 1000, "vms": ["a"]}
    (v,) = evaluate(scenario([claim], faults=[]), build(rec))
    assert v.verdict == "fail" and v.measured == math.inf
    assert v.evidence[0]["total_s"] is None and v.evidence[0]["problem"].startswith("aborted")
    assert json.loads(json.dumps(v.to_dict(), allow_nan=False))["measured"] is None


@pytest.mark.parametrize(("within", "verdict", "measured"),
                         [(50.0, "pass", 12.0), (39.0, "fail", 40.0), (5.0, "fail", 40.0)])
def test_a_migration_still_running_at_the_end_fails_only_once_it_is_late(
        within: float, verdict: str, measured: float) -> None:
    """a: 12 s, converged; a again from 360 s, still under way at the run's end (400 s,
    40 s so far): judged only once those 40 s exceed the limit; named either way."""
    rec = two_migrations()
    migration(rec, "a", 360, 40.0, 0.0, outcome="running")
    claim = {"kind": "migration_completes_within", "within_s": within, "vms": ["a"]}
    (v,) = evaluate(scenario([claim], faults=[]), build(rec))
    assert v.verdict == verdict and v.measured == pytest.approx(measured)
    (still,) = [e for e in v.evidence if e.get("outcome") == "running"]
    assert still["at_s"] == 360 and "still under way" in still["problem"]


def test_a_migration_still_running_alone_is_not_applicable() -> None:
    rec = Recorder()
    migration(rec, "a", 360, 40.0, 0.0, outcome="running")
    for claim in ({"kind": "migration_completes_within", "within_s": 100},
                  {"kind": "migration_downtime_at_most", "ms": 300}):
        (v,) = evaluate(scenario([claim], faults=[]), build(rec))
        assert v.verdict == "n/a" and v.measured is None, v


def test_no_migration_is_not_applicable() -> None:
    for claim in ({"kind": "migration_completes_within", "within_s": 10},
                  {"kind": "migration_downtime_at_most", "ms": 300}):
        (v,) = evaluate(scenario([claim], faults=[]), build(Recorder()))
        assert v.verdict == "n/a"


@pytest.mark.parametrize(("ms", "verdict"), [(450.0, "pass"), (449.0, "fail")])
def test_migration_downtime_is_the_worst_switch_over_in_ms(ms: float, verdict: str) -> None:
    claim = {"kind": "migration_downtime_at_most", "ms": ms}
    (v,) = evaluate(scenario([claim], faults=[]), build(two_migrations()))
    assert v.verdict == verdict and v.measured == pytest.approx(450.0) and v.unit == "ms"
    assert v.evidence[0]["vm"] == "c"


def test_downtime_skips_aborted_migrations_and_says_so() -> None:
    rec = two_migrations()
    migration(rec, "a", 200, 240.0, 0.0, outcome="aborted")
    claim = {"kind": "migration_downtime_at_most", "ms": 100, "vms": ["a"]}
    (v,) = evaluate(scenario([claim], faults=[]), build(rec))
    assert v.verdict == "pass" and v.measured == pytest.approx(80.0)
    assert {"note": "1 aborted migration(s) not judged"} in v.evidence
    migration(rec, "a", 360, 40.0, 0.0, outcome="running")
    (v,) = evaluate(scenario([claim], faults=[]), build(rec))
    assert v.verdict == "pass" and v.measured == pytest.approx(80.0)
    assert {"note": "1 migration(s) still under way at the run's end not judged"} in v.evidence


def paused_twice() -> Recorder:
    """b pauses on I/O errors for 8 s and then 5 s (two rows back to back: one window)."""
    rec = Recorder()
    state(rec, "b", "host2", 0, 100)
    state(rec, "b", "host2", 100, 108, "paused", "io-error: Input/output error")
    state(rec, "b", "host2", 108, 200)
    state(rec, "b", "host2", 200, 203, "paused", "io-error: Input/output error")
    state(rec, "b", "host2", 203, 205, "paused", "storage I/O error")
    state(rec, "b", "host2", 205, 400)
    return rec


@pytest.mark.parametrize(("measure", "limit", "measured", "verdict"), [
    ("longest", 8.0, 8.0, "pass"), ("longest", 7.5, 8.0, "fail"),
    ("total", 13.0, 13.0, "pass"), ("total", 12.0, 13.0, "fail")])
def test_paused_at_most_longest_or_total(measure: str, limit: float, measured: float,
                                         verdict: str) -> None:
    claim = {"kind": "paused_at_most", "max_s": limit, "measure": measure, "vms": ["b"]}
    (v,) = evaluate(scenario([claim], faults=[]), build(paused_twice()))
    assert v.verdict == verdict and v.measured == pytest.approx(measured)
    assert v.evidence[0]["pauses"] == 2 and v.evidence[0]["longest_at_s"] == 100.0


def test_a_vm_that_never_paused_passes_with_zero_and_switch_overs_do_not_count() -> None:
    claim = {"kind": "paused_at_most", "max_s": 0}
    (v,) = evaluate(scenario([claim], faults=[]), build(two_migrations()))
    assert v.verdict == "pass" and v.measured == 0.0


def test_zero_downtime_counts_a_pause_the_guest_saw_as_a_stall() -> None:
    """A lab guest pauses on an I/O error (werror=stop): its disk shows no stalled rows but
    the guest stood still; a stall right before the pause makes one longer stretch."""
    rec = Recorder()
    state(rec, "c", "host3", 0, 100)
    state(rec, "c", "host3", 100, 130, "paused", "io-error: Input/output error")
    state(rec, "c", "host3", 130, 400)
    io(rec, "c", 0, 90)
    io(rec, "c", 90, 100, "stalled")
    io(rec, "c", 130, 400)
    claim = {"kind": "zero_downtime", "max_stall_s": 35, "max_paused_s": 60, "vms": ["c"]}
    (v,) = evaluate(scenario([claim], faults=[]), build(rec))
    assert v.verdict == "fail" and v.measured == pytest.approx(40.0)
    assert v.evidence[0]["problem"] == "stall_with_pause" and v.evidence[0]["at_s"] == 90.0
    (ok,) = evaluate(scenario([{**claim, "max_stall_s": 40}], faults=[]), build(rec))
    assert ok.verdict == "pass"
    (strict,) = evaluate(scenario([{**claim, "max_stall_s": 40, "max_paused_s": 0}],
                                  faults=[]), build(rec))
    assert strict.verdict == "fail" and strict.evidence[0]["problem"] == "paused"


def test_zero_downtime_ignores_a_migration_switch_over() -> None:
    claim = {"kind": "zero_downtime", "max_stall_s": 0.1}
    (v,) = evaluate(scenario([claim], faults=[]), build(two_migrations()))
    assert v.verdict == "pass" and v.measured == 0.0
