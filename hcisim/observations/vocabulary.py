"""Conformance: every row of a run inside the observation vocabulary.

A claim cannot tell a model run from a lab run only if both say the same things the same
way; this check is run on every engine's output (tests/observations/test_conformance.py).
"""

from __future__ import annotations

from hcisim.observations.record import Observations, VocabularyError
from hcisim.observations.schema import FAULT_COLUMNS, FAULT_EVENTS, VOCABULARY


def vocabulary_problems(obs: Observations) -> list[str]:
    """One line per column with values outside the vocabulary (empty: conforms)."""
    problems = []
    for (table, column), allowed in VOCABULARY.items():
        values = obs[table][column]
        bad = sorted({str(v) for v in values[~values.isin(list(allowed))]})
        if bad:
            problems.append(f"{table}.{column}: {', '.join(map(repr, bad))} not in the "
                            f"vocabulary ({', '.join(sorted(a for a in allowed if a))})")
    ev = obs["events"]
    is_fault = ev["kind"].isin(list(FAULT_EVENTS))
    if (is_fault & (ev["fault_kind"] == "")).any():
        problems.append("events: a fault_start/fault_end without its fault_kind")
    for col in FAULT_COLUMNS:
        if (~is_fault & (ev[col] != "")).any():
            problems.append(f"events.{col}: set on an event that is not a fault's")
    return problems


def check_vocabulary(obs: Observations) -> None:
    """Raise :class:`VocabularyError` naming every column with values outside the
    vocabulary."""
    problems = vocabulary_problems(obs)
    if problems:
        raise VocabularyError(f"observations of {obs.scenario} on {obs.engine}: "
                              + "; ".join(problems))
