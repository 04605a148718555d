"""Maintenance of Gluster hosts: the engine's refusals (quorum, heal pending) and a rolling
maintenance that waits for heal between hosts; the pure rule, the compute model with a
scripted storage (every time worked out by hand), and the storage model in `hcisim run`."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pandas as pd
import pytest
import simpy

from hcisim.model.compute import ComputeModel
from hcisim.model.compute.maintenance import RETRY_S
from hcisim.observations import Recorder, conform
from hcisim.placement.maintenance_rules import maintenance_refusal
from hcisim.runner import engine_observations
from hcisim.scenario import Scenario, load_scenario, with_overrides
from tests.compute.fakes import ScriptedStorage

ALL_UP = {"data": [("host1", True), ("host2", True), ("host3", True)]}
CLEAN = {"data": [("host1", 0), ("host2", 0), ("host3", 0)]}


def test_quorum_refusal_counts_the_other_up_bricks() -> None:
    assert maintenance_refusal("host1", ALL_UP, CLEAN) is None
    host3_down = {"data": [("host1", True), ("host2", True), ("host3", False)]}
    why = maintenance_refusal("host1", host3_down, CLEAN)
    assert why is not None and why.startswith("Gluster quorum cannot be met for data")
    # the host whose brick is already down takes nothing away: accepted
    assert maintenance_refusal("host3", host3_down, CLEAN) is None


def test_unsynced_entries_refuse_only_the_hosts_whose_bricks_hold_them() -> None:
    # host2 came back: host1's and host3's bricks index what it missed, host2's none
    after_host2 = {"data": [("host1", 12), ("host2", 0), ("host3", 12)]}
    assert maintenance_refusal("host2", ALL_UP, after_host2) is None
    why = maintenance_refusal("host1", ALL_UP, after_host2)
    assert why == "unsynced entries present in Gluster bricks of host1: data (12)"
    # quorum is checked first: with host3 down, host1 is refused for quorum
    host3_down = {"data": [("host1", True), ("host2", True), ("host3", False)]}
    why = maintenance_refusal("host1", host3_down, after_host2)
    assert why is not None and why.startswith("Gluster quorum")


def _scenario(ops: list[dict[str, Any]], duration_s: float = 4000.0) -> Scenario:
    """The default cluster with a 1 GiB working set per VM, so every evacuation converges
    (with all of its RAM re-dirtied db1 is given up: test_compute_process)."""
    base = load_scenario()
    hot = {f"vms[{i}].working_set_gib": 1 for i in range(len(base.vms))}
    return with_overrides(base, {"faults": [], "operations": ops, "duration_s": duration_s,
                                 **hot})


def _run(sc: Scenario, script: Any = None) -> tuple[Recorder, ComputeModel, ScriptedStorage]:
    env = simpy.Environment()
    rec = Recorder()
    port = ScriptedStorage(env)
    port.bricks = {k: list(v) for k, v in ALL_UP.items()}
    port.unsynced = {k: list(v) for k, v in CLEAN.items()}
    cm = ComputeModel(env, sc, rec, port)
    cm.start()
    if script is not None:
        env.process(script(env, port))
    env.run(until=sc.duration_s)
    cm.finish(sc.duration_s)
    return rec, cm, port


def _ops(rec: Recorder) -> pd.DataFrame:
    ev = conform("events", rec.frame("events"))
    return ev[ev["kind"] == "operation"]


def test_a_refused_maintenance_leaves_the_host_up_with_its_vms() -> None:
    sc = _scenario([{"at_s": 100, "kind": "maintenance", "host": "host1"}], 600)
    before = None

    def pending(env: simpy.Environment, port: ScriptedStorage) -> Generator[Any, Any, None]:
        port.unsynced = {"data": [("host1", 3), ("host2", 0), ("host3", 3)]}
        yield env.timeout(0)

    rec, cm, port = _run(sc, pending)
    before = {v for v, h in cm.initial_placement.items() if h == "host1"}
    assert before, "the default scenario has VMs on host1"
    ops = _ops(rec)
    refused = ops[ops["detail"].str.startswith("maintenance refused")]
    assert list(refused["t_s"]) == [100.0] and list(refused["target"]) == ["host1"]
    assert "unsynced entries" in refused["detail"].iloc[0]
    assert cm.host_state["host1"] == "up"
    assert conform("migrations", rec.frame("migrations")).empty
    assert not [c for c in port.calls if c[1] == "host_maintenance"]
    assert {v for v, h in cm.placement.items() if h == "host1"} == before


def test_rolling_maintenance_waits_for_heal_between_hosts() -> None:
    """Oracle: host1 goes first at 10 s; hold 300 s after it is empty, then activate.
    The script plays the storage: on host1's activation its peers' bricks hold unsynced
    entries for 95 s (its heal). host2 is asked at once and refused, asked again every
    RETRY_S: accepted at the first retry after the heal, i.e. activation + 100 s; host3 the
    same after host2's activation."""
    hold, heal_s = 300.0, 95.0
    sc = _scenario([{"at_s": 10, "kind": "rolling_maintenance", "hold_s": hold}], 6000)

    def storage(env: simpy.Environment, port: ScriptedStorage) -> Generator[Any, Any, None]:
        def activated(host: str, entering: bool) -> None:  # its peers index what it missed
            port.calls.append((env.now, "host_maintenance", (host, entering)))
            if not entering:
                port.unsynced = {"data": [(h, 0 if h == host else 7)
                                          for h in ("host1", "host2", "host3")]}
                env.process(healed())

        def healed() -> Generator[Any, Any, None]:
            yield env.timeout(heal_s)
            port.unsynced = {k: list(v) for k, v in CLEAN.items()}

        port.host_maintenance = activated  # type: ignore[method-assign]
        yield env.timeout(0)

    rec, cm, port = _run(sc, storage)
    calls = [(t, args) for t, name, args in port.calls if name == "host_maintenance"]
    assert [args for _, args in calls] == [
        ("host1", True), ("host1", False), ("host2", True), ("host2", False),
        ("host3", True), ("host3", False)]
    mig = conform("migrations", rec.frame("migrations"))
    assert (mig["outcome"] == "converged").all()
    first = mig[mig["src_host"] == "host1"]  # host1 goes first: every VM it had leaves it
    assert set(first["vm"]) == {v for v, h in cm.initial_placement.items() if h == "host1"}
    entered = {args[0]: t for t, args in calls if args[1]}
    left = {args[0]: t for t, args in calls if not args[1]}
    for host in entered:
        assert left[host] == pytest.approx(entered[host] + hold)  # hold after it emptied
    # host2 and host3: refused at the activation before, accepted at the retry after heal
    for prev, host in (("host1", "host2"), ("host2", "host3")):
        starts = mig[mig["src_host"] == host]["t_start_s"]
        asked = left[prev] + RETRY_S * (heal_s // RETRY_S + 1)
        assert float(starts.min()) == pytest.approx(asked)
    ops = _ops(rec)
    waits = ops[ops["detail"].str.startswith("rolling maintenance waits")]
    assert list(waits["target"]) == ["host2", "host3"]
    assert ops["detail"].eq("rolling maintenance: done").any()
    assert all(s == "up" for s in cm.host_state.values())


def test_rolling_maintenance_with_the_storage_model_heals_before_the_next_host() -> None:
    """`hcisim run`'s model: VMs write while host1's bricks are away, so its peers index
    what it missed; the next host enters maintenance only once the heal table says host1's
    brick is healed, and every host's VMs leave it without pausing."""
    sc = _scenario([{"at_s": 60, "kind": "rolling_maintenance", "hold_s": 300}], 7200)
    obs = engine_observations(sc, "model")
    ev = obs["events"]
    ops = ev[ev["kind"] == "operation"]
    entered = ops[ops["detail"] == "maintenance: entered"]
    assert list(entered["target"]) == ["host1", "host2", "host3"]
    assert ops["detail"].eq("rolling maintenance: done").any()
    heal = obs["heal"]
    for host, nxt in (("host1", "host2"), ("host2", "host3")):
        healed = heal[heal["brick"].astype(str).str.contains(host)]["t_end_s"]
        assert not healed.empty, f"{host}'s brick was healed after its return"
        t_next = float(entered[entered["target"] == nxt]["t_s"].iloc[0])
        first_mig = obs["migrations"]
        t_asked = float(first_mig[first_mig["src_host"] == nxt]["t_start_s"].min())
        assert t_asked >= float(healed.min()), f"{nxt} left before {host} was healed"
        assert t_next > t_asked
    vs = obs["vm_state"]
    assert vs[vs["state"] == "paused"].empty
