"""Pre-copy migration: exact properties over random VMs, bandwidths and policies."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hcisim.model.compute.migration import (
    ConstantBandwidth,
    PiecewiseBandwidth,
    downtime_schedule_ms,
    migrate,
)
from hcisim.scenario.compute import Migration

POLICIES = ("minimal_downtime", "suspend_workload_if_needed", "post_copy")
ram = st.floats(100.0, 64_000.0)
dirty = st.floats(0.0, 400.0)
bw = st.floats(5.0, 2000.0)
policy = st.sampled_from(POLICIES)


def test_downtime_schedule_is_vdsms() -> None:
    # vdsm exponential_downtime(500, 5) yields int(offset + base**i): 101, 104, 120, 189, 500
    assert [int(x) for x in downtime_schedule_ms(500, 5)] == [101, 104, 120, 189, 500]
    assert downtime_schedule_ms(300, 1) == (300,)


@settings(max_examples=100, deadline=None)
@given(ram, dirty, bw, policy)
def test_total_time_at_least_ram_over_bandwidth(r: float, d: float, b: float, p: str) -> None:
    s = Migration(policy=p)  # type: ignore[arg-type]
    res = migrate(r, d, s, ConstantBandwidth(b))
    eff = min(b, s.max_bandwidth_mb_s)
    if res.moved:
        assert res.total_s >= r / eff - 1e-6
        assert res.transferred_mb >= r - 1e-6


@settings(max_examples=100, deadline=None)
@given(ram, dirty, bw, policy)
def test_downtime_within_allowed_when_converged(r: float, d: float, b: float, p: str) -> None:
    s = Migration(policy=p)  # type: ignore[arg-type]
    res = migrate(r, d, s, ConstantBandwidth(b))
    if res.outcome == "converged":
        limit = (s.suspend_downtime_ms if p == "suspend_workload_if_needed"
                 else s.downtime_ms) / 1000
        assert res.downtime_s <= res.allowed_downtime_s + 1e-9 <= limit + 1e-9
    if res.outcome == "post_copy":
        assert res.downtime_s <= s.downtime_ms / 1000
        eff = min(b, s.max_bandwidth_mb_s)
        assert res.total_s <= 2 * r / eff + 1e-6  # bounded: all RAM + at most all RAM again


@settings(max_examples=100, deadline=None)
@given(ram, st.floats(1.0, 4.0), bw)
def test_no_convergence_when_dirty_rate_reaches_bandwidth(r: float, factor: float,
                                                         b: float) -> None:
    s = Migration(policy="minimal_downtime")
    eff = min(b, s.max_bandwidth_mb_s)
    assume(r > eff * s.downtime_ms / 1000)  # the whole working set does not fit the downtime
    res = migrate(r, eff * factor, s, ConstantBandwidth(b))
    assert res.outcome == "aborted"


@pytest.mark.parametrize("p", POLICIES)
def test_zero_bandwidth_aborts_after_progress_timeout(p: str) -> None:
    s = Migration(policy=p)  # type: ignore[arg-type]
    res = migrate(1000.0, 10.0, s, ConstantBandwidth(0.0), t0=5.0)
    assert res.outcome == "aborted" and res.t_end_s == pytest.approx(5.0 + s.progress_timeout_s)


@settings(max_examples=50, deadline=None)
@given(ram, dirty, bw, policy, st.floats(0.0, 500.0))
def test_piecewise_with_one_rate_is_constant(r: float, d: float, b: float, p: str,
                                             t0: float) -> None:
    s = Migration(policy=p)  # type: ignore[arg-type]
    a = migrate(r, d, s, ConstantBandwidth(b), t0)
    pw = migrate(r, d, s, PiecewiseBandwidth((0.0, t0 + 1.0, t0 + 50.0), (b, b, b)), t0)
    assert pw.outcome == a.outcome and pw.rounds == a.rounds
    assert math.isclose(pw.t_end_s, a.t_end_s, rel_tol=1e-9, abs_tol=1e-6)


def test_slower_link_mid_migration_takes_longer() -> None:
    s = Migration(policy="minimal_downtime")
    fast = migrate(8000.0, 5.0, s, ConstantBandwidth(50.0))
    slowed = migrate(8000.0, 5.0, s, PiecewiseBandwidth((0.0, 60.0), (50.0, 25.0)))
    assert fast.outcome == slowed.outcome == "converged"
    assert slowed.total_s > fast.total_s
    # the first 60 s at 50 MB/s, the remaining 5000 MB of the first pass at 25 MB/s
    assert slowed.total_s >= 60.0 + 5000.0 / 25.0


def test_auto_converge_rescues_what_minimal_downtime_cannot() -> None:
    base = dict(max_bandwidth_mb_s=100.0, progress_timeout_s=600.0)
    args = (4000.0, 90.0)
    assert migrate(*args, Migration(policy="minimal_downtime", **base),  # type: ignore[arg-type]
                   ConstantBandwidth(100.0)).outcome == "aborted"
    res = migrate(*args, Migration(policy="suspend_workload_if_needed", **base),  # type: ignore[arg-type]
                  ConstantBandwidth(100.0))
    assert res.outcome == "converged" and res.rounds > 3
