"""Live migrations run pre-copy ahead (hcisim/model/compute/live.py, issue 16's speed): a
migration process advances through up to RUN_AHEAD steps and sleeps until the last, and
replays them up to a rate change or an abort that comes first. With RUN_AHEAD = 1 it wakes
at every step, as it did before; both must give the same tables, bit for bit, with fewer
SimPy events, on runs where rates change in the middle of the steps run ahead (a link
slowing down during an evacuation), on availability years and where migrations are
aborted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hcisim.availability import load_failure_table, plan_study, replication_scenario
from hcisim.model import simulate
from hcisim.model.compute import live
from hcisim.observations import Observations
from hcisim.scenario import Scenario, load_scenario, with_overrides

CATALOGUE = Path(__file__).resolve().parents[2] / "scenarios"

def _year(replication: int) -> Scenario:
    plan = plan_study(load_scenario(None), 1.0, replication + 1)
    return replication_scenario(plan.base, plan.runs[replication], load_failure_table())


def _run(sc: Scenario, monkeypatch: pytest.MonkeyPatch, run_ahead: int,
         ) -> tuple[Observations, int]:
    """The run's observations and how many times a migration replayed steps it had run
    ahead because a rate change or an abort came in the middle of them."""
    replays = 0
    catch_up = live._catch_up

    def counting(a: Any, now: float) -> None:
        nonlocal replays
        replays += a.mark is not None and any(t < now for t in a.steps)
        catch_up(a, now)

    with monkeypatch.context() as m:
        m.setattr(live, "RUN_AHEAD", run_ahead)
        m.setattr(live, "_catch_up", counting)
        return simulate(sc, record="intervals"), replays


def _same(a: Observations, b: Observations) -> None:
    assert set(a.tables) == set(b.tables)
    for name in a.tables:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)


@pytest.mark.parametrize("replication", [0, 1])
def test_an_availability_year_is_the_same_as_waking_at_every_step(
        replication: int, monkeypatch: pytest.MonkeyPatch) -> None:
    sc = _year(replication)
    ahead, _ = _run(sc, monkeypatch, live.RUN_AHEAD)
    every, _ = _run(sc, monkeypatch, 1)
    assert len(ahead["migrations"]) > 10
    _same(ahead, every)
    assert ahead.meta["sim_events"] < every.meta["sim_events"] / 2


@pytest.mark.parametrize("name", ["compute-no-converge-suspend", "compute-no-converge-minimal",
                                  "maintenance", "compute-maintenance-under-load"])
def test_catalogue_migrations_are_the_same_as_waking_at_every_step(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sc = load_scenario(CATALOGUE / f"{name}.yaml")
    ahead, _ = _run(sc, monkeypatch, live.RUN_AHEAD)
    every, _ = _run(sc, monkeypatch, 1)
    assert len(ahead["migrations"]) > 0
    _same(ahead, every)
    assert ahead.meta["sim_events"] <= every.meta["sim_events"]


@pytest.mark.parametrize("at_s", [603.0, 630.0])
@pytest.mark.parametrize("duration_s", [7.0, 23.0, 61.0])
def test_a_rate_change_in_the_middle_of_steps_run_ahead(
        at_s: float, duration_s: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """The evacuating host's link slows down, and recovers, while its VMs migrate: the
    migrations replay the steps before each change (in an availability year the rates only
    change when a migration starts, before its first step)."""
    sc = with_overrides(load_scenario(CATALOGUE / "maintenance.yaml"), {"faults": [
        {"kind": "link_slowdown", "target": "host3", "at_s": at_s, "duration_s": duration_s,
         "rate_mbit": 300}]})
    ahead, replays = _run(sc, monkeypatch, live.RUN_AHEAD)
    every, _ = _run(sc, monkeypatch, 1)
    assert replays > 0
    _same(ahead, every)
