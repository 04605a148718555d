"""Sweeps of real model runs: rows equal direct runs, and the table does not depend on how
(or in what order) the runs were executed: serial, worker processes or a Dask cluster."""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from hcisim.cli import sweep as sweep_cli
from hcisim.runner import run_scenario
from hcisim.scenario import load_scenario, with_overrides
from hcisim.sweep import execute, parse_set, plan_sweep, results_table, run_row, write_sweep

BASE = load_scenario("scenarios/default.yaml")
FACTOR = "volumes[1].type=replica3,arbiter"

app = typer.Typer()
app.callback()(lambda: None)  # a command group, as `hcisim` is
sweep_cli.register(app)


def _table(plan_args: list[str], replications: int, **how: object) -> pd.DataFrame:
    plan = plan_sweep(BASE, [parse_set(a) for a in plan_args], replications)
    return results_table(plan, execute(plan, **how))  # type: ignore[arg-type]


def test_row_equals_a_direct_run() -> None:
    """The sweep adds nothing and loses nothing: its row is the row of a plain run."""
    plan = plan_sweep(BASE, [parse_set(FACTOR)], replications=2)
    run = plan.runs[3]  # arbiter, replication 1
    direct = run_scenario(with_overrides(BASE, dict(run.overrides)), engine="model")
    expected = run_row(run, direct)
    [row] = [r for r in execute(plan) if r["point"] == run.point
             and r["replication"] == run.replication]
    assert row.keys() == expected.keys()
    for k, v in expected.items():
        assert row[k] == v or (isinstance(v, float) and math.isnan(v) and math.isnan(row[k]))
    assert direct.scenario.volumes[1].type == "arbiter"
    assert direct.scenario.seed == run.seed


def test_table_has_factors_seeds_claims_and_metrics() -> None:
    df = _table([FACTOR], 2)
    assert list(df.columns[:5]) == ["volumes[1].type", "point", "replication", "seed", "error"]
    assert list(df["volumes[1].type"]) == ["replica3", "replica3", "arbiter", "arbiter"]
    for claim in BASE.claims:
        name = claim.name or claim.kind
        assert df[f"claim.{name}.verdict"].isin(["pass", "fail", "n/a"]).all()
        assert f"claim.{name}.measured" in df.columns
    for col in ("vms.max_io_stall_s.max", "vms.p99_latency_ms.mean", "volume.data.heal_time_s",
                "volumes.bytes_healed.sum", "passed"):
        assert col in df.columns
    assert (df["error"] == "").all()
    # the seed comes from the replication, not the grid point: common random numbers
    assert df.groupby("replication")["seed"].nunique().eq(1).all()
    assert df["seed"].nunique() == 2
    # host2 loses power silently: every VM on the others stalls at least one ping-timeout
    assert (df["vms.max_io_stall_s.max"] >= BASE.volumes[1].options.ping_timeout_s).all()


def test_adding_a_level_leaves_other_runs_unchanged() -> None:
    one = _table(["volumes[1].type=replica3"], 2)
    two = _table([FACTOR], 2)
    same = two[two["volumes[1].type"] == "replica3"].reset_index(drop=True)
    pd.testing.assert_frame_equal(one, same)


@pytest.mark.slow
def test_same_table_serial_processes_and_dask() -> None:
    """Determinism: 1 worker, 2 worker processes and a local Dask cluster agree exactly."""
    distributed: Any = importlib.import_module("distributed")  # no complete type hints

    args = ["hosts[*].nics[1].gbps=10,25"]
    serial = _table(args, 2, workers=1)
    pooled = _table(args, 2, workers=2, mode="processes")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        dask = _table(args, 2, dask=cluster.scheduler_address)
    pd.testing.assert_frame_equal(serial, pooled)
    pd.testing.assert_frame_equal(serial, dask)
    assert len(serial) == 4 and serial["seed"].nunique() == 2


def test_cli_writes_table_plots_and_index(tmp_path: Path) -> None:
    out = tmp_path / "sw"
    result = CliRunner().invoke(app, ["sweep", "scenarios/default.yaml", "--set", FACTOR,
                                      "--set", "hosts[*].ram_gib=256,512", "-r", "1",
                                      "-w", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    parquet = pd.read_parquet(out / "results.parquet")
    csv = pd.read_csv(out / "results.csv")
    assert len(parquet) == len(csv) == 4
    assert list(parquet.columns) == list(csv.columns)
    assert csv["seed"].tolist() == parquet["seed"].tolist()
    html = (out / "index.html").read_text()
    assert html.count('src="data:image/png;base64,') == 2
    for name in ("volumes_1_.type.png", "hosts_.ram_gib.png"):
        assert f'href="plots/{name}"' in html  # and inline:
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_cli_bad_set_fails_before_any_run(tmp_path: Path) -> None:
    out = tmp_path / "sw"
    result = CliRunner().invoke(app, ["sweep", "scenarios/default.yaml", "--set", FACTOR,
                                      "--set", "hosts[0].nics[1].gbps=10,fast", "-o", str(out)])
    assert result.exit_code == 2
    assert "hosts[0].nics[1].gbps=fast" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_write_sweep_records_how_it_was_made(tmp_path: Path) -> None:
    plan = plan_sweep(BASE, [parse_set(FACTOR)], 1)
    table = results_table(plan, execute(plan))
    paths = write_sweep(plan, table, tmp_path, {"executor": "test"})
    info = paths["sweep.json"].read_text()
    assert '"base_seed": 42' in info and '"executor": "test"' in info
    assert load_scenario(paths["scenario.yaml"]) == BASE
