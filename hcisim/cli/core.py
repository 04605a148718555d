"""``hcisim run``, ``check``, ``schema``: the scenario's main job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hcisim.cli import (
    BACKENDS,
    EXIT_CLAIM_FAILED,
    EXIT_CODES_HELP,
    EXIT_USAGE,
    choice,
    err,
    error,
    friendly,
    out,
)
from hcisim.engines import engine_names, parse_engine
from hcisim.scenario import ScenarioError, json_schema, load_scenario


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
    for col in ("volume", "bytes healed GB", "heal done at s", "after repair s", "exposure s",
                "min copies",
                "quorum lost s", "acked w/o quorum"):
        t.add_column(col, justify="right" if col != "volume" else "left")
    for name, v in vols.items():
        t.add_row(name, _fmt(v["bytes_healed"] / 1e9), _fmt(v["heal_completed_s"], 1),
                  _fmt(v["heal_after_repair_s"], 1), _fmt(v["exposure_s"], 1),
                  _fmt(v["min_copies_acked"]),
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
            t.add_row(escape(c["name"]), f"[{colour}]{label}[/{colour}]",
                      f"{_fmt(c['measured'])} {c['unit']}", f"{_fmt(c['limit'])} {c['unit']}")
        out.print(t)


def print_failures(claims: list[dict[str, Any]]) -> None:
    """On stderr: each claim that is not as expected, with its worst offender (VM, time)."""
    from hcisim.report.offender import worst_offender

    for c in claims:
        as_expected = (c["verdict"] == "fail") == (c.get("expected") == "fail")
        if as_expected or (c["verdict"] == "n/a" and c.get("expected") != "fail"):
            continue
        if c.get("expected") == "fail":
            error(f"{c['name']}: {c['verdict']}, but the scenario expects it to fail",
                  label="claim not as expected")
            continue
        error(f"{c['name']}: measured {_fmt(c['measured'])} {c['unit']}, "
              f"limit {_fmt(c['limit'])} {c['unit']}", label="claim failed")
        worst = worst_offender(c)
        if worst is not None:
            err.print(f"  worst: {worst.describe()}", markup=False, highlight=False,
                      soft_wrap=True)


def lint(path: Path) -> dict[str, Any]:
    """One file's findings: ok, what the scenario holds, or every problem with its place."""
    try:
        sc = load_scenario(path)
    except ScenarioError as exc:
        return {"file": str(path), "ok": False, "scenario": None, "problems": [
            {"line": p.line, "column": p.column, "path": p.path, "message": p.message}
            for p in sorted(exc.details, key=lambda p: (p.line or 0, p.column or 0))]}
    return {"file": str(path), "ok": True, "problems": [], "scenario": {
        "name": sc.name, "vms": len(sc.vms), "volumes": len(sc.volumes),
        "faults": len(sc.faults), "claims": len(sc.claims)}}


def register(app: typer.Typer) -> None:
    @app.command(epilog=EXIT_CODES_HELP)
    @friendly
    def run(
        scenario: Annotated[Path | None, typer.Argument(
            help="scenario YAML; default: the built-in three-node HCI power-loss scenario")] = None,
        output: Annotated[Path | None, typer.Option(
            "-o", "--output", help="result folder, must be empty (default: a new "
            "runs/<name>-<engine>-<time>-<suffix>; runs/latest points at it)")] = None,
        force: Annotated[bool, typer.Option(
            help="let -o replace an earlier result in that folder")] = False,
        engine: Annotated[str, typer.Option(
            help=f"one of {', '.join(engine_names())} (lab: lab+netns)")] = "model",
        backend: Annotated[str, typer.Option(
            help="lab backend: netns or libvirt", callback=choice("backend", BACKENDS))
        ] = "netns",
        seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
        report: Annotated[bool, typer.Option(help="also write report.html")] = False,
        as_json: Annotated[bool, typer.Option(
            "--json", help="print the summary as JSON on stdout (nothing else there)")] = False,
        quiet: Annotated[bool, typer.Option("-q", "--quiet")] = False,
    ) -> None:
        """Run a scenario on the model (or a lab), judge its claims, write the results."""
        from hcisim.results import result_folder
        from hcisim.runner import run_scenario
        from hcisim.scenario import with_overrides

        spec = parse_engine(engine, backend)
        sc = load_scenario(scenario)
        if seed is not None:
            sc = with_overrides(sc, {"seed": seed})
        dest = result_folder(output, f"{sc.name}-{spec.label}", force)
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=err, transient=True, disable=quiet or as_json) as bar:
            task = bar.add_task(f"{sc.name} on {spec.name}", total=1.0)
            result = run_scenario(sc, engine=spec.name, out=dest,
                                  progress=lambda f: bar.update(task, completed=f))
        if report:
            from hcisim.cli.report import report_into

            report_into(dest)
        if as_json:
            print(json.dumps({"results": str(dest), **result.summary}, indent=2, default=str))
        else:
            if not quiet:
                print_summary(result.summary)
            out.print(f"results: {dest}", highlight=False, markup=False, soft_wrap=True)
        if not result.passed:
            print_failures(result.summary["claims"])
            raise typer.Exit(EXIT_CLAIM_FAILED)

    @app.command(epilog=EXIT_CODES_HELP)
    @friendly
    def check(
        files: Annotated[list[Path], typer.Argument(help="scenario files")],
        as_json: Annotated[bool, typer.Option(
            "--json", help="print the findings as JSON on stdout")] = False,
    ) -> None:
        """Validate scenario files like a linter: every file, each problem as
        FILE:LINE:COL: field: message; exit 2 if any file is bad."""
        findings = [lint(f) for f in files]
        if as_json:
            print(json.dumps(findings, indent=2))
        else:
            for f in findings:
                if f["ok"]:
                    s = f["scenario"]
                    out.print(f"{f['file']}: ok ({s['name']}: {s['vms']} VMs, {s['volumes']} "
                              f"volumes, {s['faults']} faults, {s['claims']} claims)",
                              markup=False, highlight=False, soft_wrap=True)
                for p in f["problems"]:
                    where = f"{p['line']}:{p['column']}:" if p["line"] else ""
                    what = f"{p['path']}: {p['message']}" if p["path"] else p["message"]
                    out.print(f"{f['file']}:{where} {what}", markup=False, highlight=False,
                              soft_wrap=True)
        bad = sum(not f["ok"] for f in findings)
        if bad:
            error(f"{bad} of {len(findings)} file(s) have problems", label="check")
            raise typer.Exit(EXIT_USAGE)

    @app.command()
    def schema() -> None:
        """Print the scenario JSON Schema (for editors)."""
        print(json_schema())
