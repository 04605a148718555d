"""What a settle keeps from the last one (issue 16's speed) is what it would derive again:
the heal's healer counts and sources (hcisim/model/selfheal.py), the disks' writers and
ledger groups (hcisim/model/diskflows.py). Checked at every settle of runs that heal after
power losses, NIC cuts, maintenance and quorum loss, on sharded and unsharded volumes, and
on drawn availability years."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hcisim.availability import load_failure_table, plan_study, replication_scenario
from hcisim.model import diskflows, simulate
from hcisim.model.elaborate import BrickModel, VolumeModel
from hcisim.model.heal import BrickHeal
from hcisim.model.probes import WriteLedger
from hcisim.model.selfheal import SelfHeal
from hcisim.observations import Observations
from hcisim.scenario import Scenario, load_scenario

CATALOGUE = Path(__file__).resolve().parents[2] / "scenarios"
RUNS = ["replica3-power-loss", "storage-nic-loss", "maintenance", "two-failures-quorum",
        "arbiter-power-loss", "unsharded-heal", "year-0", "year-1"]


def _scenario(name: str) -> Scenario:
    if name.startswith("year-"):
        replication = int(name.split("-")[1])
        plan = plan_study(load_scenario(None), 1.0, replication + 1)
        return replication_scenario(plan.base, plan.runs[replication], load_failure_table())
    return load_scenario(CATALOGUE / f"{name}.yaml")


@pytest.mark.parametrize("name", RUNS)
def test_kept_healers_and_sources_are_those_derived_again(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every answer a memo gives is the one the derivation gives at that instant."""
    asked = {"healers": 0, "sources": 0}
    healers_now, source_now = SelfHeal._healers_now, SelfHeal._source_now

    def healers(heal: SelfHeal, vol: VolumeModel, target: BrickModel) -> tuple[int, float]:
        got = healers_now(heal, vol, target)
        assert got == heal._healers_and_cores(vol, target)
        asked["healers"] += 1
        return got

    def source(heal: SelfHeal, vol: VolumeModel, target: BrickModel,
               h: BrickHeal) -> BrickModel | None:
        got = source_now(heal, vol, target, h)
        assert got is (heal._source(vol, target) if heal.world.brick_serving(target)
                       else None)
        asked["sources"] += 1
        return got

    monkeypatch.setattr(SelfHeal, "_healers_now", healers)
    monkeypatch.setattr(SelfHeal, "_source_now", source)
    obs = simulate(_scenario(name), record="intervals")
    assert len(obs["heal"]) > 0
    assert asked["healers"] > 0


def _same(a: Observations, b: Observations) -> None:
    assert set(a.tables) == set(b.tables)
    for table in a.tables:
        pd.testing.assert_frame_equal(a[table], b[table], check_exact=True, obj=table)
    assert a.meta["sim_events"] == b.meta["sim_events"]
    assert a.meta["solver_calls"] == b.meta["solver_calls"]


@pytest.mark.parametrize("name", RUNS)
def test_kept_writers_and_ledger_groups_give_the_same_tables(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeping the ledger groups of kept plans (the ledger then extends their rows
    directly) gives the tables of deriving every group anew, bit for bit."""
    made = 0
    group = WriteLedger.group

    def counting(*args: Any) -> Any:
        nonlocal made
        made += 1
        return group(*args)

    sc = _scenario(name)
    monkeypatch.setattr(WriteLedger, "group", staticmethod(counting))
    kept = simulate(sc, record="full")
    kept_made, made = made, 0
    monkeypatch.setattr(diskflows, "KEEP", False)
    anew = simulate(sc, record="full")
    _same(kept, anew)
    assert len(kept["writes"]) > 0
    assert kept_made < made
