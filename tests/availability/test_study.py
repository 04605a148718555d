"""Studies end to end: the same table however they are executed, paired layouts, a failing
replication kept as a row, and the `hcisim availability` command's outputs and errors."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hcisim.availability import study as study_mod
from hcisim.availability.study import plan_study, replication_scenario, run_study
from hcisim.availability.summary import summarize_study
from tests.availability.conftest import DAY_YEARS, brick_table, replica_set_scenario

TABLE = brick_table(200.0, 6.0, {"power": {
    "fault": "node_power_loss", "rate_per_year": 40.0,
    "repair": {"dist": "lognormal", "mean_h": 1.0, "sigma": 0.5}}})


def hcisim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from hcisim.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=600)


def test_serial_and_processes_give_the_same_tables() -> None:
    sc = replica_set_scenario(vm=True)
    _, serial = run_study(sc, TABLE, 5 * DAY_YEARS, 3, seed=9, workers=1)
    _, procs = run_study(sc, TABLE, 5 * DAY_YEARS, 3, seed=9, workers=2, mode="processes")
    assert serial.runs["faults"].sum() > 0
    drop = ["wall_s", "cpu_s"]  # measured, not simulated
    pd.testing.assert_frame_equal(serial.runs.drop(columns=drop), procs.runs.drop(columns=drop))
    pd.testing.assert_frame_equal(serial.vms, procs.vms)
    pd.testing.assert_frame_equal(serial.volumes, procs.volumes)


def test_a_worker_imports_no_plotting() -> None:
    """What a worker process imports to run replications (the task, its pickled scenario
    and run, the model) leaves matplotlib out: it would add about a second to every worker's
    start (the page and its plots are made by the parent)."""
    code = ("import sys\n"
            "from hcisim.availability.study import run_replication\n"
            "from hcisim.sweep import SweepRun\n"
            "import hcisim.model\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_dask_gives_the_same_tables() -> None:
    pytest.importorskip("distributed", reason="Dask is an optional extra (hcisim[dask])")
    distributed: Any = importlib.import_module("distributed")  # no complete type hints
    sc = replica_set_scenario(vm=True)
    _, serial = run_study(sc, TABLE, 5 * DAY_YEARS, 2, seed=9, workers=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        _, dask = run_study(sc, TABLE, 5 * DAY_YEARS, 2, seed=9,
                            dask=cluster.scheduler_address)
    pd.testing.assert_frame_equal(serial.vms, dask.vms)
    pd.testing.assert_frame_equal(serial.volumes, dask.volumes)


def test_layouts_see_the_same_failures() -> None:
    sc = replica_set_scenario(vm=True)
    plan = plan_study(sc, 5 * DAY_YEARS, 2, seed=4, compare_layouts=True)
    by_layout: dict[str, list[object]] = {}
    for run in plan.runs:
        s = replication_scenario(plan.base, run, TABLE)
        by_layout.setdefault(s.volumes[0].type, []).append(s.faults)
    assert by_layout["replica3"] == by_layout["arbiter"]
    assert all(by_layout["replica3"])


def test_a_failing_replication_is_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("model exploded")

    monkeypatch.setattr(study_mod, "replication_scenario", boom)
    _, t = run_study(replica_set_scenario(), TABLE, DAY_YEARS, 2, workers=1)
    assert list(t.runs["error"]) == ["RuntimeError: model exploded"] * 2
    s = summarize_study(t, DAY_YEARS)
    assert s["layouts"]["scenario"]["failed"] == 2


def test_command_writes_every_replication_and_the_page(tmp_path: Path) -> None:
    scen = tmp_path / "small.yaml"
    scen.write_text(json.dumps(replica_set_scenario(vm=True).model_dump(mode="json")))
    table = tmp_path / "table.yaml"
    table.write_text("processes:\n  node_crash: {rate_per_year: 40}\n"
                     "maintenance: {interval_days: 2}\n")
    out = tmp_path / "out"
    r = hcisim("availability", str(scen), "--years", "0.02", "-r", "2", "-w", "1",
               "--compare-layouts", "--failure-table", str(table), "-o", str(out),
               "--keep-runs")
    assert r.returncode == 0, r.stderr
    kept = sorted(p.name for p in (out / "runs").iterdir())
    assert kept == ["arbiter-r0000", "arbiter-r0001", "replica3-r0000", "replica3-r0001"]
    assert (out / "runs" / "arbiter-r0001" / "scenario.yaml").exists()
    again = hcisim("availability", str(scen), "--years", "0.02", "-r", "1", "-o", str(out))
    assert again.returncode == 2 and "not empty" in again.stderr
    assert "page:" in r.stdout
    runs = pd.read_parquet(out / "runs.parquet")
    assert sorted(runs["layout"]) == ["arbiter", "arbiter", "replica3", "replica3"]
    assert (runs["faults"] > 0).all() and (runs["operations"] > 0).all()
    vms = pd.read_csv(out / "vms.csv")
    assert set(vms["vm"]) == {"tiny"} and len(vms) == 4
    parts = vms[["stalled_s", "paused_s", "down_s"]]
    assert (vms["out_of_service_s"] >= parts.max(axis=1) - 1e-9).all()
    assert (vms["out_of_service_s"] <= parts.sum(axis=1) + 1e-9).all()
    assert (vms["out_of_service_s"] > 0).any()
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["layouts"]) == {"replica3", "arbiter"}
    vol = summary["layouts"]["arbiter"]["volumes"]["data"]
    assert vol["p_quorum_lost"]["years"] == 2
    page = (out / "index.html").read_text()
    assert "Layout: arbiter" in page and "data:image/png;base64," in page
    assert (out / "plots" / "cdf.png").stat().st_size > 0


@pytest.mark.parametrize(("args", "message"), [
    (["--years", "0"], "--years 0.0: must be a positive number"),
    (["-r", "0"], "--replications 0: must be at least 1"),
    (["--failure-table", "/nonexistent/t.yaml"], "cannot read file"),
])
def test_bad_input_is_a_clear_error(args: list[str], message: str) -> None:
    r = hcisim("availability", *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_bad_table_names_the_field(tmp_path: Path) -> None:
    t = tmp_path / "t.yaml"
    t.write_text("processes:\n  disk: {repair: {dist: gamma, mean_h: 3}}\n")
    r = hcisim("availability", "--failure-table", str(t))
    assert r.returncode == 2
    assert "processes.disk.repair.dist" in r.stderr and "Traceback" not in r.stderr


def test_interval_recording_gives_the_same_metrics() -> None:
    """Replications record vm_io as status intervals only; the metrics are those of the
    full record."""
    from hcisim.availability.metrics import vm_rows, volume_rows
    from hcisim.model import simulate

    plan = plan_study(replica_set_scenario(vm=True), 5 * DAY_YEARS, 2, seed=8)
    stalled = 0.0
    for run in plan.runs:
        sc = replication_scenario(plan.base, run, TABLE)
        full, lean = simulate(sc), simulate(sc, record="intervals")
        assert vm_rows(sc, full) == vm_rows(sc, lean)
        assert volume_rows(sc, full) == volume_rows(sc, lean)
        stalled += sum(r["stalled_s"] + r["paused_s"] for r in vm_rows(sc, full))
    assert stalled > 0  # the VM really was hit
