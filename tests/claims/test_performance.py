"""throughput_at_least and latency_p99_at_most: per VM, per group, in a window."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.claims import evaluate
from hcisim.observations import Recorder
from tests.claims.cases import build, healthy_run, io, scenario

TP = {"kind": "throughput_at_least", "mb_s": 7.0}
LAT = {"kind": "latency_p99_at_most", "ms": 5.0}


def test_throughput_of_each_vm_is_time_weighted_over_the_whole_run() -> None:
    # a and c do 8 MB/s except a 20 s stall in 400 s: 8 * 380 / 400 = 7.6
    (v,) = evaluate(scenario([{**TP, "vms": ["a", "c"]}]), build(healthy_run()))
    assert v.verdict == "pass" and v.measured == pytest.approx(7.6)


def test_time_a_vm_was_down_counts_as_zero_and_fails_it() -> None:
    # b: 8 MB/s for 100 + 240 s of 400 = 6.8 MB/s
    (v,) = evaluate(scenario([TP]), build(healthy_run()))
    assert v.verdict == "fail" and v.measured == pytest.approx(6.8)
    assert v.evidence == [{"vm": "b", "mb_s": 6.8, "window_s": [0.0, 400.0]}]


def test_a_window_after_the_fault_sees_full_throughput() -> None:
    (v,) = evaluate(scenario([{**TP, "mb_s": 8.0, "window_s": [200, 400]}]),
                    build(healthy_run()))
    assert v.verdict == "pass" and v.measured == pytest.approx(8.0)


def test_group_throughput_is_the_sum_of_its_vms() -> None:
    claim = {**TP, "mb_s": 22.0, "per": "group"}
    (v,) = evaluate(scenario([claim]), build(healthy_run()))
    assert v.measured == pytest.approx(7.6 + 7.6 + 6.8) and v.verdict == "pass"
    (v,) = evaluate(scenario([{**claim, "mb_s": 23.0}]), build(healthy_run()))
    assert v.verdict == "fail"


def test_a_vm_that_never_did_io_has_zero_throughput() -> None:
    rec = Recorder()
    io(rec, "a", 0, 400)
    (v,) = evaluate(scenario([{**TP, "vms": ["a", "c"]}]), build(rec))
    assert v.verdict == "fail" and v.measured == 0.0 and v.evidence[0]["vm"] == "c"


def test_an_empty_window_is_not_applicable() -> None:
    (v,) = evaluate(scenario([{**TP, "window_s": [100, 100]}]), build(healthy_run()))
    assert v.verdict == "n/a"


@settings(max_examples=40, deadline=None)
@given(rates=st.lists(st.tuples(st.floats(1, 100), st.floats(0, 500)), min_size=1, max_size=5),
       lo=st.floats(0, 200), span=st.floats(1, 300))
def test_throughput_equals_the_integral_over_the_window(rates: list[tuple[float, float]],
                                                        lo: float, span: float) -> None:
    rec = Recorder()
    t, area = 0.0, 0.0
    hi = lo + span
    for length, mb in rates:
        io(rec, "a", t, t + length, mb=mb)
        area += mb * max(0.0, min(t + length, hi) - max(t, lo))
        t += length
    (v,) = evaluate(scenario([{**TP, "vms": ["a"], "window_s": [lo, hi]}]), build(rec))
    assert v.measured == pytest.approx(area / span, rel=1e-9, abs=1e-9)


def test_p99_is_io_weighted_and_ignores_stalled_intervals() -> None:
    rec = Recorder()
    io(rec, "a", 0, 99, p99=2.0)
    io(rec, "a", 99, 100, p99=50.0)  # 1 % of the I/Os
    io(rec, "a", 100, 130, "stalled")
    (v,) = evaluate(scenario([{**LAT, "vms": ["a"]}]), build(rec))
    assert v.verdict == "pass" and v.measured == 2.0
    rec2 = Recorder()
    io(rec2, "a", 0, 97, p99=2.0)
    io(rec2, "a", 97, 100, p99=50.0)  # 3 %: now the p99
    (v,) = evaluate(scenario([{**LAT, "vms": ["a"]}]), build(rec2))
    assert v.verdict == "fail" and v.measured == 50.0


def test_per_vm_latency_names_the_slow_vm_and_group_pools_ios() -> None:
    rec = Recorder()
    io(rec, "a", 0, 400, p99=2.0)
    io(rec, "c", 0, 400, p99=9.0)
    (v,) = evaluate(scenario([{**LAT, "vms": ["a", "c"]}]), build(rec))
    assert v.verdict == "fail" and v.evidence[0]["vm"] == "c" and v.measured == 9.0
    (g,) = evaluate(scenario([{**LAT, "vms": ["a", "c"], "per": "group"}]), build(rec))
    assert g.measured == 9.0  # half the I/Os at 9 ms: the pooled p99 is 9


def test_latency_with_no_io_in_the_window_is_not_applicable() -> None:
    rec = Recorder()
    io(rec, "a", 0, 100)
    (v,) = evaluate(scenario([{**LAT, "vms": ["a"], "window_s": [200, 300]}]), build(rec))
    assert v.verdict == "n/a"


def test_latency_window_selects_the_intervals() -> None:
    rec = Recorder()
    io(rec, "a", 0, 200, p99=2.0)
    io(rec, "a", 200, 400, p99=30.0)
    before, after = evaluate(scenario([{**LAT, "window_s": [0, 150], "vms": ["a"]},
                                       {**LAT, "window_s": [250, 400], "vms": ["a"]}]),
                             build(rec))
    assert (before.verdict, after.verdict) == ("pass", "fail")
    assert np.isclose(after.measured or 0.0, 30.0)
