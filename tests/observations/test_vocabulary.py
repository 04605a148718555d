"""The observation vocabulary: rows outside it are refused when recorded or checked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.model import simulate
from hcisim.observations import (
    Observations,
    Recorder,
    VocabularyError,
    check_vocabulary,
    vocabulary_problems,
)
from hcisim.observations.vocabulary import rows_conform
from hcisim.scenario import load_scenario, make_fault

CATALOGUE = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))


def test_typed_rows_refuse_unknown_values_when_recorded() -> None:
    rec = Recorder()
    with pytest.raises(VocabularyError, match=r"events.kind: 'brick_gone'"):
        rec.event(1.0, "brick_gone", "data/h1")  # type: ignore[arg-type]
    with pytest.raises(VocabularyError, match=r"vm_state.state: 'zombie'"):
        rec.vm_state("vm1", "h1", 0.0, 1.0, "zombie")  # type: ignore[arg-type]
    with pytest.raises(VocabularyError, match=r"vm_io\.status"):
        rec.vm_io("vm1", "data", 0, 1, 1, 1, 1, 1, 1, 1, 1, "slow")  # type: ignore[arg-type]
    with pytest.raises(VocabularyError, match=r"events.fault_kind: 'meteor'"):
        rec.event(1.0, "fault_start", "h1", "meteor strike")


def test_fast_path_rows_are_checked_at_build() -> None:
    rec = Recorder()
    rec.add("vm_state", "vm1", "h1", 0.0, 1.0, "sleeping", "")
    with pytest.raises(VocabularyError, match="'sleeping' not in the vocabulary"):
        rec.build("model", "t", 1, 1.0)


def test_fault_events_carry_structured_columns() -> None:
    rec = Recorder()
    rec.fault_event(5.0, True, make_fault(at_s=5, kind="partition", target="h2",
                                          network="all", peers=("h3",)))
    rec.fault_event(9.0, False, make_fault(at_s=5, kind="brick_hang", target="h1",
                                           volume="data"))
    ev = rec.build("model", "t", 1, 10.0)["events"]
    assert list(ev["fault_kind"]) == ["partition", "brick_hang"]
    assert list(ev["network"]) == ["storage,management", ""]
    assert list(ev["peers"]) == ["h3", ""] and list(ev["volume"]) == ["", "data"]


def test_old_results_get_the_fault_kind_from_the_detail() -> None:
    events = pd.DataFrame({"t_s": [1.0, 2.0], "kind": ["fault_start", "vm_down"],
                           "target": ["h1", "vm1"], "detail": ["nic_loss (storage)", "gone"],
                           "source": ["scenario", "engine"]})
    obs = Observations("lab:netns", "t", 1, 10.0, tables={"events": events})
    assert list(obs["events"]["fault_kind"]) == ["nic_loss", ""]
    check_vocabulary(obs)


def test_check_vocabulary_names_every_bad_column() -> None:
    io = pd.DataFrame({"vm": ["a"], "volume": ["d"], "t_start_s": [0.0], "t_end_s": [1.0],
                       "demand_mb_s": [1.0], "read_mb_s": [1.0], "write_mb_s": [0.0],
                       "read_iops": [1.0], "write_iops": [0.0], "latency_ms": [1.0],
                       "latency_p99_ms": [1.0], "status": ["frozen"]})
    obs = Observations("lab:netns", "t", 1, 10.0, tables={"vm_io": io})
    assert vocabulary_problems(obs) == [
        "vm_io.status: 'frozen' not in the vocabulary (error, ok, stalled, stopped)"]
    with pytest.raises(VocabularyError):
        check_vocabulary(obs)


@pytest.mark.parametrize("path", CATALOGUE, ids=[p.stem for p in CATALOGUE])
def test_the_model_conforms_on_every_catalogue_scenario(path: Path) -> None:
    sc = load_scenario(path)
    obs = simulate(sc)
    check_vocabulary(obs)
    starts = obs["events"][obs["events"]["kind"] == "fault_start"]
    assert sorted(starts["fault_kind"]) == sorted(f.kind for f in sc.faults
                                                  if f.at_s < sc.duration_s)


_EVENT_ROWS = st.tuples(
    st.just(1.0), st.sampled_from(["vm_down", "brick_down", "fault_start", "fault_end",
                                   "brick_gone"]),
    st.just("h1"), st.just(""), st.sampled_from(["engine", "scenario", "operator?"]),
    st.sampled_from(["", "nic_loss", "meteor"]), st.sampled_from(["", "", "storage"]),
    st.sampled_from(["", "", "data"]), st.sampled_from(["", "", "h2"]))
_STATE_ROWS = st.tuples(st.just("vm1"), st.just("h1"), st.just(0.0), st.just(1.0),
                        st.sampled_from(["running", "paused", "zombie"]), st.just(""))


@settings(max_examples=150, deadline=None)
@given(st.lists(_EVENT_ROWS, max_size=6), st.lists(_STATE_ROWS, max_size=3))
def test_rows_conform_exactly_when_their_tables_do(
        events: list[tuple[object, ...]], states: list[tuple[object, ...]]) -> None:
    """Recorder.build checks the rows as recorded (rows_conform) and the built tables only
    to name a problem: rows pass exactly when their tables have no vocabulary problem
    (unknown kinds, sources, fault kinds, VM states; a fault event without its kind; a
    fault column on another event)."""
    rec = Recorder()
    for row in events:
        rec.add("events", *row)
    for row in states:
        rec.add("vm_state", *row)
    rows = {"events": events, "vm_state": states}
    obs = Observations("model", "t", 1, 10.0, tables={t: rec.frame(t) for t in rows})
    assert rows_conform(rows) == (vocabulary_problems(obs) == [])
    if not rows_conform(rows):
        with pytest.raises(VocabularyError, match=r"not in the vocabulary|fault"):
            rec.build("model", "t", 1, 10.0)
