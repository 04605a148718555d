"""Claims: pure functions over Observations that judge a scenario's steady-state hypothesis.

Each claim kind (spelled in :mod:`hcisim.scenario.claims`) has one judge here. A judge sees
the Scenario (for names and topology) and the Observations, never the engine: a claim
cannot tell a model run from a lab run. Catalogue and examples: docs/claims.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hcisim.claims.capacity import HostLoss, ha_plan, ha_reservation, usable_capacity_at_least
from hcisim.claims.compute import (
    migration_completes_within,
    migration_downtime_at_most,
    paused_at_most,
)
from hcisim.claims.performance import latency_p99_at_most, throughput_at_least
from hcisim.claims.runtime import vm_restart_within, zero_downtime
from hcisim.claims.storage import heal_within, no_split_brain, replicas
from hcisim.claims.timeline import FaultWindow, fault_windows
from hcisim.claims.verdict import Verdict, VerdictKind
from hcisim.observations import Observations
from hcisim.scenario import ClaimSpec, Scenario

Judge = Callable[[Scenario, Observations, Any], Verdict]

JUDGES: dict[str, Judge] = {
    "zero_downtime": zero_downtime,
    "vm_restart_within": vm_restart_within,
    "replicas": replicas,
    "no_split_brain": no_split_brain,
    "heal_within": heal_within,
    "throughput_at_least": throughput_at_least,
    "latency_p99_at_most": latency_p99_at_most,
    "migration_completes_within": migration_completes_within,
    "migration_downtime_at_most": migration_downtime_at_most,
    "paused_at_most": paused_at_most,
    "ha_reservation": ha_reservation,
    "usable_capacity_at_least": usable_capacity_at_least,
}


def judge_claim(sc: Scenario, obs: Observations, claim: ClaimSpec) -> Verdict:
    """The verdict of one claim of ``sc`` on ``obs``."""
    verdict = JUDGES[claim.kind](sc, obs, claim)
    return dataclasses.replace(verdict, expected=claim.expect)


def evaluate(sc: Scenario, obs: Observations) -> list[Verdict]:
    """Verdicts of every claim of ``sc``, in the scenario's order."""
    return [judge_claim(sc, obs, c) for c in sc.claims]


__all__ = [
    "JUDGES", "FaultWindow", "HostLoss", "Verdict", "VerdictKind", "evaluate", "fault_windows",
    "ha_plan", "judge_claim",
]
