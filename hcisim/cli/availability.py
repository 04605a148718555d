"""``hcisim availability SCENARIO --years Y --replications R``: Monte Carlo years of the
model with failures drawn from a failure table (docs/availability.md)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Annotated, Any

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

from hcisim.cli import UserError, err, friendly, out

DEFAULT_REPLICATIONS = 40


def print_summary(summary: dict[str, Any]) -> None:
    """Per layout and volume: probabilities per year and exposure; the worst VM's times."""
    t = Table(title="Per volume (mean per year; P = share of years with it)",
              title_justify="left")
    for c in ("layout", "volume", "P(quorum loss)", "P(unavailable)", "P(data loss)",
              "no quorum min", "fewer copies h", "one copy h"):
        t.add_column(c, justify="left" if c in ("layout", "volume") else "right")
    for layout, lay in summary["layouts"].items():
        for vol, e in lay["volumes"].items():
            t.add_row(layout, vol, *(f"{e[k]['p']:.3f}" for k in (
                "p_quorum_lost", "p_unavailable", "p_data_lost")),
                f"{e['quorum_lost_s']['mean'] / 60:.2f}",
                f"{e['fewer_copies_s']['mean'] / 3600:.2f}",
                f"{e['one_copy_s']['mean'] / 3600:.2f}")
    out.print(t)
    v = Table(title="VMs (worst VM; mean per year [95 % CI])", title_justify="left")
    for c in ("layout", "stalled s", "paused s", "I/O error s", "HA down min"):
        v.add_column(c, justify="left" if c == "layout" else "right")
    for layout, lay in summary["layouts"].items():
        cells = []
        for m, div, ha_only in (("stalled_s", 1, False), ("paused_s", 1, False),
                                ("error_s", 1, False), ("down_s", 60, True)):
            vms = [(n, e[m]) for n, e in lay["vms"].items() if e["ha"] or not ha_only]
            vms = [(n, e) for n, e in vms if not math.isnan(e["mean"])]
            if not vms:
                cells.append("-")
                continue
            n, e = max(vms, key=lambda x: x[1]["mean"])
            cells.append(f"{e['mean'] / div:.1f} [{e['ci_low'] / div:.1f}, "
                         f"{e['ci_high'] / div:.1f}] {n}")
        v.add_row(layout, *cells)
    out.print(v)


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def availability(
        scenario: Annotated[Path | None, typer.Argument(
            help="scenario YAML; default: the built-in default scenario")] = None,
        years: Annotated[float, typer.Option(
            "-y", "--years", help="simulated years per replication")] = 1.0,
        replications: Annotated[int, typer.Option(
            "-r", "--replications", help="independent replications (per layout)")
        ] = DEFAULT_REPLICATIONS,
        seed: Annotated[int | None, typer.Option(
            help="base seed (default: the scenario's); replication seeds derive from it")
        ] = None,
        failure_table: Annotated[Path | None, typer.Option(
            "--failure-table", help="YAML merged over the default failure table")] = None,
        compare_layouts: Annotated[bool, typer.Option(
            "--compare-layouts", help="run every volume as replica3 and as arbiter, with "
            "the same failures")] = False,
        workers: Annotated[int | None, typer.Option(
            "-w", "--workers", help="worker processes (default: all cores; 1: serial)")] = None,
        dask: Annotated[str | None, typer.Option(
            help="run on this Dask scheduler (tcp://host:8786) instead of local processes")
        ] = None,
        keep_runs: Annotated[bool, typer.Option(
            help="also write every replication's scenario and observations under "
            "OUTPUT/runs")] = False,
        output: Annotated[Path | None, typer.Option(
            "-o", "--output", help="folder, must be empty (default: a new "
            "runs/availability-<name>-<time>-<suffix>)")] = None,
        force: Annotated[bool, typer.Option(
            help="let -o replace an earlier result in that folder")] = False,
        quiet: Annotated[bool, typer.Option("-q", "--quiet")] = False,
    ) -> None:
        """Years of failures and repairs on the model: stalls, pauses, downtime, quorum loss,
        exposure and data loss per VM and volume, with confidence intervals."""
        from hcisim.availability import FailureTableError, load_failure_table, run_study
        from hcisim.availability.report import write_study
        from hcisim.availability.summary import summarize_study
        from hcisim.results.journal import provenance
        from hcisim.results.store import result_folder
        from hcisim.scenario import load_scenario
        from hcisim.sweep import SweepError

        if not years > 0 or math.isinf(years):
            raise UserError(f"--years {years}: must be a positive number")
        if replications < 1:
            raise UserError(f"--replications {replications}: must be at least 1")
        n_workers = workers if workers is not None else (os.cpu_count() or 1)
        if n_workers < 1:
            raise UserError(f"--workers {n_workers}: must be at least 1")
        try:
            table = load_failure_table(failure_table)
        except FailureTableError as exc:
            raise UserError(str(exc)) from None
        base = load_scenario(scenario)
        dest = result_folder(output, f"availability-{base.name}", force)
        runs = replications * (2 if compare_layouts else 1)
        where = f"Dask at {dask}" if dask else f"up to {min(n_workers, runs)} worker(s)"
        chosen: list[str] = []  # execute() runs serially when workers would be slower
        started = time.perf_counter()
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=err,
                      disable=quiet) as bar:
            task = bar.add_task(f"{runs} replications x {years:g} y on {where}", total=runs)
            try:
                plan, tables = run_study(
                    base, table, years, replications, seed, compare_layouts, n_workers, dask,
                    dest / "runs" if keep_runs else None,
                    progress=lambda done, _: bar.update(task, completed=done),
                    decided=lambda how: chosen.append(how.describe()))
            except SweepError as exc:
                raise UserError(str(exc)) from None
        wall = time.perf_counter() - started
        where = chosen[0] if chosen else where
        summary = summarize_study(tables, years)
        paths = write_study(plan, table, tables, summary, dest,
                            {"executor": where, "wall_s": round(wall, 3),
                             "failure_table": str(failure_table or "default"),
                             "provenance": provenance()}, plan.base)
        if not quiet:
            print_summary(summary)
        out.print(f"{runs} replications x {years:g} simulated years in {wall:.1f} s on "
                  f"{where}; page: {paths['index.html']}")
        failed = tables.runs[tables.runs["error"] != ""]
        if not failed.empty:
            err.print(f"[red]{len(failed)} replications failed[/red], first: "
                      f"{failed['error'].iloc[0]}", highlight=False)
            raise typer.Exit(1)
