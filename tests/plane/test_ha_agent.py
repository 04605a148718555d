"""The hosted-engine HA agent's rules, without a lab: who is alive (the metadata history),
what it decides (ovirt-hosted-engine-ha ``states.py``), its score and its metadata slots."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from hcisim.lab.plane.ha_agent import (
    AgentState,
    HaAgent,
    Snapshot,
    agent_score_of,
    alive_hosts,
    format_metadata,
    read_slots,
    write_slot,
)
from hcisim.placement.hosted_engine import HostHealth

CFG: dict[str, Any] = {"vm": "engine", "margin": 800, "base_score": 3400,
                       "vm_ram_gib": {"engine": 4}}


def test_nobody_is_alive_before_the_history_spans_the_alive_timeout() -> None:
    history = [Snapshot(100.0, {2: "a", 3: "b"})]
    assert alive_hosts(history, {2: "a2", 3: "b"}, 20.0, 110.0) is None


def test_a_host_whose_timestamp_did_not_move_since_the_old_snapshot_is_dead() -> None:
    history = [Snapshot(125.0, {2: "a1", 3: "b"}), Snapshot(100.0, {2: "a0", 3: "b"})]
    # newest snapshot older than 20 s before t = 125.5 is the one at 100
    assert alive_hosts(history, {2: "a2", 3: "b", 4: "c"}, 20.0, 125.5) == {2, 4}


def agent(scores_start: list[str]) -> HaAgent:
    a = object.__new__(HaAgent)
    a.cfg = CFG
    a.st = AgentState()
    a.vm = "engine"
    a.emit = lambda event, **data: scores_start.append(event)  # type: ignore[method-assign]

    def vdsm(request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        scores_start.append(request["op"])
        return {}

    a.vdsm = vdsm  # type: ignore[method-assign]
    a.start_engine = lambda: scores_start.append("start")  # type: ignore[method-assign]
    return a


UP = {"vm": "up", "health": "good"}
DOWN = {"vm": "down", "health": "bad"}


def test_the_engine_running_on_an_alive_host_keeps_everyone_else_down() -> None:
    log: list[str] = []
    assert agent(log).decide(DOWN, False, [{"engine-status": UP}], 0, 3400, {1}) == "EngineDown"
    assert "start" not in log


def test_no_start_without_enough_data() -> None:
    log: list[str] = []
    assert agent(log).decide(DOWN, False, [], 0, 3400, None) == "EngineDown"
    assert "start" not in log


def test_the_best_score_starts_the_engine_equal_scores_too() -> None:
    log: list[str] = []
    assert agent(log).decide(DOWN, False, [], 3400, 3400, {1}) == "EngineStart"
    assert log == ["start"]
    log.clear()
    assert agent(log).decide(DOWN, False, [], 3401, 3400, {1}) == "EngineDown"
    assert log == []


def test_a_host_800_better_takes_the_engine_over() -> None:
    log: list[str] = []
    assert agent(log).decide(UP, True, [], 1800 + 799, 1800, {1}) == "EngineUp"
    assert agent(log).decide(UP, True, [], 1800 + 800, 1800, {1}) == "EngineStop"
    assert "destroy" in log


def test_score_penalties_are_the_models() -> None:
    assert agent_score_of(CFG, HostHealth()) == 3400
    assert agent_score_of(CFG, HostHealth(gateway_ok=False)) == 1800
    assert agent_score_of(CFG, HostHealth(bridge_ok=False, cpu_load=0.9)) == 1800
    assert agent_score_of(CFG, HostHealth(free_ram_gib=2)) == 3000
    assert agent_score_of(CFG, HostHealth(start_retries=4)) == 0


def test_metadata_slots_round_trip(tmp_path: Path) -> None:
    path = format_metadata(tmp_path, 3)
    try:
        write_slot(path, 2, {"host-id": 2, "score": 3400})
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            pytest.skip(f"no O_DIRECT on {tmp_path}")
        raise
    write_slot(path, 3, {"host-id": 3, "score": 0})
    assert read_slots(path, 3) == {2: {"host-id": 2, "score": 3400},
                                   3: {"host-id": 3, "score": 0}}
    assert os.path.getsize(path) == 4 * 4096


def test_engine_timeline_from_the_engine_guests_life() -> None:
    from hcisim.lab.guests.vmstate import StateRow
    from hcisim.lab.plane.run import engine_timeline

    rows = [StateRow("engine", "host3", 0.0, 60.0, "running", ""),
            StateRow("engine", "", 60.0, 145.0, "down", "lab"),
            StateRow("engine", "host1", 145.0, 152.0, "restarting", "lab"),
            StateRow("engine", "host1", 152.0, 300.0, "running", ""),
            StateRow("db1", "host3", 0.0, 60.0, "running", "")]
    assert [(t, k) for t, k, _, _ in engine_timeline(rows, "engine", 300.0)] == [
        (60.0, "vm_down"), (60.0, "engine_down"), (152.0, "vm_started"), (152.0, "engine_up")]
    assert engine_timeline(rows, "", 300.0) == []


def test_compare_has_no_lab_io_rows_for_a_run_that_measured_no_io() -> None:
    import math

    from hcisim.compare import compare_observations
    from hcisim.engines import observe
    from hcisim.scenario import load_scenario

    sc = load_scenario(Path(__file__).resolve().parents[2] / "scenarios"
                       / "lab-ha-engine-power-loss.yaml")
    model = observe("model", sc)
    lab = observe("model", sc)
    lab.meta["io_measured"] = False
    cmp = compare_observations(sc, model, lab)
    io = cmp[cmp["metric"].isin(["throughput", "max_stall", "heal_time"])]
    assert len(io) and all(math.isnan(v) for v in io["lab"]) and not io["model"].isna().any()
    ha = cmp[cmp["metric"] == "engine_up"]
    assert list(ha["lab"]) == list(ha["model"]) == [101.0]


def test_a_plane_scenario_must_run_guests() -> None:
    from hcisim.scenario import ScenarioError, load_scenario, with_overrides

    sc = load_scenario(Path(__file__).resolve().parents[2] / "scenarios"
                       / "lab-ha-power-loss.yaml")
    assert sc.lab.plane and sc.lab.vms == "guests"
    with pytest.raises(ScenarioError, match="plane: true needs vms: guests"):
        with_overrides(sc, {"lab.vms": "fio"})
