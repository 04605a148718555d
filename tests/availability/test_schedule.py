"""Fault schedules drawn from the failure table: reproducible per seed, independent streams
per process, rates and repair means as configured, maintenance only in quiet windows, and
the failure table's loading and errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from hcisim.availability.metrics import episodes, union_s, years_with
from hcisim.availability.schedule import draw_schedule, shorten_repairs
from hcisim.availability.stats import mean_ci, t_quantile, wilson, z_quantile
from hcisim.availability.study import plan_study, replication_scenario
from hcisim.availability.table import (
    YEAR_S,
    FailureTableError,
    load_failure_table,
    table_from_dict,
)
from hcisim.scenario import load_scenario


def test_same_seed_same_schedule_other_seed_other() -> None:
    sc, table = load_scenario(None), load_failure_table()
    a = draw_schedule(sc, table, 5 * YEAR_S, 11)
    assert a == draw_schedule(sc, table, 5 * YEAR_S, 11)
    assert a != draw_schedule(sc, table, 5 * YEAR_S, 12)


def test_changing_one_process_leaves_the_others_alone() -> None:
    """Common random numbers: each (process, unit) has its own stream."""
    sc = load_scenario(None)
    base = load_failure_table()
    more_disks = table_from_dict({**base.model_dump(), "processes": {
        **base.model_dump()["processes"], "disk": {**base.model_dump()["processes"]["disk"],
                                                   "rate_per_year": 0.5}}})
    a, _ = draw_schedule(sc, base, 10 * YEAR_S, 5)
    b, _ = draw_schedule(sc, more_disks, 10 * YEAR_S, 5)
    assert [f for f in a if f["kind"] != "disk_failure"] == [
        f for f in b if f["kind"] != "disk_failure"]
    assert sum(f["kind"] == "disk_failure" for f in b) > sum(
        f["kind"] == "disk_failure" for f in a)


def test_rates_and_repair_means_as_configured() -> None:
    sc = load_scenario(None)
    table = load_failure_table()
    years = 200.0
    faults, _ = draw_schedule(sc, table, years * YEAR_S, 1)
    crash = [f for f in faults if f["kind"] == "node_power_loss" and f["duration_s"] < 4 * 3600]
    hang = [f for f in faults if f["kind"] == "node_hang"]
    bricks = [f for f in faults if f["kind"] == "brick_crash"]
    for got, proc, units in ((hang, "node_hang", 3), (bricks, "brick_crash", 9)):
        rate = table.processes[proc].rate_per_year
        # up time is exponential, so the count is close to Poisson (repairs are short)
        expect = rate * units * years
        assert abs(len(got) - expect) < 4 * np.sqrt(expect), (proc, len(got), expect)
        mean_h = np.mean([f["duration_s"] for f in got]) / 3600
        assert mean_h == pytest.approx(table.processes[proc].repair.mean_h, rel=0.25)
    assert len(crash) > 400  # node_crash: 1 per node-year, minutes


def test_maintenance_rolls_and_avoids_failures() -> None:
    sc = load_scenario(None)
    table = load_failure_table()
    faults, ops = draw_schedule(sc, table, 10 * YEAR_S, 3)
    m = table.maintenance
    pairs = list(zip(ops[::2], ops[1::2], strict=True))
    assert all(a["kind"] == "maintenance" and b["kind"] == "activate"
               and a["host"] == b["host"] for a, b in pairs)
    per_host_year = len(pairs) / 3 / 10
    assert per_host_year == pytest.approx(365.25 / m.interval_days, rel=0.2)
    for a, b in pairs:
        assert b["at_s"] - a["at_s"] == pytest.approx(m.window_h * 3600)
        for f in faults:
            assert f["at_s"] + f["duration_s"] <= a["at_s"] or f["at_s"] >= b["at_s"]
    starts = [a["at_s"] for a, _ in pairs]
    assert all(t2 - t1 >= (m.window_h + m.gap_h) * 3600 - 1e-6
               for t1, t2 in itertools.pairwise(starts))


def test_schedule_is_a_valid_scenario_with_every_fault_kind() -> None:
    table = load_failure_table().model_dump()
    for p in table["processes"].values():
        p["rate_per_year"] *= 20
    plan = plan_study(load_scenario(None), 1.0, 1)
    sc = replication_scenario(plan.base, plan.runs[0], table_from_dict(table))
    kinds = {f.kind for f in sc.faults}
    assert kinds == {"disk_failure", "node_power_loss", "node_hang", "nic_loss", "brick_crash"}
    assert sc.operations and not sc.claims


def test_shorter_repairs_are_sub_intervals() -> None:
    faults, _ = draw_schedule(load_scenario(None), load_failure_table(), YEAR_S, 2)
    short = shorten_repairs(faults, 0.3)
    for f, s in zip(faults, short, strict=True):
        assert s["at_s"] == f["at_s"] and s["duration_s"] <= f["duration_s"]


def test_user_table_overrides_only_what_it_names(tmp_path: Path) -> None:
    p = tmp_path / "mine.yaml"
    p.write_text("processes:\n  disk: {rate_per_year: 0.05}\nmaintenance: {enabled: false}\n")
    default, mine = load_failure_table(), load_failure_table(p)
    assert mine.processes["disk"].rate_per_year == 0.05
    assert mine.processes["disk"].repair == default.processes["disk"].repair
    assert mine.processes["node_crash"] == default.processes["node_crash"]
    assert not mine.maintenance.enabled
    assert all(proc.source for proc in default.processes.values())  # cited


def test_bad_table_names_the_field(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("processes:\n  disk: {rate_per_year: -1}\n  extra: {fault: meteor}\n")
    with pytest.raises(FailureTableError) as exc:
        load_failure_table(p)
    text = "\n".join(exc.value.problems)
    assert "processes.disk.rate_per_year" in text and "processes.extra.fault" in text
    with pytest.raises(FailureTableError, match="cannot read"):
        load_failure_table(tmp_path / "missing.yaml")


def test_interval_helpers() -> None:
    assert z_quantile(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert t_quantile(0.975, 19) == pytest.approx(2.093, abs=2e-3)
    assert t_quantile(0.995, 15) == pytest.approx(2.947, abs=5e-3)
    p, lo, hi = wilson(0, 1000)
    assert p == 0 and lo == pytest.approx(0.0, abs=1e-12) and 0.003 < hi < 0.004
    e = mean_ci(np.array([0.0, 0.0, 0.0, 10.0]), floor=0.0)
    assert e.low == 0.0 and e.mean == 2.5 and e.high > 2.5


def test_union_and_episodes_of_intervals() -> None:
    starts, ends = np.array([20.0, 0.0, 5.0, 10.0]), np.array([30.0, 10.0, 8.0, 12.0])
    assert union_s(starts, ends) == 22.0  # [0, 12) and [20, 30)
    assert list(episodes(starts, ends)) == [0.0, 20.0]
    assert years_with(np.array([1.0, YEAR_S - 1, YEAR_S + 1, 5 * YEAR_S])) == 3
    assert union_s(np.empty(0), np.empty(0)) == 0.0
