"""The model's speed (storage with the compute model wired in), and proof that the event
count does not grow with IOPS.

Two runs, each with the target issue 16 set for it (the kernel ten times faster):

- a month: 30 days of the default cluster with 100 VMs, a daily load cycle and 10 faults.
  Before the speed work (commit b3479cc) it took 0.48 s CPU on this 2-core machine when
  quiet (1,727 SimPy events, 380 solver calls, 1.26 ms per change); target 10x faster,
  0.048 s;
- a year: one simulated year of the built-in default cluster (13 VMs) with 20 faults of
  every kind, about what a year of failures looks like (the availability command's failure
  table draws about as many); target under 0.1 s.

Where they stand (session 5, 1c74d3c, CPU min / median / max, n=7, load 2.4-4.8): the
month 0.209 / 0.225 / 0.245 s (target missed, ~2.3x of 10x), the year 0.137 / 0.143 /
0.153 s at the full record (its target is met by the availability study's
record="intervals" year: tests/availability/test_bench_availability.py).
Before and after, and why the targets are not met yet: docs/model.md (Speed),
docs/availability.md (Speed) and
docs/validation.md.

Off by default; run with ``.venv/bin/pytest tests/benchmarks/test_bench_model.py -m benchmark
-s``. Times go to stdout; nothing asserts a time (the machine is shared). What is asserted is
the design rule: 10x the IOPS gives exactly the same number of SimPy events and the same VM
states.
"""

from __future__ import annotations

import math
import statistics
import time
import tracemalloc
from typing import Any

import pandas as pd
import pytest

from hcisim.model import simulate
from hcisim.model.recording import RecordLevel
from hcisim.observations import Observations
from hcisim.scenario import Scenario, load_scenario

DAY = 86_400.0
HOUR = 3_600.0
MONTH_BEFORE_CPU_S = 0.48  # b3479cc, this machine: 1,727 events, 380 solver calls
MONTH_TARGET_CPU_S = MONTH_BEFORE_CPU_S / 10
YEAR_TARGET_CPU_S = 0.1

FAULTS: tuple[dict[str, Any], ...] = (
    {"kind": "node_power_loss", "target": "host2", "duration_s": 300},
    {"kind": "brick_crash", "target": "host1", "duration_s": 600},
    {"kind": "nic_loss", "target": "host3", "duration_s": 120},
    {"kind": "node_hang", "target": "host1", "duration_s": 90, "heal_after_repair": False},
    {"kind": "partition", "target": "host2", "duration_s": 200},
    {"kind": "link_slowdown", "target": "host3", "duration_s": 3600, "rate_mbit": 1000},
    {"kind": "node_power_loss", "target": "host3", "duration_s": 1800},
    {"kind": "brick_crash", "target": "host2", "volume": "data", "duration_s": 60},
    {"kind": "nic_loss", "target": "host1", "duration_s": 600},
    {"kind": "disk_failure", "target": "host1", "duration_s": 7200},
)

# A year of failures for three hosts: disk replacements take a day, power and hardware
# faults hours, process crashes and hangs minutes.
YEAR_FAULTS: tuple[dict[str, Any], ...] = (
    {"kind": "brick_crash", "target": "host1", "duration_s": 300},
    {"kind": "node_power_loss", "target": "host2", "duration_s": 4 * HOUR},
    {"kind": "nic_loss", "target": "host3", "duration_s": 1800},
    {"kind": "node_hang", "target": "host1", "duration_s": 600},
    {"kind": "disk_failure", "target": "host2", "duration_s": DAY},
    {"kind": "brick_crash", "target": "host3", "volume": "data", "duration_s": 120},
    {"kind": "link_slowdown", "target": "host1", "duration_s": 6 * HOUR, "rate_mbit": 1000},
    {"kind": "partition", "target": "host2", "duration_s": 900},
    {"kind": "node_power_loss", "target": "host3", "duration_s": 2 * HOUR},
    {"kind": "brick_crash", "target": "host2", "duration_s": 60},
    {"kind": "nic_loss", "target": "host1", "network": "management", "duration_s": 1200},
    {"kind": "node_hang", "target": "host3", "duration_s": 300, "heal_after_repair": False},
    {"kind": "disk_failure", "target": "host3", "duration_s": 2 * DAY},
    {"kind": "node_power_loss", "target": "host1", "duration_s": 8 * HOUR},
    {"kind": "brick_crash", "target": "host1", "volume": "vmstore", "duration_s": 900},
    {"kind": "partition", "target": "host3", "duration_s": 300},
    {"kind": "nic_loss", "target": "host2", "duration_s": 3600},
    {"kind": "link_slowdown", "target": "host2", "duration_s": DAY, "rate_mbit": 2000},
    {"kind": "node_hang", "target": "host2", "duration_s": 120},
    {"kind": "node_power_loss", "target": "host2", "duration_s": HOUR},
)


def month_of_default(vms: int = 100, iops_factor: float = 1.0) -> Scenario:
    """The built-in default cluster for 30 days: ``vms`` VMs cloned from its dozen, a daily
    peak (08:00-18:00 at full load, 0.3 at night), one fault every three days."""
    d = load_scenario(None).model_dump(mode="json", exclude_none=True)
    d["name"] = "default-month"
    d["duration_s"] = 30 * DAY
    for prof in d["io_profiles"].values():
        for key in ("iops", "mb_s"):
            if prof.get(key) is not None:
                prof[key] *= iops_factor
    templates = [v for v in d["vms"] if not v["hosted_engine"]]
    clones = [v for v in d["vms"] if v["hosted_engine"]]
    hosts = [h["name"] for h in d["hosts"]]
    for i in range(vms - len(clones)):
        vm = dict(templates[i % len(templates)])
        vm["name"] = f"vm{i:03d}"
        vm["host"] = hosts[i % len(hosts)]
        clones.append(vm)
    d["vms"] = clones
    d["phases"] = [p for day in range(30) for p in (
        {"start_s": day * DAY, "load": 0.3}, {"start_s": day * DAY + 8 * 3600, "load": 1.0},
        {"start_s": day * DAY + 18 * 3600, "load": 0.3})]
    d["faults"] = [{**f, "at_s": (3 * i + 1) * DAY + 10 * 3600} for i, f in enumerate(FAULTS)]
    d["claims"] = []
    return Scenario.model_validate(d)


