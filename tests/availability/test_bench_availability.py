"""Speed of availability studies (benchmark: off by default; `pytest -m benchmark -s`).

Issue 16's targets for the availability command: one simulated year of the default cluster
with the default failure table in under 0.1 s, and 1,000 cluster-years in under a minute on
this 2-core machine. Printed: the CPU time of one simulated year (the mean over ten drawn
years, as the study runs them: record="intervals") as min / median / max over
``HCISIM_BENCH_REPS`` repetitions (default 5; the machine is shared, so the minimum is the
figure to compare), and the wall time of a study of ``HCISIM_BENCH_YEARS`` cluster-years
(default 100) on all cores with its extrapolation to 1,000, beside the replications' own
CPU time (wall depends on what else runs on the machine). Asserts nothing about time;
before and after figures: docs/availability.md (Speed).
"""

from __future__ import annotations

import os
import statistics
import time

import pytest

from hcisim.availability import load_failure_table, plan_study, replication_scenario, run_study
from hcisim.model import simulate
from hcisim.scenario import load_scenario

YEAR_TARGET_CPU_S = 0.1
THOUSAND_YEARS_TARGET_WALL_S = 60.0
# before this session's speed work (c3127ef), this machine at load 9-10: min / median / max (n=7)
YEAR_BEFORE_CPU_S = (0.107, 0.117, 0.129)


@pytest.mark.benchmark
def test_one_simulated_year_and_a_study() -> None:
    base, table = load_scenario(None), load_failure_table()
    plan = plan_study(base, 1.0, 10)
    scenarios = [replication_scenario(plan.base, run, table) for run in plan.runs]
    events = [simulate(sc, record="intervals").meta["sim_events"] for sc in scenarios]
    reps = max(5, int(os.environ.get("HCISIM_BENCH_REPS", "5")))
    per_year = []
    for _ in range(reps):
        c0 = time.process_time()
        for sc in scenarios:
            simulate(sc, record="intervals")
        per_year.append((time.process_time() - c0) / len(scenarios))
    best = min(per_year)
    print(f"\none year of {base.name} (mean of {len(scenarios)} drawn years, intervals): "
          f"min {best:.4f} s CPU, median {statistics.median(per_year):.4f}, max "
          f"{max(per_year):.4f} (n={reps}; target {YEAR_TARGET_CPU_S} s "
          f"{'met' if best <= YEAR_TARGET_CPU_S else 'MISSED'}; before "
          f"{'/'.join(f'{x:.3f}' for x in YEAR_BEFORE_CPU_S)}), "
          f"{sum(events) / len(events):.0f} SimPy events")
    years = int(os.environ.get("HCISIM_BENCH_YEARS", "100"))
    workers = os.cpu_count() or 1
    load0 = os.getloadavg()[0]
    w0 = time.perf_counter()
    _, t = run_study(base, table, 1.0, years, workers=workers)
    wall = time.perf_counter() - w0
    per_1000 = 1000 * wall / years
    # the replications' own CPU (each row's cpu_s, in whichever process ran it): what the
    # study would take on cores it had to itself, whatever the other jobs on the machine
    cpu = float(t.runs["cpu_s"].sum())
    print(f"{years} cluster-years on {workers} worker(s): {wall:.1f} s wall ({per_1000:.0f} s "
          f"per 1000 cluster-years; target {THOUSAND_YEARS_TARGET_WALL_S:.0f} s "
          f"{'met' if per_1000 <= THOUSAND_YEARS_TARGET_WALL_S else 'MISSED'}; load average "
          f"{load0:.1f} -> {os.getloadavg()[0]:.1f}); the replications' CPU {cpu:.1f} s, "
          f"{cpu / years:.4f} s each: {1000 * cpu / years / workers:.0f} s per 1000 "
          f"cluster-years on {workers} free core(s), plus the workers' start")
    assert (t.runs["error"] == "").all() and len(t.runs) == years
