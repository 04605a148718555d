"""Unit tests of ``hcisim compare``: metrics, relative errors, files (engines stubbed)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hcisim.compare import compare_observations, run_compare, write_comparison
from hcisim.lab.scale import LabScale
from hcisim.observations import Observations, Recorder
from hcisim.scenario import Scenario
from tests.lab.scenarios import small


def _obs(sc: Scenario, engine: str, mb_s: float, stall: float, heal_s: float,
         healed: float) -> Observations:
    r = Recorder()
    r.add("vm_io", "vm1", "data", 0.0, 5.0, 1.0, mb_s, 0.0, 10.0, 0.0, 1.0, 2.0, "ok")
    r.add("vm_io", "vm1", "data", 5.0, 5.0 + stall, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
          "stalled")
    r.add("vm_io", "vm1", "data", 5.0 + stall, 20.0, 1.0, mb_s, 0.0, 10.0, 0.0, 1.0, 2.0, "ok")
    r.add("heal", "data", "host2", 10.0, 10.0 + heal_s, healed, 3)
    return r.build(engine, sc.name, sc.seed, 20.0)


def test_relative_errors_per_metric() -> None:
    sc = small()
    model = _obs(sc, "model", mb_s=2.0, stall=5.0, heal_s=1.0, healed=4e6)
    lab = _obs(sc, "lab:netns", mb_s=1.0, stall=7.0, heal_s=4.0, healed=0.0)
    t = compare_observations(sc, model, lab).set_index(["metric", "subject"])
    assert t.loc[("max_stall", "vm1"), "model"] == pytest.approx(5.0)
    assert t.loc[("max_stall", "vm1"), "lab"] == pytest.approx(7.0)
    assert t.loc[("max_stall", "vm1"), "rel_error"] == pytest.approx(-2 / 7)
    rows = {(r["metric"], r["subject"]): r for r in t.reset_index().to_dict("records")}
    m, lb = rows[("throughput", "vm1")]["model"], rows[("throughput", "vm1")]["lab"]
    assert rows[("throughput", "vm1")]["rel_error"] == pytest.approx((m - lb) / lb)
    assert t.loc[("heal_time", "data"), "rel_error"] == pytest.approx(-0.75)
    assert math.isnan(rows[("bytes_healed", "data")]["rel_error"])  # lab measured 0
    assert t.loc[("bytes_healed", "data"), "abs_error"] == pytest.approx(4.0)
    assert rows[("io_error", "vm1")]["model"] == rows[("io_error", "vm1")]["lab"] == 0.0
    # no repair in these runs: heal after the repair has no value on either side
    assert math.isnan(rows[("heal_after_repair", "data")]["model"])


def test_model_runs_first_on_the_as_built_scenario(tmp_path: Path) -> None:
    sc = small()
    calls: list[tuple[str, Scenario, dict[str, Any]]] = []

    def engine(s: Scenario, engine: str, options: dict[str, Any] | None = None) -> Observations:
        calls.append((engine, s, options or {}))
        return _obs(s, engine, 1.0, 6.0, 2.0, 1e6)

    c = run_compare(sc, {"size_scale": 0.5, "io_scale": 0.25}, engine_observations=engine)
    assert [e for e, _, _ in calls] == ["model", "lab"]
    assert calls[1][2] == {"size_scale": 0.5, "io_scale": 0.25}
    assert calls[0][1].volumes[0].size_gb == pytest.approx(sc.volumes[0].size_gb * 0.5)
    assert c.scenario == calls[0][1]
    files = write_comparison(c, tmp_path)
    assert [f.name for f in files] == ["compare.csv", "compare.json", "compare.png"]
    assert all(f.stat().st_size > 0 for f in files)
    rows = json.loads((tmp_path / "compare.json").read_text())["rows"]
    # per VM throughput, max_stall, io_error; per volume heal_time, heal_after_repair,
    # bytes_healed
    assert len(rows) == len(pd.read_csv(tmp_path / "compare.csv")) == 6
    assert (tmp_path / "lab" / "observations" / "meta.json").exists()
    assert LabScale.fit(sc, 0.5, 0.25) == LabScale(0.5, 0.25)
