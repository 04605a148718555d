"""``hcisim run``, ``check``, ``schema``: the scenario's main job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hcisim.cli import err, friendly, out
from hcisim.scenario import json_schema, load_scenario


def _fmt(x: object, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def print_summary(summary: dict[str, object]) -> None:
    vms = summary["vms"]
    assert isinstance(vms, dict)
    t = Table(title=f"VMs ({summary['engine']})", title_justify="left")
    for col in ("vm", "read MB/s", "write MB/s", "mean lat ms", "p99 lat ms",
                "max stall s", "I/O error s", "downtime s"):
        t.add_column(col, justify="right" if col != "vm" else "left")
    for name, v in vms.items():
        t.add_row(name, _fmt(v["read_mb_s"], 1), _fmt(v["write_mb_s"], 1),
                  _fmt(v["mean_latency_ms"]), _fmt(v["p99_latency_ms"]),
                  _fmt(v["max_io_stall_s"], 1), _fmt(v["io_error_s"], 1),
                  _fmt(v["downtime_s"], 1))
    out.print(t)
    vols = summary["volumes"]
    assert isinstance(vols, dict)
    t = Table(title="Volumes", title_justify="left")
    for col in ("volume", "bytes healed GB", "heal done at s", "exposure s", "min copies",
                "quorum lost s", "acked w/o quorum"):
        t.add_column(col, justify="right" if col != "volume" else "left")
    for name, v in vols.items():
        t.add_row(name, _fmt(v["bytes_healed"] / 1e9), _fmt(v["heal_completed_s"], 1),
                  _fmt(v["exposure_s"], 1), _fmt(v["min_copies_acked"]),
                  _fmt(v["quorum_lost_s"], 1), _fmt(v["acked_without_quorum_bytes"], 0))
    out.print(t)
    claims = summary.get("claims") or []
    assert isinstance(claims, list)
    if claims:
        t = Table(title="Claims", title_justify="left")
        for col in ("claim", "verdict", "measured", "limit"):
            t.add_column(col)
        for c in claims:
            expected_fail = c.get("expected") == "fail"
            colour = {"pass": "green", "fail": "red"}.get(c["verdict"], "yellow")
            label = c["verdict"]
            if expected_fail:
                colour = "green" if c["verdict"] == "fail" else "red"
                label += " (expected fail)"
            t.add_row(c["name"], f"[{colour}]{label}[/{colour}]",
                      f"{_fmt(c['measured'])} {c['unit']}", f"{_fmt(c['limit'])} {c['unit']}")
        out.print(t)


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def run(
        scenario: Annotated[Path | None, typer.Argument(
            help="scenario YAML; default: the built-in three-node HCI power-loss scenario")] = None,
        output: Annotated[Path | None, typer.Option(
            "-o", "--output", help="result folder (default runs/<name>-<engine>-<time>)")] = None,
        engine: Annotated[str, typer.Option(help="model or lab")] = "model",
        backend: Annotated[str, typer.Option(help="lab backend: netns or libvirt")] = "netns",
        seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
        report: Annotated[bool, typer.Option(help="also write report.html")] = False,
        quiet: Annotated[bool, typer.Option("-q", "--quiet")] = False,
    ) -> None:
        """Run a scenario on the model (or a lab), judge its claims, write the results."""
        from hcisim.runner import default_out, run_scenario
        from hcisim.scenario import with_overrides

        sc = load_scenario(scenario)
        if seed is not None:
            sc = with_overrides(sc, {"seed": seed})
        dest = output or default_out(sc, engine)
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=err, transient=True, disable=quiet) as bar:
            task = bar.add_task(f"{sc.name} on {engine}", total=1.0)
            result = run_scenario(sc, engine=engine, out=dest, backend=backend,
                                  progress=lambda f: bar.update(task, completed=f))
        if not quiet:
            print_summary(result.summary)
        if report:
            from hcisim.report import write_report

            write_report(dest)
        out.print(f"results: {dest}")
        if not result.passed:
            failed = [v.name for v in result.verdicts if not v.as_expected]
            err.print(f"[red]claims not as expected:[/red] {', '.join(failed)}")
            raise typer.Exit(1)

    @app.command()
    @friendly
    def check(files: Annotated[list[Path], typer.Argument(help="scenario files")]) -> None:
        """Validate scenario files; name every bad field with its path."""
        for f in files:
            sc = load_scenario(f)
            out.print(f"{f}: ok ({sc.name}: {len(sc.vms)} VMs, {len(sc.volumes)} volumes, "
                      f"{len(sc.faults)} faults, {len(sc.claims)} claims)")

    @app.command()
    def schema() -> None:
        """Print the scenario JSON Schema (for editors)."""
        print(json_schema())
