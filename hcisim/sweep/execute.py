"""Run a sweep's runs: in this process, in worker processes, or on a Dask cluster.

Every run is :func:`hcisim.runner.run_scenario` on the model with the run's overrides and
seed, so the three ways give the same rows; only the order they finish in differs, and the
table is sorted afterwards. A run that raises becomes a row with its ``error`` filled in: one
bad corner of the grid should not throw away the other runs.

Worker processes cost time to start (spawn, import numpy/pandas/SimPy and the model: about
1.5 s each, measured on the 2-core CI machine), so :func:`choose_execution` runs a small or
cheap grid serially even when ``--workers`` asks for more: a run is timed in this
process after a first one that pays the imports (both rows count like any other), and the
rest go to a pool only when
``start_s x workers + rest x run_s / workers`` beats ``rest x run_s``. One usable CPU or one
run left is always serial. docs/sweeps.md states the rule.
"""

from __future__ import annotations

import functools
import importlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from hcisim.runner import EngineError
from hcisim.scenario import Scenario, with_overrides
from hcisim.sweep.grid import SweepError, SweepPlan, SweepRun
from hcisim.sweep.table import run_row

Progress = Callable[[int, int], None]  # runs done, runs in all
Mode = Literal["auto", "serial", "processes"]
WORKER_START_S = 1.5  # spawn + imports of one worker process, measured (module docstring)
DASK_MISSING = "--dask needs dask.distributed: pip install 'hcisim[dask]'"


# What a worker does with one run (default run_one; picklable: a top-level function or a
# functools.partial of one). `hcisim availability` passes its own replication runner.
class Task(Protocol):
    def __call__(self, base: Scenario, run: SweepRun,
                 keep: str | None = None) -> dict[str, Any]: ...


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


@dataclass(frozen=True)
class Execution:
    """How the runs are executed, and why (shown to the user, kept with the results)."""

    mode: Literal["serial", "processes", "dask"]
    workers: int
    reason: str

    def describe(self) -> str:
        if self.mode == "processes":
            return f"{self.workers} worker processes ({self.reason})"
        return f"{self.mode} ({self.reason})"


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def choose_execution(runs: int, workers: int, cpus: int, run_s: float,
                     start_s: float = WORKER_START_S) -> Execution:
    """Serial or a pool of worker processes for ``runs`` runs of about ``run_s`` each."""
    if workers <= 1:
        return Execution("serial", 1, "one worker asked for")
    if cpus <= 1:
        return Execution("serial", 1, "one usable CPU: workers would only take turns")
    if runs <= 1:
        return Execution("serial", 1, f"{runs} run{'' if runs == 1 else 's'} left")
    n = min(workers, cpus, runs)
    serial_s = runs * run_s
    pool_s = start_s * n + runs * run_s / n
    if pool_s >= serial_s:
        return Execution("serial", 1, f"{runs} runs of {run_s:.2f} s: serial ~{serial_s:.1f} s "
                         f"beats ~{pool_s:.1f} s on {n} workers that take {start_s} s to start")
    return Execution("processes", n, f"~{pool_s:.1f} s instead of ~{serial_s:.1f} s serial")


def _serial(base: Scenario, runs: Sequence[SweepRun], keep: str | None,
            tick: Callable[[], None], task: Task = run_one) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        rows.append(task(base, run, keep))
        tick()
    return rows


def _processes(base: Scenario, runs: Sequence[SweepRun], workers: int, keep: str | None,
               tick: Callable[[], None], task: Task = run_one) -> list[dict[str, Any]]:
    # spawn, not fork: the parent runs a progress-bar thread, and forking a threaded process
    # can deadlock the child.
    ctx = multiprocessing.get_context("spawn")
    rows = []
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        futures = [pool.submit(task, base, run, keep) for run in runs]
        for fut in as_completed(futures):
            rows.append(fut.result())
            tick()
    except BrokenProcessPool as exc:
        raise EngineError(
            f"a sweep worker process died ({exc}); out of memory, or a script calling "
            "execute() without `if __name__ == '__main__':` (workers are spawned)") from None
    finally:
        # not waiting: with every row in, the workers' exit (interpreter teardown, 0.7-1.4 s
        # measured) overlaps the caller's gathering and writing; concurrent.futures joins
        # them when this interpreter exits
        pool.shutdown(wait=False, cancel_futures=True)
    return rows


def _dask(plan: SweepPlan, address: str, keep: str | None,
          tick: Callable[[], None], task: Task = run_one) -> list[dict[str, Any]]:
    # distributed has no complete type hints; treat it as Any rather than sprinkle ignores.
    try:
        distributed: Any = importlib.import_module("distributed")
    except ImportError:
        raise SweepError([DASK_MISSING]) from None
    try:
        client = distributed.Client(address, timeout="15s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise SweepError([f"--dask {address}: cannot connect ({exc})"]) from None
    rows = []
    try:
        bound = functools.partial(task, plan.base, keep=keep)
        futures = client.map(bound, list(plan.runs), pure=False)
        for fut in distributed.as_completed(futures):
            rows.append(fut.result())
            tick()
    finally:
        client.close()
    return rows


def execute(plan: SweepPlan, workers: int = 1, dask: str | None = None,
            keep: Path | None = None, progress: Progress | None = None,
            task: Task = run_one, mode: Mode = "auto",
            decided: Callable[[Execution], None] | None = None) -> list[dict[str, Any]]:
    """Rows of every run of ``plan`` (unordered). ``workers`` 1 runs in this process; more
    are used only when they are faster (:func:`choose_execution`) unless ``mode`` says
    ``processes`` (or ``serial``). ``decided`` is told how the runs are executed."""
    total = len(plan.runs)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    def tell(how: Execution) -> None:
        if decided is not None:
            decided(how)

    keep_s = None if keep is None else str(keep)
    if dask is not None:
        tell(Execution("dask", 0, f"the Dask cluster at {dask}"))
        return _dask(plan, dask, keep_s, tick, task)
    if mode == "serial" or workers <= 1 or total <= 1:
        tell(Execution("serial", 1, "asked for" if mode == "serial" else
                       "one worker asked for" if workers <= 1 else "one run"))
        return _serial(plan.base, plan.runs, keep_s, tick, task)
    if mode == "processes":
        n = min(workers, total)
        tell(Execution("processes", n, "asked for"))
        return _processes(plan.base, plan.runs, n, keep_s, tick, task)
    # auto: the first two runs here (their rows count): the first pays this process's
    # imports, the second is timed; then decide for the rest
    head, rest = plan.runs[:2], plan.runs[2:]
    rows = _serial(plan.base, head[:1], keep_s, tick, task)
    started = time.perf_counter()
    rows += _serial(plan.base, head[1:], keep_s, tick, task)
    how = choose_execution(len(rest), workers, usable_cpus(), time.perf_counter() - started)
    tell(how)
    if how.mode == "processes":
        return rows + _processes(plan.base, rest, how.workers, keep_s, tick, task)
    return rows + _serial(plan.base, rest, keep_s, tick, task)


def errors(rows: Iterable[dict[str, Any]]) -> list[str]:
    return [f"point {r['point']} replication {r['replication']}: {r['error']}"
            for r in rows if r.get("error")]
