"""``hcisim report DIR``: the HTML report of a finished run, written beside its data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hcisim.cli import UserError, friendly, out


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def report(
        result: Annotated[Path, typer.Argument(
            help="result folder of `hcisim run` (scenario.yaml, observations/, summary.json)")],
    ) -> None:
        """Write DIR/report.html: plots with fault windows, claims, failover/HA, scenario, CSVs."""
        from hcisim.report import write_report

        if not result.is_dir():
            raise UserError(f"{result}: no such result folder")
        try:
            page = write_report(result)
        except OSError as exc:  # the folder is the user's: read-only, full, a file in the way
            where = exc.filename or result
            raise UserError(f"{where}: cannot write the report ({exc.strerror})") from None
        out.print(f"report: {page}", soft_wrap=True, highlight=False, markup=False)
