"""``hcisim sweep SCENARIO --set PATH=V1,V2``: a what-if grid with seeded replications."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pandas as pd
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from hcisim.cli import EXIT_ENGINE, UserError, err, error, friendly, out

if TYPE_CHECKING:
    from hcisim.sweep import Factor


HEADLINE = {"passed": "claims pass", "vms.max_io_stall_s.max": "max stall s",
            "vms.p99_latency_ms.max": "p99 ms", "volumes.heal_time_s.max": "heal s"}


def print_grid(factors: Sequence[Factor], table: pd.DataFrame) -> None:
    """Mean over replications of a few headline numbers, one line per grid point."""
    cols = [c for c in HEADLINE if c in table.columns]
    if not factors or not cols:
        return
    t = Table(title="Grid (mean over replications)", title_justify="left")
    for f in factors:
        t.add_column(f.path)
    for c in cols:
        t.add_column(HEADLINE[c], justify="right")
    numeric = table[[f.path for f in factors]].copy()
    for c in cols:
        numeric[c] = table[c].astype("float64")
    means = numeric.groupby([f.path for f in factors], sort=False)[cols].mean()
    for key, row in means.iterrows():
        levels = key if isinstance(key, tuple) else (key,)
        t.add_row(*map(str, levels), *(f"{row[c]:.2f}" for c in cols))
    out.print(t)


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def sweep(
        scenario: Annotated[Path | None, typer.Argument(
            help="scenario YAML; default: the built-in default scenario")] = None,
        set_: Annotated[list[str] | None, typer.Option(
            "--set", help="PATH=V1,V2,...: a factor (repeatable); PATH like "
            "volumes[1].type or hosts[*].ram_gib ([*]: every element)")] = None,
        replications: Annotated[int, typer.Option(
            "-r", "--replications", help="seeded runs per grid point")] = 1,
        seed: Annotated[int | None, typer.Option(
            help="base seed (default: the scenario's); replication seeds derive from it")
        ] = None,
        workers: Annotated[int | None, typer.Option(
            "-w", "--workers", help="worker processes (default: all cores; 1: serial)")] = None,
        dask: Annotated[str | None, typer.Option(
            help="run on this Dask scheduler (tcp://host:8786) instead of local processes")
        ] = None,
        keep_runs: Annotated[bool, typer.Option(
            help="also write every run's result folder under OUTPUT/runs")] = False,
        output: Annotated[Path | None, typer.Option(
            "-o", "--output", help="folder, must be empty (default: a new "
            "runs/sweep-<name>-<time>-<suffix>)")] = None,
        force: Annotated[bool, typer.Option(
            help="let -o replace an earlier result in that folder")] = False,
        quiet: Annotated[bool, typer.Option("-q", "--quiet")] = False,
    ) -> None:
        """Run the factorial grid of --set factors x replications on the model."""
        from hcisim.results import provenance, result_folder
        from hcisim.scenario import load_scenario
        from hcisim.sweep import (
            SweepError,
            errors,
            execute,
            parse_set,
            plan_sweep,
            results_table,
            write_sweep,
        )

        base = load_scenario(scenario)
        try:
            plan = plan_sweep(base, [parse_set(s) for s in set_ or []], replications, seed)
        except SweepError as exc:
            raise UserError(str(exc)) from None
        n_workers = workers if workers is not None else (os.cpu_count() or 1)
        if n_workers < 1:
            raise UserError(f"--workers {n_workers}: must be at least 1")
        dest = result_folder(output, f"sweep-{base.name}", force)
        where = f"Dask at {dask}" if dask else f"up to {min(n_workers, len(plan.runs))} worker(s)"
        started = time.perf_counter()
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=err,
                      disable=quiet) as bar:
            task = bar.add_task(f"{plan.points} points x {replications} on {where}",
                                total=len(plan.runs))
            chosen: list[str] = []  # execute() runs serially when workers would be slower
            try:
                rows = execute(plan, n_workers, dask, dest / "runs" if keep_runs else None,
                               progress=lambda done, _: bar.update(task, completed=done),
                               decided=lambda how: chosen.append(how.describe()))
            except SweepError as exc:
                raise UserError(str(exc)) from None
        wall = time.perf_counter() - started
        where = chosen[0] if chosen else where
        table = results_table(plan, rows)
        paths = write_sweep(plan, table, dest, {"executor": where, "wall_s": round(wall, 3),
                                                "provenance": provenance()})
        if not quiet:
            print_grid(plan.factors, table)
        out.print(f"{len(plan.runs)} runs in {wall:.1f} s on {where}; "
                  f"results: {paths['results.csv']}, plots: {paths['index.html']}",
                  markup=False, highlight=False, soft_wrap=True)
        failed = errors(rows)
        if failed:
            error(f"{len(failed)} runs failed, first: {failed[0]}")
            raise typer.Exit(EXIT_ENGINE)
