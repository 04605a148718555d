"""Writing one run's result folder, also when the run does not finish.

The scenario is written before the engine starts and the journal is rewritten when the run
ends, however it ends: completed (results, summary, verdicts), failed (the error and a
``traceback.txt``) or interrupted (Ctrl-C). A folder is thus always readable: what was asked,
and what became of it.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hcisim.results.journal import Journal, RunStatus
from hcisim.results.store import new_run_folder
from hcisim.scenario import Scenario, save_scenario

if TYPE_CHECKING:
    from hcisim.runner import RunResult

TRACEBACK = "traceback.txt"


def default_out(sc: Scenario, engine: str) -> Path:
    """A new folder ``runs/<scenario>-<engine>-<time>-<suffix>`` (created; ``runs/latest``
    points at it)."""
    return new_run_folder(f"{sc.name}-{engine}")


def _write_journal(out: Path, journal: Journal) -> None:
    (out / "journal.json").write_text(json.dumps(journal.to_dict(), indent=2, default=str))


def _outcome(result: RunResult) -> dict[str, Any]:
    return {"events": result.observations["events"].to_dict("records"),
            "claims": result.summary["claims"], "passed": result.passed}


def _complete(result: RunResult, out: Path, journal: Journal, finished: float) -> None:
    result.observations.save(out)
    (out / "summary.json").write_text(json.dumps(result.summary, indent=2, default=str))
    journal.engine = result.observations.engine
    journal.status, journal.finished = "completed", finished
    journal.outcome = _outcome(result)
    _write_journal(out, journal)
    result.out = out


def write_result(result: RunResult, out: Path, started: float, finished: float) -> None:
    """Write a finished run: scenario, observations, summary, journal (status completed)."""
    out.mkdir(parents=True, exist_ok=True)
    save_scenario(result.scenario, out / "scenario.yaml")
    journal = Journal(result.scenario.name, result.scenario.seed,
                      result.observations.engine, started)
    _complete(result, out, journal, finished)


class RunRecord:
    """Handle given to the body of :func:`recording`: call ``complete`` with the result."""

    def __init__(self, out: Path, journal: Journal) -> None:
        self.out = out
        self.journal = journal

    def complete(self, result: RunResult) -> None:
        _complete(result, self.out, self.journal, time.time())


@contextmanager
def recording(out: Path, sc: Scenario, engine: str) -> Iterator[RunRecord]:
    """Record a run in ``out``: the scenario first, the journal however the run ends.

    An exception (or Ctrl-C) inside the block is written to the journal (status failed or
    interrupted, the error, ``traceback.txt``) and raised again for the caller to report.
    """
    out.mkdir(parents=True, exist_ok=True)
    save_scenario(sc, out / "scenario.yaml")
    journal = Journal(sc.name, sc.seed, engine, time.time())
    _write_journal(out, journal)
    try:
        yield RunRecord(out, journal)
    except BaseException as exc:
        status: RunStatus = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        journal.status, journal.finished = status, time.time()
        (out / TRACEBACK).write_text("".join(traceback.format_exception(exc)))
        journal.error = {"type": type(exc).__name__, "message": str(exc),
                         "traceback": TRACEBACK}
        _write_journal(out, journal)
        raise
