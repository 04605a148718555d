"""Open-loop disks (``catch_up: true``) make up after a stall what they could not do.

Oracles: a disk at rate ``r`` stalled ``S`` seconds owes ``r S``; it catches up at what its
path allows, ``C`` (measured here as what the same disk gets when it asks for far more than
its path carries), for ``r S / (C - r)`` seconds, then runs at ``r`` again; over a section
long enough it moves exactly ``r`` times the section's length, while a closed-loop disk
loses ``r S``. The backlog restarts at a change of the VM's load (fio's next job section),
not at a phase that keeps the load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hcisim.calibration.cases import lab_scenario
from hcisim.model import simulate
from hcisim.observations import Observations
from hcisim.scenario import Scenario, load_scenario, with_overrides

ROOT = Path(__file__).resolve().parents[2]
T_END = 45.0
POWER_LOSS = {"at_s": 10.0, "kind": "node_power_loss", "target": "host2"}  # never repaired
REL = 1e-9


def lone_writer(*, iops: float = 60.0, catch_up: bool = True, duration_s: float = T_END,
                faults: list[dict[str, Any]] | None = None,
                phases: list[dict[str, Any]] | None = None, **profile: Any) -> Scenario:
    """The validation cases' cluster (ping-timeout 5 s) with one writer, vm1 on host1;
    host2 loses power at 10 s for good (no heal competes with the catch-up)."""
    base = lab_scenario("catch-up", [POWER_LOSS] if faults is None else faults, duration_s,
                        iops=iops, phases=phases).model_dump(mode="json")
    base["io_profiles"]["writer"].update(catch_up=catch_up, **profile)
    base["vms"] = [vm for vm in base["vms"] if vm["name"] == "vm1"]
    return Scenario.model_validate(base)


def demand_of(sc: Scenario, profile: str = "writer") -> float:
    """The profile's demand, MB/s."""
    p = sc.io_profile(profile)
    assert p is not None
    return p.demand_mb_s


def rows_of(obs: Observations, vm: str = "vm1") -> pd.DataFrame:
    io = obs["vm_io"]
    rows = io[io["vm"] == vm].sort_values("t_start_s").reset_index(drop=True)
    rows["rate"] = rows["read_mb_s"] + rows["write_mb_s"]
    return rows


def moved_mb(rows: pd.DataFrame, a: float = 0.0, b: float = float("inf")) -> float:
    """MB the rows moved within [a, b)."""
    lo = rows["t_start_s"].clip(lower=a)
    hi = rows["t_end_s"].clip(upper=b)
    return float((rows["rate"] * (hi - lo).clip(lower=0.0)).sum())


def stall_of(rows: pd.DataFrame) -> tuple[float, float]:
    st = rows[rows["status"] == "stalled"]
    assert len(st) == 1, st
    return float(st["t_start_s"].iloc[0]), float(st["t_end_s"].iloc[0])


def path_allows(after_s: float) -> float:
    """What the disk's path carries after the stall: the same disk asking far more than
    any path carries (closed loop, so no backlog), its rate after ``after_s``."""
    rows = rows_of(simulate(lone_writer(iops=1e7, catch_up=False)))
    ok = rows[(rows["status"] == "ok") & (rows["t_start_s"] >= after_s - 1e-9)]
    return float(ok["rate"].iloc[0])


def test_stall_backlog_drains_at_path_minus_rate() -> None:
    """The exact catch-up after a survivor's stall, and the closed loop's loss."""
    sc = lone_writer()
    r = demand_of(sc)
    rows = rows_of(simulate(sc))
    s0, s1 = stall_of(rows)
    stall = s1 - s0
    assert 4.0 < stall < 12.0  # one to two ping-timeouts of 5 s
    c = path_allows(s1)
    assert c > 10 * r
    catch = rows[rows["t_start_s"] == s1].iloc[0]
    assert catch["status"] == "ok"
    assert catch["rate"] == pytest.approx(c, rel=REL)
    assert catch["demand_mb_s"] == pytest.approx(c, rel=REL)  # what it asks while behind
    assert catch["t_end_s"] - s1 == pytest.approx(r * stall / (c - r), rel=1e-6)
    after = rows[rows["t_start_s"] >= catch["t_end_s"] - 1e-12]
    assert (after["rate"] - r).abs().max() < r * 1e-9
    assert (after["demand_mb_s"] == r).all()
    # every MB demanded since t = 0 is done by the end
    assert moved_mb(rows) == pytest.approx(r * T_END, rel=REL)
    closed = rows_of(simulate(lone_writer(catch_up=False)))
    assert stall_of(closed) == (s0, s1)
    assert moved_mb(closed) == pytest.approx(r * (T_END - stall), rel=REL)


