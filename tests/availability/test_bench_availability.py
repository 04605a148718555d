"""Speed of availability studies (benchmark: off by default; `pytest -m benchmark -s`).
Prints the CPU time of one simulated year of the default cluster with the default failure
table, and the wall time of a study on all cores. Asserts nothing about time."""

from __future__ import annotations

import os
import time

import pytest

from hcisim.availability import load_failure_table, plan_study, replication_scenario, run_study
from hcisim.model import simulate
from hcisim.scenario import load_scenario


@pytest.mark.benchmark
def test_one_simulated_year_and_a_study() -> None:
    base, table = load_scenario(None), load_failure_table()
    plan = plan_study(base, 1.0, 10)
    cpu, events = [], []
    for run in plan.runs:
        sc = replication_scenario(plan.base, run, table)
        c0 = time.process_time()
        obs = simulate(sc)
        cpu.append(time.process_time() - c0)
        events.append(obs.meta["sim_events"])
    print(f"\none year of {base.name}: {sum(cpu) / len(cpu):.3f} s CPU "
          f"(min {min(cpu):.3f}, max {max(cpu):.3f}), {sum(events) / len(events):.0f} events")
    years = int(os.environ.get("HCISIM_BENCH_YEARS", "100"))
    workers = os.cpu_count() or 1
    w0 = time.perf_counter()
    _, t = run_study(base, table, 1.0, years, workers=workers)
    wall = time.perf_counter() - w0
    print(f"{years} cluster-years on {workers} worker(s): {wall:.1f} s wall "
          f"({1000 * wall / years:.0f} s per 1000 cluster-years)")
    assert (t.runs["error"] == "").all() and len(t.runs) == years
