"""A 64-run sweep of the default scenario, serial vs all cores, and the speed-up.

Off by default; run with ``.venv/bin/pytest tests/benchmarks/test_bench_sweep.py -m benchmark
-s``. Wall times go to stdout and into the benchmark's extra_info; nothing here asserts a
time (the machine may be shared), only that both ways give the same table.
"""

from __future__ import annotations

import os
import resource
import time

import pandas as pd
import pytest

from hcisim.scenario import load_scenario
from hcisim.sweep import execute, parse_set, plan_sweep, results_table

# 2 x 2 grid x 16 replications = 64 runs
FACTORS = ("volumes[1].type=replica3,arbiter", "hosts[*].nics[1].gbps=10,25")
REPLICATIONS = 16


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@pytest.mark.benchmark
def test_sweep_64_runs_serial_vs_all_cores() -> None:
    plan = plan_sweep(load_scenario("scenarios/default.yaml"),
                      [parse_set(f) for f in FACTORS], REPLICATIONS)
    assert len(plan.runs) == 64
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    serial = results_table(plan, execute(plan, workers=1))
    t1, c1 = time.perf_counter(), time.process_time()
    kids0 = _children_cpu()
    parallel = results_table(plan, execute(plan, workers=cores))
    t2 = time.perf_counter()
    worker_cpu = _children_cpu() - kids0  # the pool is shut down: its workers are reaped
    pd.testing.assert_frame_equal(serial, parallel)
    assert (serial["error"] == "").all()
    serial_s, parallel_s = t1 - t0, t2 - t1
    print(f"\n64-run sweep of default.yaml: serial {serial_s:.1f} s wall, {c1 - c0:.1f} s CPU "
          f"({(c1 - c0) / 64 * 1000:.0f} ms CPU/run); {cores} workers {parallel_s:.1f} s wall, "
          f"{worker_cpu:.1f} s CPU in the workers; "
          f"speed-up {serial_s / parallel_s:.2f}x "
          f"(load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after: other "
          "processes on the machine take cores from both)")
