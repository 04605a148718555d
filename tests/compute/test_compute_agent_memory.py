"""The hosted-engine agent's free-memory penalty (ovirt-hosted-engine-ha ``states.py``
``_penalize_memory``: -400 when vdsm's memFree < the engine VM's memSize, not in EngineUp),
with one definition of the free memory (:func:`agent_free_ram_gib`) for the model and the
lab's HA agent; the model now applies it in the takeover check too."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcisim.lab.plane import ha_agent
from hcisim.lab.plane.ha_agent import agent_score_of
from hcisim.model import StorageModel
from hcisim.observations import Observations
from hcisim.placement.hosted_engine import (
    FREE_MEMORY_PENALTY,
    RETRY_MAX_ATTEMPTS,
    HostHealth,
    agent_cpu_load,
    agent_free_ram_gib,
    agent_score,
)
from hcisim.placement.inventory import cluster_of
from hcisim.scenario import Scenario, load_scenario, with_overrides
from hcisim.scenario.compute import HostedEngine

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
HE = HostedEngine()

healths = st.builds(HostHealth, cpu_load=st.floats(0, 1), gateway_ok=st.booleans(),
                    bridge_ok=st.booleans(), start_retries=st.integers(0, 5),
                    engine_here=st.booleans())


@given(healths, st.floats(-64, 512), st.floats(-64, 512), st.floats(0.5, 64))
def test_score_never_drops_as_free_memory_grows(h: HostHealth, a: float, b: float,
                                                engine_ram: float) -> None:
    lo, hi = sorted((a, b))
    assert agent_score(HE, _with_free(h, lo), engine_ram) <= \
        agent_score(HE, _with_free(h, hi), engine_ram)


@given(healths, st.floats(0, 64), st.floats(0.5, 64))
def test_penalty_is_400_below_the_engine_vms_memory_unless_it_runs_here(
        h: HostHealth, short_by: float, engine_ram: float) -> None:
    enough = agent_score(HE, _with_free(h, engine_ram), engine_ram)
    short = agent_score(HE, _with_free(h, engine_ram - short_by - 1e-3), engine_ram)
    if h.engine_here or h.start_retries > RETRY_MAX_ATTEMPTS:
        assert short == enough  # EngineUp skips it; a zeroed score stays 0
    else:
        assert short == max(0, enough - FREE_MEMORY_PENALTY)


@given(st.dictionaries(st.sampled_from(["engine", "a", "b", "c"]), st.floats(0, 32)),
       st.floats(0, 256))
def test_free_memory_is_host_ram_less_the_other_vms(vms: dict[str, float],
                                                    host_ram: float) -> None:
    free = agent_free_ram_gib(host_ram, vms, "engine")
    others = sum(r for v, r in vms.items() if v != "engine")
    assert abs(free - (host_ram - others)) < 1e-9
    # the engine VM's own RAM never counts; every other VM's does
    assert agent_free_ram_gib(host_ram, {**vms, "engine": 1e6}, "engine") == free
    assert agent_free_ram_gib(host_ram, {**vms, "d": 1.0}, "engine") == \
        pytest.approx(free - 1.0)


def test_lab_agent_and_model_score_alike() -> None:
    # the lab's agent_score_of reads its config; the same health gives the same score
    cfg = {"base_score": HE.base_score, "vm": "engine", "vm_ram_gib": {"engine": 1.0}}
    free = agent_free_ram_gib(8.0, {"engine": 1.0, "f1": 3.0, "f2": 4.5}, "engine")
    assert free == 0.5
    for h in (HostHealth(free_ram_gib=free), HostHealth(free_ram_gib=free, engine_here=True),
              HostHealth(free_ram_gib=2.0, cpu_load=0.75)):
        assert agent_score_of(cfg, h) == agent_score(HE, h, 1.0)
    assert agent_score_of(cfg, HostHealth(free_ram_gib=free)) == 3400 - FREE_MEMORY_PENALTY


def test_lab_agent_health_reports_the_shared_free_memory(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the lab's HaAgent.health with its probes stubbed (no lab here): the free memory it
    # reports is agent_free_ram_gib of the VMs its vdsm agent lists as not down
    agent = object.__new__(ha_agent.HaAgent)
    agent.cfg = {"vm": "engine", "gateway": ["10.0.0.2", 54321],
                 "vm_ram_gib": {"engine": 1.0, "db1": 2.0, "app1": 3.0, "gone": 4.0},
                 "hosts": {"host1": {"ram_gib": 8, "cores": 4}}}
    agent.h = types.SimpleNamespace(name="host1", MGMT_IF="mgmt0")  # type: ignore[assignment]
    agent.vm = "engine"
    agent.st = ha_agent.AgentState()
    monkeypatch.setattr(ha_agent.HaAgent, "cpu_load", lambda self: 0.0)
    monkeypatch.setattr(ha_agent, "reachable", lambda *a: True)
    monkeypatch.setattr(ha_agent, "link_up", lambda *a: True)
    vms = {"engine": {"status": "running"}, "db1": {"status": "running"},
           "app1": {"status": "paused"}, "gone": {"status": "down"}}
    h = agent.health(vms, engine_here=True)
    assert h.free_ram_gib == agent_free_ram_gib(8, {"engine": 1.0, "db1": 2.0, "app1": 3.0},
                                                "engine") == 3.0
    assert h.engine_here


def _with_free(h: HostHealth, free: float) -> HostHealth:
    return HostHealth(cpu_load=h.cpu_load, free_ram_gib=free, gateway_ok=h.gateway_ok,
                      bridge_ok=h.bridge_ok, start_retries=h.start_retries,
                      engine_here=h.engine_here)


def takeover(filler_ram_gib: float) -> Scenario:
    """lab-ha-engine-takeover with three 4-vCPU VMs on host1 and on host2 (CPU load 12 / 16:
    -700 on either survivor), each of ``filler_ram_gib``. host3 loses its management link
    (the model's score there: 3400 - 1600 = 1800); the engine moves if a survivor scores
    >= 2600: 2700 with enough free memory, 2300 without (< 1 GiB free of 8)."""
    sc = load_scenario(SCENARIOS / "lab-ha-engine-takeover.yaml")
    fillers: list[dict[str, Any]] = [
        {"name": f"fill{i}", "host": host, "vcpus": 4, "ram_gib": filler_ram_gib,
         "ha": False}
        for i, host in enumerate(["host1"] * 3 + ["host2"] * 3)]
    return with_overrides(sc, {"vms": [*(v.model_dump(exclude_none=True) for v in sc.vms),
                                       *fillers]})


def engine_events(obs: Observations) -> list[str]:
    ev = obs["events"]
    return list(ev[ev["kind"].isin(["engine_down", "engine_up"])]["kind"])


def test_free_memory_penalty_decides_the_takeover_in_the_model() -> None:
    roomy = StorageModel(takeover(2.0)).run()  # 8 - 6 = 2 GiB free >= 1: 2700, it moves
    assert engine_events(roomy) == ["engine_down", "engine_up"]
    st_ = roomy["vm_state"]
    assert str(st_[st_["vm"] == "engine"].sort_values("t_start_s")["host"].iloc[-1]) in \
        ("host1", "host2")
    tight = StorageModel(takeover(2.5)).run()  # 0.5 GiB free < 1: 2300, the engine stays
    assert engine_events(tight) == []
    st_ = tight["vm_state"]
    assert set(st_[st_["vm"] == "engine"]["host"]) == {"host3"}


@given(st.dictionaries(st.sampled_from(["engine", "a", "b", "c"]), st.integers(0, 32)),
       st.floats(1, 256))
def test_cpu_load_is_the_other_vms_share_never_the_engines(vms: dict[str, int],
                                                          capacity: float) -> None:
    """cpu-load-no-engine (broker/submonitors/cpu_load_no_engine.py: ``load -
    engine_load``): the engine VM's own CPU never counts against the host it runs on."""
    load = agent_cpu_load(capacity, vms, "engine")
    others = sum(n for v, n in vms.items() if v != "engine")
    assert load == min(1.0, others / capacity)
    assert agent_cpu_load(capacity, {**vms, "engine": 10_000}, "engine") == load
    assert agent_cpu_load(capacity, vms, None) >= load


def test_a_busy_engine_vm_does_not_chase_itself_off_its_host() -> None:
    """The engine VM on host3 with every vCPU of it; host1 loses its management link, so
    the agents compare scores (the model does at a management cut). Counted as host3's
    load, the engine's own vCPUs would score host3 3400 - 1000 = 2400, the takeover margin
    (800) below idle host2 (3400), and the agents would move a healthy engine for its own
    load. Not counted (as ovirt-ha-agent does): host3 3400, the engine stays."""
    sc = load_scenario(SCENARIOS / "lab-ha-engine-takeover.yaml")
    capacity = int(cluster_of(sc).vcpu_capacity("host3"))
    vms = [{**v.model_dump(exclude_none=True), "vcpus": capacity} for v in sc.vms]
    cut = [{"at_s": 60, "kind": "nic_loss", "target": "host1", "network": "management"}]
    obs = StorageModel(with_overrides(sc, {"vms": vms, "faults": cut, "claims": []})).run()
    assert engine_events(obs) == []
    st_ = obs["vm_state"]
    assert set(st_[st_["vm"] == "engine"]["host"]) == {"host3"}
