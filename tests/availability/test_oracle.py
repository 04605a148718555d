"""The Monte Carlo study against the exact Markov chain of one replica set, and the
monotonicity properties (faster repair never hurts; arbiter never holds more copies)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from hcisim.availability.metrics import volume_rows
from hcisim.availability.oracle import generator, replica_set, states, stationary
from hcisim.availability.schedule import draw_schedule, shorten_repairs
from hcisim.availability.stats import mean_ci
from hcisim.availability.study import run_study
from hcisim.availability.table import YEAR_S
from hcisim.model import simulate
from hcisim.scenario import with_overrides
from tests.availability.conftest import brick_table, replica_set_scenario

RATE, REPAIR_H = 365.25, 4.0  # each brick fails once a day and is repaired in 4 h
YEARS = 30 / 365.25


@given(lam=st.floats(1e-3, 1e3), mu=st.floats(1e-3, 1e3))
def test_chain_is_independent_bricks(lam: float, mu: float) -> None:
    """The 8-state chain's stationary law is the product of three independent up/down
    bricks, each up with probability mu / (lam + mu)."""
    pi = stationary(generator(lam, mu))
    p = mu / (lam + mu)
    expect = [math.prod(p if up else 1 - p for up in s) for s in states()]
    assert np.allclose(pi, expect, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("layout", ["replica3", "arbiter"])
def test_monte_carlo_matches_markov_chain(layout: str) -> None:
    """Brick crashes only, exponential failures and repairs: the model's time without
    quorum, with fewer copies than promised and on one copy, and how often quorum is lost,
    each fall inside the 99 % confidence interval of 16 replications."""
    sc = replica_set_scenario(layout)
    _, t = run_study(sc, brick_table(RATE, REPAIR_H), YEARS, 16, seed=3)
    assert (t.runs["error"] == "").all()
    assert t.runs["faults"].min() > 40  # each replication really saw many failures
    exact = replica_set(RATE, REPAIR_H * 3600, layout)
    span = YEARS * YEAR_S
    v = t.volumes
    checks = {
        "quorum_lost_s": (v["quorum_lost_s"] / span, exact.unavailable),
        "fewer_copies_s": (v["fewer_copies_s"] / span, exact.fewer_copies),
        "one_copy_s": (v["one_copy_s"] / span, exact.one_copy),
        "quorum_losses": (v["quorum_losses"] / YEARS, exact.quorum_losses_per_year),
    }
    for name, (sample, want) in checks.items():
        est = mean_ci(sample.to_numpy(float), level=0.99)
        assert est.low <= want <= est.high, f"{name}: {want} not in [{est.low}, {est.high}]"
    # and the answer is not trivially inside a huge interval
    est = mean_ci((v["quorum_lost_s"] / span).to_numpy(float), level=0.99)
    assert est.high - est.low < exact.unavailable


@given(mu_slow=st.floats(0.01, 100), speedup=st.floats(1.0, 50), lam=st.floats(0.01, 100))
def test_chain_faster_repair_never_worse(mu_slow: float, speedup: float, lam: float) -> None:
    for layout in ("replica3", "arbiter"):
        slow = replica_set(lam, 3600 / mu_slow, layout)
        fast = replica_set(lam, 3600 / (mu_slow * speedup), layout)
        assert fast.unavailable <= slow.unavailable + 1e-12
        assert fast.fewer_copies <= slow.fewer_copies + 1e-12


def _volume(sc_faults: list[dict[str, object]], layout: str, vm: bool) -> dict[str, float]:
    """The replica set's volume row with ``sc_faults``. Detection with the ping chain's
    phase known: with it unknown, each loss draws its first lost ping from one random stream
    shared by all losses, so a repair that ends sooner shifts the draws of every later loss
    and two runs no longer compare the same failures (hypothesis found quorum_lost_s 0.04 s
    longer with every repair 0.99999 as long: seed 278039129)."""
    sc = with_overrides(replica_set_scenario(layout, vm=vm), {
        "duration_s": 3 * 86400.0, "faults": sc_faults, "model.detection.phase": "known"})
    return volume_rows(sc, simulate(sc))[0]


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), factor=st.floats(0.05, 1.0))
@example(seed=1436, factor=0.5)  # a stale brick back early: no-copy time becomes one-copy
@example(seed=278039129, factor=0.99999)  # detection draws shifted (see _volume)
def test_model_faster_repair_never_worse(seed: int, factor: float) -> None:
    """The same failures, each repaired sooner (every outage a sub-interval of the old
    one): the model's time without quorum, with fewer copies than promised, on at most one
    copy and on none never grows."""
    sc = replica_set_scenario("replica3", vm=True)
    table = brick_table(200.0, 12.0, {"power": {
        "fault": "node_power_loss", "rate_per_year": 60.0,
        "repair": {"dist": "exponential", "mean_h": 2.0}}})
    faults, _ = draw_schedule(sc, table, 3 * 86400.0, seed)
    assume(len(faults) >= 2)
    _faster_repair_never_worse(faults, factor)


def _faster_repair_never_worse(faults: list[dict[str, Any]], factor: float) -> None:
    slow = _volume(faults, "replica3", vm=True)
    assert slow["fewer_copies_s"] > 0  # failures really reduced the copies
    fast = _volume(shorten_repairs(faults, factor), "replica3", vm=True)
    for key in ("quorum_lost_s", "fewer_copies_s", "no_copy_s"):
        assert fast[key] <= slow[key] + 1e-6, key
    # time on AT MOST one copy: exactly one copy alone may grow, when a shorter outage turns
    # time on no copy into time on one (a stale brick back early, healing; found by hypothesis)
    at_most_one = {k: v["one_copy_s"] + v["no_copy_s"] for k, v in (("s", slow), ("f", fast))}
    assert at_most_one["f"] <= at_most_one["s"] + 1e-6


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="open: hypothesis found repairs 0.75 as long giving "
                   "15.4 s MORE time without quorum (4659.3 -> 4674.7 s, seed 1130252); not "
                   "yet explained (a model bug, or a real non-monotonicity of heal timing)")
def test_faster_repair_counterexample_found_in_ci() -> None:
    """Kept visible: the property above failed on this draw in a full run (session 3). The
    suite runs hypothesis derandomized (tests/conftest.py), so the random search does not
    find it anew each run; this case fails until the mechanism is found."""
    sc = replica_set_scenario("replica3", vm=True)
    table = brick_table(200.0, 12.0, {"power": {
        "fault": "node_power_loss", "rate_per_year": 60.0,
        "repair": {"dist": "exponential", "mean_h": 2.0}}})
    faults, _ = draw_schedule(sc, table, 3 * 86400.0, 1130252)
    if len(faults) < 2:
        pytest.fail("the case no longer draws two failures")
    _faster_repair_never_worse(faults, 0.75)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_arbiter_never_holds_more_copies(seed: int) -> None:
    """Same failures on both layouts: at no time does arbiter hold more data copies than
    replica 3 (time-average of in-sync data bricks), and it never promises more."""
    sc = replica_set_scenario("replica3", vm=True)
    table = brick_table(100.0, 12.0, {"disk": {
        "fault": "disk_failure", "rate_per_year": 20.0,
        "repair": {"dist": "exponential", "mean_h": 6.0}}})
    faults, _ = draw_schedule(sc, table, 3 * 86400.0, seed)
    r3 = _volume(faults, "replica3", vm=True)
    arb = _volume(faults, "arbiter", vm=True)
    assume(faults)
    assert r3["mean_copies"] < 3.0  # failures really reduced the copies
    assert arb["mean_copies"] <= r3["mean_copies"] + 1e-9
    assert arb["promised_copies"] < r3["promised_copies"]
