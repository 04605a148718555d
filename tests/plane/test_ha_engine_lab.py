"""The hosted engine as a real guest: its host loses power (``lab-ha-engine-power-loss``).

host3 runs the engine VM (a guest on the ``engine`` volume), db1, app1 and scratch. After
the power cut nothing is restarted while the engine is down; the HA agents on host1 and
host2 see host3's metadata go stale, the best-scoring one starts the engine VM, which
runs once host3's delta lease in the ``hosted-engine`` lockspace is dead (sanlock), on
one host only. Then the engine fences host3 and restarts db1 before app1; scratch (not
HA) stays down. The model's timeline for the same scenario is printed beside the lab's
(compare's HA rows) and the lab must keep within the model's window.
Needs root, the netns lab's packages, sanlock, qemu and gcc.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from hcisim.claims import evaluate
from hcisim.compare import compare_observations
from hcisim.engines import observe
from hcisim.lab.plane import sanlock as sl
from hcisim.placement.ha_rules import lease_timeline
from hcisim.scenario import load_scenario
from tests.plane.labplane import running_plane

pytestmark = [pytest.mark.lab, pytest.mark.slow]
SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "lab-ha-engine-power-loss.yaml"
ROWS = ("engine_down", "lease_acquired", "engine_up", "host_non_responsive", "host_fenced",
        "ha_restart")


def first(ev: pd.DataFrame, kind: str, target: str, after: float) -> float | None:
    rows = ev[(ev.kind == kind) & (ev.target == target) & (ev.t_s >= after)]
    return float(rows.t_s.min()) if len(rows) else None


def test_engine_host_power_loss_engine_first_then_ha_vms_by_priority() -> None:
    sc = load_scenario(SCENARIO)
    f = sc.compute.fencing
    he = sc.compute.hosted_engine
    io = f.lease_io_timeout_s
    fault = sc.faults[0]
    model = observe("model", sc)
    with running_plane(sc, "ha-engine") as (be, plane):
        engine = plane.engine
        assert plane.ha_started_at is not None  # the agents' history is full before the cut
        time.sleep(max(0.0, plane.ha_started_at + he.host_data_wait_s + 2 * he.agent_loop_s
                       - time.time()))
        t_fail = be.inject(fault)
        deadline = time.monotonic() + sl.host_dead_s(io) + 240
        while not {"db1", "app1"} <= {e.target for e in engine.events
                                       if e.kind == "vm_started" and e.t > t_fail}:
            assert time.monotonic() < deadline, \
                [(round(e.t - t_fail, 1), e.kind, e.target) for e in engine.events]
            time.sleep(1)
        time.sleep(2 * he.agent_loop_s)
        t0 = t_fail - fault.at_s
        obs = plane.observations(sc, t0, time.time(), [(t_fail, fault)])
        ha = [e for e in plane.ha_events() if e["t"] > t_fail]
        agent = [e for e in plane.agent_events() if e["t"] > t_fail]
    ev = obs["events"]
    t_f = fault.at_s
    cmp = compare_observations(sc, model, obs)
    rows = cmp[cmp["metric"].isin(ROWS)]
    print("\n" + rows[["metric", "subject", "model", "lab", "abs_error"]].to_string(index=False))
    print("HA agents:", [(round(e["t"] - t_fail, 1), e["host"], e["event"], e.get("state", ""),
                          e.get("score", "")) for e in ha])
    at = {(m, s): (mv, lv) for m, s, mv, lv in
          zip(rows["metric"], rows["subject"], rows["model"], rows["lab"], strict=True)}
    # the engine came back on a survivor, started by one HA agent, its lease acquired once
    up = first(ev, "engine_up", "engine", t_f)
    assert up is not None, ha
    starts = [e for e in agent if e["vm"] == "engine" and e["event"] == "UP"]
    assert len(starts) == 1 and starts[0]["host"] in ("host1", "host2"), starts
    assert any(e["event"] == "START" and e["host"] == starts[0]["host"] for e in ha)
    # engine first: the engine acts on host3 and restarts VMs only once it is up
    nr = first(ev, "host_non_responsive", "host3", t_f)
    fenced = first(ev, "host_fenced", "host3", t_f)
    db1, app1 = first(ev, "vm_started", "db1", t_f), first(ev, "vm_started", "app1", t_f)
    assert nr is not None and fenced is not None and db1 is not None and app1 is not None
    assert up <= nr <= fenced <= db1 <= app1
    assert first(ev, "vm_started", "scratch", t_f) is None  # not HA: lost with host3
    # priority: app1 (medium) is launched only once db1 (high) is up; both on survivors
    launched = {e["vm"]: e for e in reversed(agent) if e["event"] == "LAUNCHED"}
    booted = {e["vm"]: e for e in reversed(agent) if e["event"] == "UP"}
    assert launched["app1"]["t"] >= booted["db1"]["t"]
    assert {booted[vm]["host"] for vm in ("db1", "app1")} <= {"host1", "host2"}
    # compare's HA rows are the lab's own events
    for vm, t in (("db1", db1), ("app1", app1), ("engine", up)):
        assert at[("ha_restart", vm)][1] == pytest.approx(t - t_f, abs=0.01)
    # sanlock's engine lock: no start before host3's delta lease can be dead (its last
    # renewal at most 2 io_timeouts before the cut), within the model's window otherwise
    m_acq, l_acq = at[("lease_acquired", "engine")]
    lease = lease_timeline(io, 0.0)
    assert l_acq >= sl.host_dead_s(io) - 2 * io
    ping = sc.volumes[0].options.ping_timeout_s
    assert m_acq - 2 * lease.phase_spread_s - 1.0 <= l_acq <= \
        m_acq + 2 * lease.phase_spread_s + ping + 10.0
    # from the engine's return the engine role's clock is the model's (same timeouts; the
    # lab adds at most a poll and a connection timeout; its grace can be 0.5 s shorter: the
    # lab's engine sees the engine VM on its new host, the model counts it on host3)
    m_up = at[("engine_up", "engine")][0]
    m_nr = at[("host_non_responsive", "host3")][0]
    slack = f.vds_refresh_rate_s + f.vds_connection_timeout_s + 2.0
    assert m_nr - m_up - 2.0 <= (nr - up) <= m_nr - m_up + slack
    m_fence = at[("host_fenced", "host3")][0]
    assert m_fence - m_up - 2.0 <= (fenced - up) <= m_fence - m_up + slack
    verdicts = evaluate(sc, obs)
    print("claims:", [(v.kind, v.verdict, v.measured) for v in verdicts])
    assert all(v.verdict == "pass" for v in verdicts), verdicts
