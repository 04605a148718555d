"""An availability study: replications of Y simulated years of the SAME fluid model, each
with a fault schedule drawn from the failure table, run through the sweep machinery (local
processes or Dask), gathered per VM and per volume.

A study is a sweep plan: no factor (the scenario's own layout) or one factor
``volumes[*].type`` = replica3, arbiter (``compare_layouts``). Replication ``r`` has the
seed ``SeedSequence(seed, spawn_key=(r,))`` at every layout, and the fault schedule depends
only on that seed, so both layouts see the same failures at the same times (a paired
comparison, not two noisy ones).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hcisim.availability.metrics import vm_rows, volume_rows
from hcisim.availability.schedule import draw_schedule
from hcisim.availability.table import YEAR_S, FailureTable
from hcisim.scenario import Scenario, save_scenario, with_overrides
from hcisim.sweep import Factor, SweepPlan, SweepRun, execute, plan_sweep
from hcisim.sweep.execute import Execution, Mode

LAYOUT_PATH = "volumes[*].type"
LAYOUTS = ("replica3", "arbiter")
AS_SCENARIO = "scenario"


def prepare(base: Scenario, years: float) -> Scenario:
    """The scenario the replications start from: its cluster, VMs, workload phases and model
    calibration, none of its own faults, operations or claims, ``years`` long."""
    if years <= 0:
        raise ValueError(f"--years {years}: must be positive")
    return with_overrides(base, {"duration_s": years * YEAR_S, "faults": [],
                                 "operations": [], "claims": []})


def plan_study(base: Scenario, years: float, replications: int, seed: int | None = None,
               compare_layouts: bool = False) -> SweepPlan:
    factors = [Factor(LAYOUT_PATH, LAYOUTS)] if compare_layouts else []
    return plan_sweep(prepare(base, years), factors, replications, seed)


def layout_of(run: SweepRun) -> str:
    return str(dict(run.levels).get(LAYOUT_PATH, AS_SCENARIO))


def replication_scenario(base: Scenario, run: SweepRun, table: FailureTable) -> Scenario:
    """The run's scenario: its layout and seed, and the faults and maintenance drawn for it
    (plain dicts, validated by the scenario model like any scenario file)."""
    sc = with_overrides(base, dict(run.overrides))
    faults, ops = draw_schedule(sc, table, sc.duration_s, run.seed)
    return with_overrides(sc, {"faults": faults, "operations": ops})


def run_replication(base: Scenario, run: SweepRun, keep: str | None = None, *,
                    table: FailureTable) -> dict[str, Any]:
    """One replication as a row with its VM and volume rows (top-level: workers import it).
    A replication whose model run raises is a row with ``error`` set, like a sweep's."""
    from hcisim.model import simulate  # the model loads in the worker, not the parent

    row: dict[str, Any] = {"point": run.point, "replication": run.replication,
                           "seed": run.seed, "layout": layout_of(run), "error": "",
                           "vms": [], "volumes": []}
    started, cpu = time.perf_counter(), time.process_time()
    try:
        sc = replication_scenario(base, run, table)
        row["faults"], row["operations"] = len(sc.faults), len(sc.operations)
        # vm_io only as status intervals: the metrics read status and times, not rates
        # (simulate keeps the objects older than the run out of the cyclic GC meanwhile)
        obs = simulate(sc, record="intervals")
        row["sim_events"] = int(obs.meta.get("sim_events", 0))
        row["vms"], row["volumes"] = vm_rows(sc, obs), volume_rows(sc, obs)
        if keep is not None:
            out = Path(keep) / f"{row['layout']}-r{run.replication:04d}"
            out.mkdir(parents=True, exist_ok=True)
            save_scenario(sc, out / "scenario.yaml")
            obs.save(out)
    except Exception as exc:  # one failing replication is data, not the end of the study
        row["error"] = f"{type(exc).__name__}: {exc}"
    row["wall_s"] = round(time.perf_counter() - started, 4)
    row["cpu_s"] = round(time.process_time() - cpu, 4)  # its process's CPU: wall is shared
    return row


@dataclass(frozen=True)
class StudyTables:
    """Every replication: ``runs`` one row each, ``vms`` per VM, ``volumes`` per volume."""

    runs: pd.DataFrame
    vms: pd.DataFrame
    volumes: pd.DataFrame


def tables(rows: list[dict[str, Any]], years: float) -> StudyTables:
    keys = ["layout", "replication", "seed"]
    rows = sorted(rows, key=lambda r: (r["point"], r["replication"]))
    runs = pd.DataFrame([{k: v for k, v in r.items() if k not in ("vms", "volumes")}
                         for r in rows])
    runs["years"] = years
    vms = pd.DataFrame([{**{k: r[k] for k in keys}, **v} for r in rows for v in r["vms"]])
    vols = pd.DataFrame([{**{k: r[k] for k in keys}, **v} for r in rows for v in r["volumes"]])
    return StudyTables(runs, vms, vols)


def run_study(base: Scenario, table: FailureTable, years: float, replications: int,
              seed: int | None = None, compare_layouts: bool = False, workers: int = 1,
              dask: str | None = None, keep: Path | None = None,
              progress: Callable[[int, int], None] | None = None, mode: Mode = "auto",
              decided: Callable[[Execution], None] | None = None,
              ) -> tuple[SweepPlan, StudyTables]:
    """Run every replication (``workers``/``mode``/``dask`` as for a sweep: worker processes
    only when they are faster, unless ``mode`` says otherwise) and gather the tables."""
    plan = plan_study(base, years, replications, seed, compare_layouts)
    task = functools.partial(run_replication, table=table)
    rows = execute(plan, workers, dask, keep, progress, task=task, mode=mode, decided=decided)
    return plan, tables(rows, years)
