"""Run a sweep's runs: in this process, in worker processes, or on a Dask cluster.

Every run is :func:`hcisim.runner.run_scenario` on the model with the run's overrides and
seed, so the three ways give the same rows; only the order they finish in differs, and the
table is sorted afterwards. A run that raises becomes a row with its ``error`` filled in: one
bad corner of the grid should not throw away the other runs.
"""

from __future__ import annotations

import functools
import importlib
import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from hcisim.runner import EngineError
from hcisim.scenario import Scenario, with_overrides
from hcisim.sweep.grid import SweepError, SweepPlan, SweepRun
from hcisim.sweep.table import run_row

Progress = Callable[[int, int], None]  # runs done, runs in all


def run_dir(keep: Path, run: SweepRun) -> Path:
    return keep / f"p{run.point:04d}-r{run.replication:03d}"


def run_one(base: Scenario, run: SweepRun, keep: str | None = None) -> dict[str, Any]:
    """One run of the grid, as a table row (top-level so worker processes can import it)."""
    from hcisim.runner import run_scenario  # the model loads in the worker, not the parent

    try:
        sc = with_overrides(base, dict(run.overrides))
        out = None if keep is None else run_dir(Path(keep), run)
        return run_row(run, run_scenario(sc, engine="model", out=out))
    except Exception as exc:  # a run's failure is data for the table, not the end of the sweep
        return run_row(run, None, error=f"{type(exc).__name__}: {exc}")


def _serial(plan: SweepPlan, keep: str | None, tick: Callable[[], None]) -> list[dict[str, Any]]:
    rows = []
    for run in plan.runs:
        rows.append(run_one(plan.base, run, keep))
        tick()
    return rows


def _processes(plan: SweepPlan, workers: int, keep: str | None,
               tick: Callable[[], None]) -> list[dict[str, Any]]:
    # spawn, not fork: the parent runs a progress-bar thread, and forking a threaded process
    # can deadlock the child.
    ctx = multiprocessing.get_context("spawn")
    rows = []
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(run_one, plan.base, run, keep) for run in plan.runs]
            for fut in as_completed(futures):
                rows.append(fut.result())
                tick()
    except BrokenProcessPool as exc:
        raise EngineError(
            f"a sweep worker process died ({exc}); out of memory, or a script calling "
            "execute() without `if __name__ == '__main__':` (workers are spawned)") from None
    return rows


def _dask(plan: SweepPlan, address: str, keep: str | None,
          tick: Callable[[], None]) -> list[dict[str, Any]]:
    # distributed has no complete type hints; treat it as Any rather than sprinkle ignores.
    distributed: Any = importlib.import_module("distributed")
    try:
        client = distributed.Client(address, timeout="15s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise SweepError([f"--dask {address}: cannot connect ({exc})"]) from None
    rows = []
    try:
        task = functools.partial(run_one, plan.base, keep=keep)
        futures = client.map(task, list(plan.runs), pure=False)
        for fut in distributed.as_completed(futures):
            rows.append(fut.result())
            tick()
    finally:
        client.close()
    return rows


def execute(plan: SweepPlan, workers: int = 1, dask: str | None = None,
            keep: Path | None = None, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Rows of every run of ``plan`` (unordered). ``workers`` 1 runs in this process."""
    total = len(plan.runs)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    keep_s = None if keep is None else str(keep)
    if dask is not None:
        return _dask(plan, dask, keep_s, tick)
    if workers <= 1 or total <= 1:
        return _serial(plan, keep_s, tick)
    return _processes(plan, min(workers, total), keep_s, tick)


def errors(rows: Iterable[dict[str, Any]]) -> list[str]:
    return [f"point {r['point']} replication {r['replication']}: {r['error']}"
            for r in rows if r.get("error")]
