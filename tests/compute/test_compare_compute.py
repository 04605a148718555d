"""``hcisim compare``'s compute rows: a real model run against saved lab observations.

The lab side is written as the guest harness records it (qemu's ``query-migrate``
counters in the ``migrations`` table, QMP STOP/RESUME as ``vm_state``), so every expected
lab value and every relative error is computed here by hand from those rows.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import pandas as pd
import pytest

from hcisim.compare import compare_observations
from hcisim.model.compute.migration import ConstantBandwidth, GuestMemory, migrate
from hcisim.observations import Observations, Recorder
from hcisim.runner import engine_observations
from hcisim.scenario import Scenario
from tests.claims.cases import scenario, state


def _scenario() -> Scenario:
    """a (2 GiB, 0.5 GiB touched, 64 MiB hot at 4 MB/s) migrates host1 -> host3 at 50 s."""
    sc = scenario(faults=[], duration_s=300, operations=[
        {"at_s": 50, "kind": "migrate", "vm": "a", "host": "host3"}])
    data = sc.model_dump(exclude_none=True)
    data["vms"][0].update(ram_gib=2, touched_ram_gib=0.5, working_set_gib=0.0625,
                          dirty_rate_mb_s=4)
    data["compute"] = {"migration": {"max_bandwidth_mb_s": 100}}
    return Scenario.model_validate(data)


@cache
def _model() -> tuple[Scenario, Observations]:
    sc = _scenario()
    return sc, engine_observations(sc, "model")


def _lab(sc: Scenario) -> Observations:
    """The lab: a's migration took 6.2 s, 90 ms down, 560 MB, 3 passes; c paused 12 s on an
    I/O error with its disk stalled 3 s right before; the source's switch-over pause."""
    rec = Recorder()
    rec.add("migrations", "a", "host1", "host3", 50.0, 56.2, 0.09, 3, 560.0, "converged",
            "minimal_downtime")
    state(rec, "a", "host1", 0, 50)
    state(rec, "a", "host1", 50, 56.11, "migrating", "active")
    state(rec, "a", "host1", 56.11, 56.2, "paused", "migration")
    state(rec, "a", "host3", 56.2, 300)
    state(rec, "c", "host3", 0, 100)
    state(rec, "c", "host3", 100, 112, "paused", "io-error: Input/output error")
    state(rec, "c", "host3", 112, 300)
    rec.add("vm_io", "c", "data", 97.0, 100.0, 8.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, "stalled")
    return rec.build("lab+netns", sc.name, sc.seed, 300.0)


def _rows(table: pd.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    return {(str(r["metric"]), str(r["subject"])): {str(k): v for k, v in r.items()}
            for r in table.to_dict("records")}


def test_migration_rows_put_the_models_prediction_beside_qemus_counters() -> None:
    sc, model = _model()
    rows = _rows(compare_observations(sc, model, _lab(sc)))
    (mrow,) = model["migrations"].to_dict("records")
    # the migration has the management NIC to itself (1 Gb/s = 125 MB/s): capped at 100
    # MB/s while the VM runs, the whole 125 MB/s for the last pages
    pure = migrate(GuestMemory.of(2, 4, 0.0625, 0.5), sc.compute.migration,
                   ConstantBandwidth(125.0), 50.0)
    assert mrow["outcome"] == pure.outcome == "converged"
    total = rows[("migration_total", "a:1")]
    assert total["unit"] == "s" and total["lab"] == pytest.approx(6.2)
    assert total["model"] == pytest.approx(float(mrow["t_end_s"]) - float(mrow["t_start_s"]))
    assert total["model"] == pytest.approx(pure.total_s)
    assert total["rel_error"] == pytest.approx((total["model"] - 6.2) / 6.2)
    down = rows[("migration_downtime", "a:1")]
    assert down["unit"] == "ms" and down["lab"] == pytest.approx(90.0)
    assert down["model"] == pytest.approx(1000 * pure.downtime_s)
    ram = rows[("ram_transferred", "a:1")]
    assert ram["lab"] == 560.0 and ram["model"] == pytest.approx(pure.transferred_mb)
    assert rows[("migration_rounds", "a:1")]["lab"] == 3.0
    assert rows[("migration_rounds", "a:1")]["model"] == pure.rounds
    assert rows[("migration_moved", "a:1")]["model"] == rows[("migration_moved", "a:1")]["lab"]


def test_pauses_and_the_guest_visible_stall() -> None:
    sc, model = _model()
    rows = _rows(compare_observations(sc, model, _lab(sc)))
    # c paused on the lab only: the model's side is 0, not unknown; its error is -100 %
    assert rows[("paused_longest", "c")]["lab"] == 12.0
    assert rows[("paused_longest", "c")]["model"] == 0.0
    assert rows[("paused_longest", "c")]["rel_error"] == pytest.approx(-1.0)
    assert rows[("paused_total", "c")]["lab"] == 12.0 and rows[("pauses", "c")]["lab"] == 1.0
    # the 3 s stall runs into the pause: the guest stood still for 15 s
    assert rows[("guest_stall", "c")]["lab"] == pytest.approx(15.0)
    assert rows[("guest_stall", "c")]["model"] == pytest.approx(0.0)
    # the migration's switch-over is its downtime, not a pause: no pause rows for a
    assert ("paused_longest", "a") not in rows and ("guest_stall", "a") not in rows


def test_a_migration_only_one_side_made_has_no_error() -> None:
    sc, model = _model()
    empty = Recorder().build("lab+netns", sc.name, sc.seed, 300.0)
    rows = _rows(compare_observations(sc, model, empty))
    row = rows[("migration_total", "a:1")]
    assert row["model"] > 0 and math.isnan(row["lab"]) and math.isnan(row["rel_error"])



def test_compare_puts_the_ha_timeline_beside_the_labs() -> None:
    """The model's lease timeline of lab-ha-storage-cut beside lab-like observations (the
    events the lab's plane records): per host and VM, s after the fault."""
    from pathlib import Path

    from hcisim.model import StorageModel
    from hcisim.placement.ha_rules import lease_timeline
    from hcisim.scenario import load_scenario

    sc = load_scenario(Path(__file__).resolve().parents[2] / "scenarios" /
                       "lab-ha-storage-cut.yaml")
    model = StorageModel(sc).run()
    rec = Recorder()
    rec.fault_event(60.0, True, sc.faults[0])
    rec.event(5.0, "vm_started", "db1", "on host3: initial")  # before the fault: not HA
    rec.event(75.0, "lease_lost", "host3", "sanlock: check_our_lease failed")
    rec.event(75.5, "vm_down", "db1", "on host3: exited")
    rec.event(144.0, "lease_acquired", "db1", "on host1")
    rec.event(150.0, "vm_started", "db1", "on host1: db1 went down on host3")
    lab = rec.build("lab", sc.name, sc.seed, 300.0)
    table = compare_observations(sc, model, lab)
    ha = table[table["metric"].isin(["lease_lost", "lease_acquired", "ha_restart"])]
    got = {(m, s): (mv, lv) for m, s, mv, lv in
           zip(ha["metric"], ha["subject"], ha["model"], ha["lab"], strict=True)}
    tl = lease_timeline(sc.compute.fencing.lease_io_timeout_s, 0.0)
    boot = sc.vm("db1").boot_s
    assert got == {("lease_lost", "host3"): (pytest.approx(tl.holders_killed_s), 15.0),
                   ("lease_acquired", "db1"): (pytest.approx(tl.free_s), 84.0),
                   ("ha_restart", "db1"): (pytest.approx(tl.free_s + boot), 90.0)}
