"""The hosted engine's +800 takeover (``lab-ha-engine-takeover``): the engine's host loses
its management link only.

host3 runs the engine VM. Its HA agent's gateway probe and management bridge fail (score
3400 - 1600 - 600 = 1200); host1 and host2 score 3400, at least ``takeover_margin`` (800)
more, so host3's agent goes EngineUp -> EngineStop and stops the engine VM through its
local vdsm agent (reachable on the host itself). The lease is released with the qemu, so
a survivor starts the engine at its next loop without sanlock's host_dead wait, exactly
once; the engine VM's write history (two boots, one per host) never overlaps. No host has
power management: host3 is not fenced. The model's timeline is printed beside the lab's.
Needs root, the netns lab's packages, sanlock, qemu and gcc.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from hcisim.engines import observe
from hcisim.lab.guests.lab import check_vm
from hcisim.lab.plane import sanlock as sl
from hcisim.scenario import load_scenario
from tests.plane.labplane import running_plane

pytestmark = [pytest.mark.lab, pytest.mark.slow]
SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "lab-ha-engine-takeover.yaml"


def first(ev: pd.DataFrame, kind: str, target: str, after: float) -> float | None:
    rows = ev[(ev.kind == kind) & (ev.target == target) & (ev.t_s >= after)]
    return float(rows.t_s.min()) if len(rows) else None


def test_engine_guest_moves_when_its_host_scores_800_less() -> None:
    sc = load_scenario(SCENARIO)
    he = sc.compute.hosted_engine
    fault = sc.faults[0]
    mev = observe("model", sc).tables["events"]
    m_down = first(mev, "engine_down", "engine", fault.at_s)
    m_up = first(mev, "engine_up", "engine", fault.at_s)
    assert m_down is not None and m_up is not None
    with running_plane(sc, "ha-takeover") as (be, plane):
        assert plane.ha_started_at is not None  # the agents' history is full before the cut
        time.sleep(max(0.0, plane.ha_started_at + he.host_data_wait_s + 2 * he.agent_loop_s
                       - time.time()))
        t_cut = be.inject(fault)
        deadline = time.monotonic() + 120

        def booted_elsewhere() -> list[dict[str, object]]:
            return [e for e in plane.agent_events() if e["vm"] == "engine"
                    and e["event"] == "UP" and e["t"] > t_cut and e["host"] != "host3"]

        while not booted_elsewhere():
            assert time.monotonic() < deadline, [
                (round(e["t"] - t_cut, 1), e["host"], e["event"], e.get("state", ""),
                 e.get("score", "")) for e in plane.ha_events() if e["t"] > t_cut]
            time.sleep(1)
        time.sleep(4 * he.agent_loop_s)  # the other agents' view settles; no second start
        t0 = t_cut - fault.at_s
        new_host = str(booted_elsewhere()[0]["host"])
        history = check_vm(be, "engine", "engine", new_host)
        obs = plane.observations(sc, t0, time.time(), [(t_cut, fault)], {"engine": history})
        ha = [e for e in plane.ha_events() if e["t"] > t_cut]
        agent = [e for e in plane.agent_events() if e["t"] > t_cut and e["vm"] == "engine"]
        be.restore(fault)
    ev = obs["events"]
    t_f = fault.at_s
    down, up = first(ev, "engine_down", "engine", t_f), first(ev, "engine_up", "engine", t_f)
    print(f"\n{'step':44s} {'model s':>8s} {'lab s':>8s}")
    for step, m, lab in (("engine stopped by host3's HA agent (engine_down)", m_down, down),
                         ("engine up on a survivor", m_up, up)):
        print(f"{step:44s} {m - t_f:8.1f} {'-' if lab is None else f'{lab - t_f:8.1f}':>8s}")
    print("HA agents:", [(round(e["t"] - t_cut, 1), e["host"], e["event"], e.get("state", ""),
                          e.get("score", ""), e.get("best_remote", "")) for e in ha])
    print(f"engine boots: {[(b.boot, b.acked) for b in history.boots]}")
    # host3's agent, not the engine or sanlock, stopped the VM: its score fell by the
    # gateway (1600) and bridge (600) penalties, 800 or more below the best alive host
    stops = [e for e in ha if e["event"] == "STOP"]
    assert [e["host"] for e in stops] == ["host3"], ha
    assert int(stops[0]["score"]) == 3400 - 1600 - 600
    assert int(stops[0]["best_remote"]) - int(stops[0]["score"]) >= he.takeover_margin
    # the engine ran again exactly once, on a survivor, without host_dead's wait
    ups = [e for e in agent if e["event"] == "UP"]
    assert [e["host"] for e in ups] == [new_host] and new_host in ("host1", "host2"), agent
    assert down is not None and up is not None
    assert up - t_f < sl.host_dead_s(sc.compute.fencing.lease_io_timeout_s)
    # the model's timeline: stopped at the agents' next loop, up a boot later; the lab's
    # stop waits for its own loop plus the probe, its start for the survivors' next loop
    # and sanlock, its boot is the guest's (not the model's 15 s)
    loops = 2 * he.agent_loop_s + 2.0
    assert m_down - t_f <= down - t_f <= m_down - t_f + loops
    assert up - down <= m_up - m_down + loops + 20.0
    # no power management: host3 stays, not fenced
    assert first(ev, "host_fenced", "host3", t_f) is None
    # the write history: the engine VM's two boots (host3's, then the new host's) never
    # overlapped, and nothing acknowledged was lost
    assert len(history.boots) == 2 and not history.overlaps, \
        [o.describe(t0) for o in history.overlaps]
    lost = [(a.boot, a.seq, round((a.t_end or 0.0) - t_cut, 3), history.copies.get(a.seq),
             None if history.readable is None else history.readable.get(a.seq))
            for a in history.acked if history.lost(a.seq)]
    assert history.lost_count == 0, lost
    assert first(ev, "vm_ran_twice", "engine", 0.0) is None
