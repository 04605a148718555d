"""``hcisim validate``: the matrix is not the calibration set, and one case run model
against model gives a table with zero error and its CSV, JSON and HTML."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import median
from typing import Any

import pandas as pd
import pytest

from hcisim.calibration.experiments import EXPERIMENTS
from hcisim.calibration.validate import (
    COLUMNS,
    _observe,
    in_band,
    load_lab_runs,
    matrix,
    run_matrix,
    select,
    table,
)

from .test_campaign import hcisim


def test_the_matrix_is_not_the_calibration_set() -> None:
    cal = {(f["kind"], c.scenario.volumes[0].options.ping_timeout_s, f["at_s"])
           for e in EXPERIMENTS.values() for trial in range(10) for c in e.cases(trial, None)
           for f in [x.model_dump() for x in c.scenario.faults[:1]]}  # (no-fault: none)
    val = matrix()
    assert len({c.label for c in val}) == len(val)
    for c in val:
        f = c.scenario.faults[0]
        assert (f.kind, c.scenario.volumes[0].options.ping_timeout_s, f.at_s) not in cal
    kinds = {c.scenario.faults[0].kind for c in val}
    assert {"node_power_loss", "nic_loss", "node_hang", "brick_hang", "brick_crash",
            "partition", "link_slowdown", "disk_failure"} <= kinds
    assert {c.scenario.volumes[0].type for c in val} == {"replica3", "arbiter"}


def test_unknown_case_is_named() -> None:
    with pytest.raises(ValueError, match="unknown validation case"):
        select(matrix(), ["power-loss-r9"])


def test_one_case_model_against_model_has_no_error() -> None:
    runs = run_matrix(select(matrix(), ["brick-crash-r3"]), "model", repeat=2)
    df = table(runs)
    assert list(df.columns) == COLUMNS
    assert set(df["metric"]) >= {"max_stall", "throughput", "heal_time", "bytes_healed"}
    judged = df.dropna(subset=["rel_error"])
    assert not judged.empty
    assert (judged["rel_error"].abs() < 1e-9).all()
    assert df["lab_in_model_band"].dropna().all()
    assert (df["n_model"] == 2).all() and (df["n_lab"] == 2).all()


def test_cli_validate_writes_csv_json_html(tmp_path: Path) -> None:
    out = tmp_path / "v"
    r = hcisim("validate", "--engine", "model", "--cases", "brick-crash-r3", "--repeat", "1",
               "-o", str(out))
    assert r.exit_code == 0, r.stderr
    df = pd.read_csv(out / "validate.csv")
    assert set(df["case"]) == {"brick-crash-r3"}
    js = json.loads((out / "validate.json").read_text())
    assert js["engine"] == "model" and js["rows"]
    html = (out / "validate.html").read_text()
    assert "brick-crash-r3" in html and "max_stall" in html
    bad = hcisim("validate", "--engine", "model", "--cases", "nope", "-o", str(tmp_path / "w"))
    assert bad.exit_code == 2 and "unknown validation case" in bad.stderr


def test_the_band_judges_only_what_the_model_draws() -> None:
    """The lab's median inside the model's range, for random quantities only: where every
    model run gave one value the band has no width and says nothing (not judged)."""
    assert in_band((1.0, 3.0), 2.0) is True
    assert in_band((1.0, 3.0), 3.5) is False
    assert in_band((2.0, 2.0), 2.0) is None  # one value: not random in the model
    assert in_band((1.0, 3.0), math.nan) is None  # no lab value


def test_cli_keep_logs_needs_a_lab(tmp_path: Path) -> None:
    r = hcisim("validate", "--engine", "model", "--cases", "brick-crash-r3", "--repeat", "1",
               "--keep-logs", str(tmp_path / "logs"), "-o", str(tmp_path / "v"))
    assert r.exit_code == 2 and "keeps no logs" in r.stderr
    assert not (tmp_path / "logs").exists()


def test_lab_runs_keep_their_logs_per_case_and_run(tmp_path: Path) -> None:
    seen: list[object] = []

    def observe(engine: str, sc: Any, options: Any) -> Any:
        seen.append((options or {}).get("keep_logs"))
        return _observe("model", sc, None)

    run_matrix(select(matrix(), ["brick-crash-r3"]), "lab+netns", 2, {"size_scale": 1.0},
               observe_fn=observe, logs=tmp_path)
    # model runs keep nothing; each lab run its own folder
    assert [x for x in seen if x is not None] == [tmp_path / "brick-crash-r3-1",
                                                   tmp_path / "brick-crash-r3-2"]


STORED = Path(__file__).parents[2] / "lab" / "validation" / "2026-11-30-quiet-s12.json"


def test_an_older_result_gives_its_lab_statistics_back() -> None:
    """A validate.json from before the runs were stored (session 12's quiet run): the
    stand-in runs give every row's lab median, min and max exactly."""
    stored = load_lab_runs(STORED)
    rows = json.loads(STORED.read_text())["rows"]
    assert stored.engine == "lab+netns" and set(stored.runs) == {r["case"] for r in rows}
    for row in rows:
        key = (row["metric"], row["subject"], row["unit"])
        values = [run[key] for run in stored.runs[row["case"]] if key in run]
        if row["n_lab"] == 0 or row["lab_median"] is None:
            assert not values
            continue
        assert median(values) == pytest.approx(row["lab_median"])
        assert (min(values), max(values)) == pytest.approx((row["lab_min"], row["lab_max"]))


def test_lab_from_judges_a_model_against_the_stored_runs(tmp_path: Path) -> None:
    """A validation result now keeps every lab run; --lab-from re-judges the model with
    them (here: a model-as-lab run, so the re-judged table has no error), runs no lab,
    and names what is wrong with a bad file or a case it lacks."""
    first = tmp_path / "first"
    r = hcisim("validate", "--engine", "model", "--cases", "brick-crash-r3", "--repeat", "2",
               "-o", str(first))
    assert r.exit_code == 0, r.stderr
    kept = json.loads((first / "validate.json").read_text())["lab_runs"]["brick-crash-r3"]
    assert len(kept) == 2 and all(run for run in kept)
    again = tmp_path / "again"
    r = hcisim("validate", "--lab-from", str(first / "validate.json"), "--cases",
               "brick-crash-r3", "--repeat", "2", "-o", str(again))
    assert r.exit_code == 0, r.stderr
    # a validation result is a result folder: --force replaces it
    r = hcisim("validate", "--lab-from", str(first / "validate.json"), "--cases",
               "brick-crash-r3", "--repeat", "2", "-o", str(again), "--force")
    assert r.exit_code == 0, r.stderr
    a = pd.read_csv(first / "validate.csv")
    b = pd.read_csv(again / "validate.csv")
    pd.testing.assert_frame_equal(a, b)
    missing = hcisim("validate", "--lab-from", str(first / "validate.json"), "--cases",
                     "partition-r3-t5", "-o", str(tmp_path / "m"))
    assert missing.exit_code == 2 and "no lab runs of partition-r3-t5" in missing.stderr
    junk = tmp_path / "junk.json"
    junk.write_text("[1, 2]")
    bad = hcisim("validate", "--lab-from", str(junk), "-o", str(tmp_path / "b"))
    assert bad.exit_code == 2 and "not a validate.json" in bad.stderr
