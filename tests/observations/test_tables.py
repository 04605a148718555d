"""The observation schema: tables conform, round-trip through Parquet, and summarize right."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.observations import COLUMNS, Observations, Recorder, SchemaError, summarize
from hcisim.observations.summary import heal_completed_s, longest_run, weighted_quantile
from hcisim.scenario import make_fault


def _io(rec: Recorder, vm: str, t0: float, t1: float, status: str, mb: float = 10.0) -> None:
    rec.add("vm_io", vm, "data", t0, t1, mb, mb * 0.7, mb * 0.3, 100.0, 50.0, 1.0, 3.0, status)


def test_every_table_exists_even_when_empty() -> None:
    obs = Recorder().build("model", "s", 1, 10.0)
    assert set(obs.tables) == set(COLUMNS)
    for name, df in obs.tables.items():
        assert list(df.columns) == list(COLUMNS[name])


def test_missing_column_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="missing columns"):
        Observations("model", "s", 1, 1.0, tables={"events": pd.DataFrame({"t_s": [1.0]})})


def test_parquet_round_trip(tmp_path: Path) -> None:
    rec = Recorder()
    rec.event(1.0, "fault_start", "host2", "node_power_loss", "scenario")
    _io(rec, "vm1", 0, 5, "ok")
    rec.add("volume_state", 0.0, "data", "host1", "data", True, 0.0, True)
    obs = rec.build("model", "s", 7, 10.0, meta={"sim_events": 3})
    obs.save(tmp_path)
    again = Observations.load(tmp_path)
    assert again.meta == {"sim_events": 3} and again.seed == 7
    for name in COLUMNS:
        pd.testing.assert_frame_equal(again[name], obs[name])


def test_load_of_a_folder_without_observations(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="no observations"):
        Observations.load(tmp_path)


def test_longest_stall_joins_back_to_back_intervals_only() -> None:
    rec = Recorder()
    _io(rec, "a", 0, 10, "ok")
    _io(rec, "a", 10, 12, "stalled")
    _io(rec, "a", 12, 15, "error")  # joins the stall: still no I/O
    _io(rec, "a", 15, 20, "ok")
    _io(rec, "a", 20, 21, "stalled")
    s = summarize(rec.build("model", "s", 1, 30.0), ["a"], ["data"])
    # a stall (I/O waits) and an error window (I/O fails) are kept apart ...
    assert s["vms"]["a"]["max_io_stall_s"] == pytest.approx(2.0)
    assert s["vms"]["a"]["max_io_stall_at_s"] == pytest.approx(10.0)
    assert s["vms"]["a"]["max_io_error_s"] == pytest.approx(3.0)
    assert s["vms"]["a"]["max_io_error_at_s"] == pytest.approx(12.0)
    assert s["vms"]["a"]["io_error_s"] == pytest.approx(3.0)
    # ... and joined back to back as the outage (no I/O completed)
    assert s["vms"]["a"]["max_io_outage_s"] == pytest.approx(5.0)
    assert s["vms"]["a"]["max_io_outage_at_s"] == pytest.approx(10.0)
    assert s["vms"]["a"]["max_latency_ms"] == pytest.approx(2000.0)  # waited through it
    # latency is averaged over intervals that did I/O, weighted by I/O count
    assert s["vms"]["a"]["mean_latency_ms"] == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.01, 5), st.booleans()), min_size=1, max_size=30))
def test_longest_run_matches_a_brute_force_oracle(parts: list[tuple[float, bool]]) -> None:
    starts = np.cumsum([0.0] + [d for d, _ in parts[:-1]])
    df = pd.DataFrame({"t_start_s": starts, "t_end_s": starts + [d for d, _ in parts]})
    mask = pd.Series([b for _, b in parts])
    best, run = 0.0, 0.0
    for d, bad in parts:
        run = run + d if bad else 0.0
        best = max(best, run)
    assert longest_run(df, mask)[0] == pytest.approx(best)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1000), min_size=1, max_size=50), st.floats(0.01, 0.99))
def test_weighted_quantile_with_equal_weights_is_an_order_statistic(
        values: list[float], q: float) -> None:
    v = np.array(values)
    got = weighted_quantile(v, np.ones_like(v), q)
    assert got == pytest.approx(float(np.quantile(v, q, method="inverted_cdf")))


def test_heal_completion_is_when_pending_last_reaches_zero() -> None:
    rec = Recorder()
    for t, pending in [(0, 0.0), (5, 100.0), (8, 40.0), (9, 0.0), (20, 0.0)]:
        rec.add("volume_state", float(t), "data", "host2", "data", True, pending, True)
        rec.add("volume_state", float(t), "data", "host1", "data", True, 0.0, True)
    obs = rec.build("model", "s", 1, 30.0)
    assert heal_completed_s(obs, "data") == 9.0
    vs = summarize(obs, [], ["data"])["volumes"]["data"]
    assert vs["max_pending_heal_bytes"] == 100.0 and vs["heal_pending_at_end_bytes"] == 0.0


def test_heal_is_also_given_as_a_duration_after_the_repair() -> None:
    """The repair is the last fault_end before heal completed that can leave the volume
    something to heal: not a slowdown's end, not a brick fault of another volume."""
    rec = Recorder()
    for t, pending in [(0, 0.0), (12, 100.0), (30, 40.0), (41, 0.0)]:
        rec.add("volume_state", float(t), "data", "host2", "data", True, pending, True)
    power = make_fault(kind="node_power_loss", target="host2", at_s=10.0, duration_s=25.0)
    slow = make_fault(kind="link_slowdown", target="host1", at_s=20.0, duration_s=18.0,
                      rate_mbit=100.0)
    other = make_fault(kind="brick_crash", target="host3", volume="logs", at_s=30.0,
                       duration_s=9.0)
    for f in (power, slow, other):
        rec.fault_event(f.at_s, True, f)
        assert f.end_s is not None
        rec.fault_event(f.end_s, False, f)
    vs = summarize(rec.build("model", "s", 1, 60.0), [], ["data"])["volumes"]["data"]
    assert vs["heal_completed_s"] == 41.0
    assert vs["heal_repair_at_s"] == 35.0
    assert vs["heal_after_repair_s"] == pytest.approx(6.0)


def test_heal_never_done_is_none() -> None:
    rec = Recorder()
    rec.add("volume_state", 0.0, "data", "host2", "data", True, 0.0, True)
    rec.add("volume_state", 5.0, "data", "host2", "data", True, 9.0, True)
    assert heal_completed_s(rec.build("model", "s", 1, 30.0), "data") is None


def test_quorum_lost_time_and_unquorate_writes() -> None:
    rec = Recorder()
    for t, q in [(0.0, True), (10.0, False), (25.0, True)]:
        rec.add("volume_state", t, "data", "host1", "data", True, 0.0, q)
    rec.add("writes", "a", "data", 0.0, 10.0, 1e6, 3, True, 0.0)
    rec.add("writes", "a", "data", 10.0, 25.0, 5.0, 1, False, 0.0)
    v = summarize(rec.build("model", "s", 1, 40.0), ["a"], ["data"])["volumes"]["data"]
    assert v["quorum_lost_s"] == 15.0
    assert v["acked_without_quorum_bytes"] == 5.0 and v["min_copies_acked"] == 1
    assert math.isclose(v["acked_bytes"], 1e6 + 5)
