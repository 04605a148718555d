"""Conformance: every row of a run inside the observation vocabulary.

A claim cannot tell a model run from a lab run only if both say the same things the same
way; this check is run on every engine's output (tests/observations/test_conformance.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hcisim.observations.record import Column, Observations, VocabularyError
from hcisim.observations.schema import COLUMNS, FAULT_COLUMNS, FAULT_EVENTS, VOCABULARY

# (table, column index, allowed values) of every enumerated column, and where the event
# columns are in a recorded row
_ENUMERATED = tuple((table, list(COLUMNS[table]).index(column), allowed)
                    for (table, column), allowed in VOCABULARY.items())
_EVENT_KIND = list(COLUMNS["events"]).index("kind")
_FAULT_KIND = list(COLUMNS["events"]).index("fault_kind")
_FAULT_ONLY = tuple(list(COLUMNS["events"]).index(c) for c in FAULT_COLUMNS)


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


def rows_conform(rows: Mapping[str, Sequence[tuple[Any, ...]]]) -> bool:
    """Whether rows as recorded (values in the schema's column order, per table) are inside
    the vocabulary: the distinct values of each enumerated column against its vocabulary,
    and the fault columns of the events. Rows that conform make tables that conform
    (:func:`vocabulary_problems` finds nothing in them); this looks at plain values, a
    small fraction of what checking the built tables costs (a simulated year: ~0.1 ms
    instead of ~3 ms). False says only that :func:`vocabulary_problems` will find
    something, and it is the one that names it."""
    for table, i, allowed in _ENUMERATED:
        if not allowed.issuperset({r[i] for r in rows.get(table, ())}):
            return False
    for r in rows.get("events", ()):
        if r[_EVENT_KIND] in FAULT_EVENTS:
            if r[_FAULT_KIND] == "":
                return False
        elif any(r[i] != "" for i in _FAULT_ONLY):
            return False
    return True


def columns_conform(table: str, columns: Sequence[Column]) -> bool:
    """:func:`rows_conform` for rows given column by column (``Recorder.add_columns``)."""
    if table == "events":
        return rows_conform({table: list(zip(*columns, strict=True))})
    return all(allowed.issuperset(set(columns[i]))
               for t, i, allowed in _ENUMERATED if t == table)


def check_vocabulary(obs: Observations) -> None:
    """Raise :class:`VocabularyError` naming every column with values outside the
    vocabulary."""
    problems = vocabulary_problems(obs)
    if problems:
        raise VocabularyError(f"observations of {obs.scenario} on {obs.engine}: "
                              + "; ".join(problems))
