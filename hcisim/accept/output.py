"""The result folder of an acceptance: the runner's files, the checks, the baseline table,
JUnit XML and the same HTML report as the labs."""

from __future__ import annotations

import json
import time
from pathlib import Path

from hcisim.accept.junit import write_junit
from hcisim.accept.run import Acceptance
from hcisim.runner import RunResult, judge, write_result


def write_acceptance(acc: Acceptance, out: Path, started: float,
                     report: bool = True) -> tuple[RunResult, str | None]:
    """Write everything under ``out``; returns the judged run and a note if the HTML report
    could not be written."""
    result = judge(acc.scenario, acc.observations)
    write_result(result, out, started, time.time())
    (out / "checks.json").write_text(json.dumps([r.to_dict() for r in acc.rows], indent=2))
    (out / "baseline.json").write_text(
        json.dumps([r.to_dict() for r in acc.baseline], indent=2, default=str))
    write_junit(out / "junit.xml", acc.rows, acc.refusals, result.summary["claims"])
    note = None
    if report:
        try:
            from hcisim.report import write_report

            write_report(out)
        except ImportError as exc:
            note = f"HTML report not written ({exc})"
    return result, note
