"""``hcisim report DIR``: the HTML report of a finished run, written beside its data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hcisim.cli import UserError, friendly, out


def report_into(result: Path) -> Path:
    """Write the report of the run in ``result``; a folder it cannot write is bad input."""
    from hcisim.report import write_report

    try:
        return write_report(result)
    except OSError as exc:  # the folder is the user's: read-only, full, a file in the way
        where = exc.filename or result
        raise UserError(f"{where}: cannot write the report ({exc.strerror})") from None


def register(app: typer.Typer) -> None:
    @app.command()
    @friendly
    def report(
        result: Annotated[Path, typer.Argument(
            help="result folder of `hcisim run` (scenario.yaml, observations/, summary.json)")],
    ) -> None:
        """Write DIR/report.html: plots with fault windows, claims, failover/HA, scenario, CSVs."""
        if not result.is_dir():
            raise UserError(f"{result}: no such result folder")
        page = report_into(result)
        out.print(f"report: {page}", soft_wrap=True, highlight=False, markup=False)