def year_of_default() -> Scenario:
    """The built-in default cluster (13 VMs, its load phases) for 365 days with a fault
    every 18 days, of every kind, in the afternoon."""
    d = load_scenario(None).model_dump(mode="json", exclude_none=True)
    d["name"] = "default-year"
    d["duration_s"] = 365 * DAY
    d["faults"] = [{**f, "at_s": (18 * i + 5) * DAY + 14 * HOUR}
                   for i, f in enumerate(YEAR_FAULTS)]
    d["claims"] = []
    return Scenario.model_validate(d)


REPS = 5  # the machine is shared: the minimum of five is the figure to compare


def _timed(sc: Scenario, record: RecordLevel = "full") -> tuple[Observations, list[float], float]:
    """Run once to warm imports and caches, then REPS times: (obs, CPU times, best's wall)."""
    simulate(sc, record=record)
    cpus: list[float] = []
    wall = math.inf
    obs: Observations | None = None
    for _ in range(REPS):
        t0, c0 = time.perf_counter(), time.process_time()
        obs = simulate(sc, record=record)
        cpus.append(time.process_time() - c0)
        if cpus[-1] == min(cpus):
            wall = time.perf_counter() - t0
    assert obs is not None
    return obs, cpus, wall


def _peak_mb(sc: Scenario) -> float:
    tracemalloc.start()
    try:
        simulate(sc)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def _line(what: str, obs: Observations, cpus: list[float], wall: float, target: float) -> str:
    events, solves = obs.meta["sim_events"], obs.meta["solver_calls"]
    cpu = min(cpus)
    return (f"{what}: {cpu:.3f} s CPU min, median {statistics.median(cpus):.3f}, max "
            f"{max(cpus):.3f}, n={len(cpus)} ({wall:.3f} s wall; target {target:.3f} s "
            f"{'met' if cpu <= target else 'MISSED'}), {events} SimPy events "
            f"({1e6 * cpu / max(events, 1):.0f} us CPU each), {solves} solver calls, "
            f"{len(obs['vm_io'])} vm_io rows, {len(obs['volume_state'])} volume_state rows")


@pytest.mark.benchmark
def test_month_of_default_cluster_and_events_independent_of_iops() -> None:
    sc = month_of_default()
    assert len(sc.vms) == 100 and len(sc.faults) == 10
    obs, cpu, wall = _timed(sc)
    busy = simulate(month_of_default(iops_factor=10.0))
    print(f"\n{_line('30 days, 100 VMs, 10 faults', obs, cpu, wall, MONTH_TARGET_CPU_S)}, "
          f"{int((obs['vm_state']['state'] == 'restarting').sum())} HA restarts, "
          f"peak {_peak_mb(sc):.1f} MB traced; before: {MONTH_BEFORE_CPU_S} s CPU")
    print(f"10x IOPS: {busy.meta['sim_events']} SimPy events, "
          f"{busy.meta['solver_calls']} solver calls")
    brief, cpu, wall = _timed(sc, "intervals")
    print(_line("same, record='intervals'", brief, cpu, wall, MONTH_TARGET_CPU_S))
    assert brief.meta["sim_events"] == obs.meta["sim_events"]
    pd.testing.assert_frame_equal(obs["vm_state"], brief["vm_state"])
    assert (obs["events"]["kind"] == "fault_start").sum() == 10
    # no event per I/O: 10x the IOPS moves the count by a handful at most. Not exactly
    # equal since the measured profile: its per-thread heal rate no longer bounds heal, the
    # heal flow's share of NIC and disk does, so VM load moves heal milestones (3,253 vs
    # 3,256 SimPy events at f0fdaa0; the same recorded events, heal's a little later)
    assert abs(busy.meta["sim_events"] - obs.meta["sim_events"]) <= 0.01 * obs.meta[
        "sim_events"]
    assert sorted(busy["events"]["kind"]) == sorted(obs["events"]["kind"])
    assert (obs["vm_state"]["state"] == "restarting").any()  # compute is wired in
    pd.testing.assert_frame_equal(obs["vm_state"], busy["vm_state"])


@pytest.mark.benchmark
def test_year_of_default_cluster() -> None:
    sc = year_of_default()
    obs, cpu, wall = _timed(sc)
    print(f"\n{_line('365 days, default cluster, 20 faults', obs, cpu, wall, YEAR_TARGET_CPU_S)}"
          f", peak {_peak_mb(sc):.1f} MB traced")
    brief, cpu, wall = _timed(sc, "intervals")
    print(_line("same, record='intervals'", brief, cpu, wall, YEAR_TARGET_CPU_S))
    assert brief.meta["sim_events"] == obs.meta["sim_events"]
    pd.testing.assert_frame_equal(obs["exposure"], brief["exposure"])
    events = obs["events"]
    assert (events["kind"] == "fault_start").sum() == len(YEAR_FAULTS)
    assert (events["kind"] == "fault_end").sum() == len(YEAR_FAULTS)
    assert (events["kind"] == "heal_done").any()
    assert len(obs["heal"]) > 0
