"""``hcisim compare SCENARIO``: the model and a real lab on the same scenario."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hcisim.cli import friendly, out


def _fmt(x: float, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:+.0f}%" if pct else f"{x:.3g}"


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def compare(
        scenario: Annotated[Path, typer.Argument(help="scenario YAML (lab-sized)")],
        output: Annotated[Path | None, typer.Option(
            "-o", "--output", help="result folder, must be empty (default: a new one in runs/)")
        ] = None,
        force: Annotated[bool, typer.Option(
            help="let -o replace an earlier result in that folder")] = False,
        scale: Annotated[float | None, typer.Option(help="lab size factor")] = None,
        io_scale: Annotated[float | None, typer.Option(help="lab I/O demand factor")] = None,
    ) -> None:
        """Run model and lab; per metric: model, lab, relative error (CSV, JSON, PNG)."""
        from hcisim.compare import run_compare, write_comparison
        from hcisim.results import result_folder
        from hcisim.scenario import load_scenario

        sc = load_scenario(scenario)
        dest = result_folder(output, f"{sc.name}-compare", force)
        opts: dict[str, object] = {}
        if scale is not None:
            opts["size_scale"] = scale
        if io_scale is not None:
            opts["io_scale"] = io_scale
        c = run_compare(sc, opts)
        files = write_comparison(c, dest)
        t = Table("metric", "subject", "unit", "model", "lab", "error", title_justify="left",
                  title=f"{sc.name}: model vs lab")
        for r in c.table.to_dict("records"):
            t.add_row(r["metric"], r["subject"], r["unit"], _fmt(r["model"]), _fmt(r["lab"]),
                      _fmt(r["rel_error"], pct=True))
        out.print(t)
        out.print("written: " + ", ".join(str(f) for f in files), markup=False, highlight=False,
                  soft_wrap=True)