def test_catching_up_costs_one_event_whatever_the_rate() -> None:
    """Fluid: the catch-up ends at one milestone, at any IOPS (no event per I/O). The
    stall's end settles twice at one instant (compute hears of the storage), and each
    settle schedules the milestone (as a heal's): the first one fires as a no-op, so the
    catch-up costs two SimPy events here, at 30 or 600 IOPS alike."""
    events = {}
    for iops in (30.0, 60.0, 600.0):
        events[iops] = simulate(lone_writer(iops=iops)).meta["sim_events"]
    closed = simulate(lone_writer(catch_up=False)).meta["sim_events"]
    assert set(events.values()) == {closed + 2}


def test_a_new_load_starts_a_new_schedule() -> None:
    """A phase that changes the load mid-catch-up drops the backlog (fio's next job
    section has its own clock); one that keeps the load changes nothing."""
    r = demand_of(lone_writer())
    rows = rows_of(simulate(lone_writer()))
    _, s1 = stall_of(rows)
    caught = float(rows[rows["t_start_s"] == s1]["t_end_s"].iloc[0])
    mid = round((s1 + caught) / 2, 6)
    assert s1 < mid < caught
    same = rows_of(simulate(lone_writer(phases=[{"start_s": mid, "load": 1.0}])))
    assert moved_mb(same) == pytest.approx(r * T_END, rel=REL)
    catching = same[same["t_start_s"] >= s1].iloc[0]  # the phase did not split it
    assert catching["t_end_s"] == pytest.approx(caught, rel=1e-9) and catching["rate"] > r
    new = rows_of(simulate(lone_writer(phases=[{"start_s": mid, "load": 2.0}])))
    assert moved_mb(new, 0.0, mid) < r * mid * 0.99  # what the stall held back is not done
    later = new[new["t_start_s"] >= mid - 1e-12]
    assert (later["demand_mb_s"] == 2 * r).all()  # on schedule from its start
    assert moved_mb(new, mid) == pytest.approx(2 * r * (T_END - mid), rel=REL)


def test_closed_loop_default_keeps_the_model_as_it_was() -> None:
    """catch_up defaults to false; an explicit false is the same run."""
    sc = lone_writer(catch_up=False)
    data = sc.model_dump(mode="json")
    del data["io_profiles"]["writer"]["catch_up"]
    default = Scenario.model_validate(data)
    assert default.io_profile("writer") == sc.io_profile("writer")
    assert default.model_dump()["io_profiles"]["writer"]["catch_up"] is False
    a, b = simulate(sc), simulate(default)
    pd.testing.assert_frame_equal(a["vm_io"], b["vm_io"])
    assert a.meta["sim_events"] == b.meta["sim_events"]


def test_queue_depth_below_the_rate_never_catches_up() -> None:
    """A disk whose queue depth cannot even carry its rate has no headroom: the backlog
    only grows, the demand stays the rate, no milestone comes."""
    # 1 slot of 1 MiB: the path carries a few hundred MB/s at most; ask for more
    sc = lone_writer(iops=5000.0, block_kib=1024, queue_depth=1)
    r = demand_of(sc)
    rows = rows_of(simulate(sc))
    ok = rows[rows["status"] == "ok"]
    assert (ok["rate"] < r).all()
    assert (ok["demand_mb_s"] == r).all()
    closed = simulate(lone_writer(iops=5000.0, block_kib=1024, queue_depth=1,
                                  catch_up=False))
    assert moved_mb(rows) == pytest.approx(moved_mb(rows_of(closed)), rel=REL)


def test_the_docs_example_runs_and_meets_its_demand(tmp_path: Path) -> None:
    """docs/scenarios.md's open-loop example: each survivor moves its demand over the run;
    closed loop, it loses what the stall held back."""
    text = (ROOT / "docs" / "scenarios.md").read_text()
    section = text.split("### Open-loop workloads")[1]
    path = tmp_path / "catch-up.yaml"
    path.write_text(section.split("```yaml\n")[1].split("```")[0])
    sc = load_scenario(path)
    r = demand_of(sc, "fio")
    assert r == pytest.approx(0.4915, abs=5e-5)  # the figure the page quotes
    obs = simulate(sc)
    closed = simulate(with_overrides(sc, {"io_profiles.fio.catch_up": False}))
    for vm in ("vm1", "vm3"):
        assert moved_mb(rows_of(obs, vm)) == pytest.approx(r * sc.duration_s, rel=REL)
        assert moved_mb(rows_of(closed, vm)) < r * (sc.duration_s - 4.0)
