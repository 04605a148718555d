"""The observation vocabulary: rows outside it are refused when recorded or checked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hcisim.model import simulate
from hcisim.observations import (
    Observations,
    Recorder,
    VocabularyError,
    check_vocabulary,
    vocabulary_problems,
)
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
