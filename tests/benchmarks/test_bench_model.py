"""The model's speed (storage with the compute model wired in): 30 days of the default
cluster with 100 VMs and 10 faults (target: about 2 s wall), and proof that the event count
does not grow with IOPS.

Off by default; run with ``.venv/bin/pytest tests/benchmarks/test_bench_model.py -m benchmark
-s``. Times go to stdout; nothing asserts a time (the machine is shared). What is asserted is
the design rule: 10x the IOPS gives exactly the same number of SimPy events.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import pytest

from hcisim.model import simulate
from hcisim.scenario import Scenario, load_scenario

DAY = 86_400.0
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


def month_of_default(vms: int = 100, iops_factor: float = 1.0) -> Scenario:
    """The built-in default cluster for 30 days: ``vms`` VMs cloned from its dozen, a daily
    peak (08:00-18:00 at full load, 0.3 at night), one fault every three days."""
    d = load_scenario(None).model_dump(mode="json")
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


@pytest.mark.benchmark
def test_month_of_default_cluster_and_events_independent_of_iops() -> None:
    sc = month_of_default()
    assert len(sc.vms) == 100 and len(sc.faults) == 10
    t0, c0 = time.perf_counter(), time.process_time()
    obs = simulate(sc)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    busy = simulate(month_of_default(iops_factor=10.0))
    print(f"\n30 days, 100 VMs, 10 faults: {wall:.2f} s wall, {cpu:.2f} s CPU "
          f"(engine {obs.meta['wall_s']:.2f} s), {obs.meta['sim_events']} SimPy events, "
          f"{obs.meta['solver_calls']} solver calls, {len(obs['vm_io'])} vm_io rows, "
          f"{len(obs['volume_state'])} volume_state rows, "
          f"{int((obs['vm_state']['state'] == 'restarting').sum())} HA restarts")
    print(f"10x IOPS: {busy.meta['sim_events']} SimPy events, "
          f"{busy.meta['solver_calls']} solver calls")
    assert (obs["events"]["kind"] == "fault_start").sum() == 10
    assert busy.meta["sim_events"] == obs.meta["sim_events"]
    assert (obs["vm_state"]["state"] == "restarting").any()  # compute is wired in
    pd.testing.assert_frame_equal(obs["vm_state"], busy["vm_state"])
