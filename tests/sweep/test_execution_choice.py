"""The sweep runs serially when a pool of worker processes would be slower (small grids,
cheap runs, one usable CPU), and in a pool when it pays for the workers' start."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hcisim.scenario import load_scenario
from hcisim.sweep import execute, parse_set, plan_sweep
from hcisim.sweep.execute import WORKER_START_S, Execution, choose_execution

BASE = load_scenario("scenarios/lab-power-loss.yaml")


def test_one_cpu_one_worker_or_one_run_is_serial() -> None:
    assert choose_execution(100, 8, cpus=1, run_s=60).mode == "serial"
    assert choose_execution(100, 1, cpus=8, run_s=60).mode == "serial"
    assert choose_execution(1, 8, cpus=8, run_s=60).mode == "serial"


def test_cheap_runs_stay_serial_and_costly_ones_use_the_pool() -> None:
    cheap = choose_execution(7, 2, cpus=2, run_s=0.5)  # a default.yaml run: ~0.5 s
    assert cheap.mode == "serial"
    assert "beats" in cheap.reason
    costly = choose_execution(63, 2, cpus=2, run_s=0.5)
    assert (costly.mode, costly.workers) == ("processes", 2)
    assert choose_execution(3, 8, cpus=2, run_s=30).workers == 2  # never more than CPUs


@given(runs=st.integers(2, 500), workers=st.integers(2, 16), cpus=st.integers(2, 16),
       run_s=st.floats(0.001, 600))
def test_the_choice_is_the_faster_estimate(runs: int, workers: int, cpus: int,
                                           run_s: float) -> None:
    how = choose_execution(runs, workers, cpus, run_s)
    n = min(workers, cpus, runs)
    serial_s, pool_s = runs * run_s, WORKER_START_S * n + runs * run_s / n
    assert how.mode == ("processes" if pool_s < serial_s else "serial")
    assert how.workers <= min(workers, cpus, runs)


def test_execute_says_how_it_ran_and_runs_everything() -> None:
    plan = plan_sweep(BASE, [parse_set("volumes[1].type=replica3,arbiter")], replications=1)
    told: list[Execution] = []
    rows = execute(plan, workers=4, decided=told.append)
    # two runs: both run here (one pays the imports, one is timed), none is left for workers
    assert [how.mode for how in told] == ["serial"]
    assert told[0].reason == "0 runs left"
    assert sorted((r["point"], r["replication"]) for r in rows) == [(0, 0), (1, 0)]
    assert all(r["error"] == "" for r in rows)
