"""One run of a scenario on an engine: simulate or measure, judge the claims, write results.

The result folder holds everything needed to repeat and to read the run:
``scenario.yaml`` (resolved, with seed), ``observations/`` (Parquet), ``summary.json``
(headline numbers and claim verdicts), ``journal.json`` (what happened, machine-readable).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcisim.claims import Verdict, evaluate
from hcisim.engines import EngineError as EngineError  # re-exported: older imports
from hcisim.engines import EngineOptions, EngineSpec, Progress, observe, parse_engine
from hcisim.observations import Observations, summarize
from hcisim.results import default_out as default_out  # the store's, re-exported
from hcisim.results import recording
from hcisim.results import write_result as write_result
from hcisim.scenario import Scenario


@dataclass
class RunResult:
    scenario: Scenario
    observations: Observations
    summary: dict[str, Any]
    verdicts: list[Verdict]
    out: Path | None

    @property
    def passed(self) -> bool:
        return all(v.as_expected for v in self.verdicts)


def engine_observations(sc: Scenario, engine: str | EngineSpec, backend: str | None = None,
                        progress: Progress | None = None,
                        options: Mapping[str, Any] | EngineOptions | None = None
                        ) -> Observations:
    """Observations of ``sc`` from the engine named ``engine`` (see :mod:`hcisim.engines`;
    ``backend`` is the old ``--backend``, for ``engine`` ``lab``)."""
    spec = engine if isinstance(engine, EngineSpec) else parse_engine(engine, backend)
    return observe(spec, sc, progress, options)


def summary_of(sc: Scenario, obs: Observations, verdicts: list[Verdict]) -> dict[str, Any]:
    summary = summarize(obs, [v.name for v in sc.vms], [v.name for v in sc.volumes])
    summary["claims"] = [v.to_dict() for v in verdicts]
    summary["passed"] = all(v.as_expected for v in verdicts)
    return summary


def judge(sc: Scenario, obs: Observations) -> RunResult:
    verdicts = evaluate(sc, obs)
    return RunResult(sc, obs, summary_of(sc, obs, verdicts), verdicts, None)


def run_scenario(sc: Scenario, engine: str = "model", out: Path | None = None,
                 backend: str = "netns", progress: Progress | None = None,
                 options: dict[str, Any] | None = None) -> RunResult:
    """Run and judge ``sc``; with ``out``, record it there (also when it fails)."""
    if out is None:
        return judge(sc, engine_observations(sc, engine, backend, progress, options))
    with recording(out, sc, engine) as record:
        result = judge(sc, engine_observations(sc, engine, backend, progress, options))
        record.complete(result)
    return result
