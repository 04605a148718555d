"""``hcisim capacity SPEC``: which hardware carries this VM inventory with one node down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from hcisim.cli import EXIT_CLAIM_FAILED, UserError, friendly, out


def print_answer(result: dict[str, Any]) -> None:
    t = Table(title="Candidates (smallest first)", title_justify="left")
    for col in ("candidate", "volume type", "verdict", "failing checks"):
        t.add_column(col)
    for a in result["assessments"]:
        failing = [c["name"] for c in a["checks"] if not c["passed"]]
        verdict = "[green]pass[/green]" if a["passed"] else "[red]fail[/red]"
        t.add_row(escape(a["candidate"]), a["volume_type"], verdict,
                  escape(", ".join(failing)) or "-")
    out.print(t)
    for s in result["smallest"]:
        out.print(f"{s['volume_type']}: smallest passing candidate: "
                  f"[bold]{escape(s['candidate'] or 'none')}[/bold]", highlight=False)
        for rej in s["rejected"]:
            out.print(f"  {rej['candidate']} fails:", highlight=False, markup=False)
            for why in rej["reasons"]:
                out.print(f"    {why}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def capacity(
        spec: Annotated[Path, typer.Argument(help="capacity spec YAML (candidates, inventory)")],
        output: Annotated[Path | None, typer.Option(
            "-o", "--output", help="folder for capacity.json, capacity.html and plots, must be "
            "empty (default: a new runs/capacity-<spec>-<time>-<suffix>)")] = None,
        force: Annotated[bool, typer.Option(
            help="let -o replace an earlier result in that folder")] = False,
        as_json: Annotated[bool, typer.Option(
            "--json", help="print capacity.json on stdout (nothing else there)")] = False,
        quiet: Annotated[bool, typer.Option("-q", "--quiet")] = False,
    ) -> None:
        """Size three-node HCI hardware for a VM inventory: capacity, n+1, I/O, heal."""
        from hcisim.capacity import SpecError, load_spec, size, write_capacity
        from hcisim.results import result_folder

        try:
            sc, vms = load_spec(spec)
        except SpecError as exc:
            raise UserError(str(exc)) from None
        dest = result_folder(output, f"capacity-{spec.stem}", force)
        result = size(sc, vms)
        paths = write_capacity(result, dest)
        if as_json:
            print(paths["capacity.json"].read_text())
        else:
            if not quiet:
                print_answer(result)
            out.print(f"results: {paths['capacity.html']}", markup=False, highlight=False,
                      soft_wrap=True)
        if result["answer"] is None:
            raise typer.Exit(EXIT_CLAIM_FAILED)
