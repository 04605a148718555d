"""What-if sweeps: a factorial grid of scenario overrides x seeded replications, run in
parallel (worker processes or a Dask cluster), gathered into one table with plots.

``write_sweep`` (the page and its plots: matplotlib) is imported when first asked for, so a
worker process that only runs replications does not import matplotlib (~1 s of its start)."""

from typing import TYPE_CHECKING, Any

from hcisim.sweep.execute import errors, execute, run_one
from hcisim.sweep.grid import (
    Factor,
    SweepError,
    SweepPlan,
    SweepRun,
    expand,
    parse_set,
    plan_sweep,
    replication_seed,
    split_levels,
)
from hcisim.sweep.table import results_table, run_row

if TYPE_CHECKING:
    from hcisim.sweep.output import write_sweep

__all__ = [
    "Factor", "SweepError", "SweepPlan", "SweepRun", "errors", "execute", "expand",
    "parse_set", "plan_sweep", "replication_seed", "results_table", "run_one", "run_row",
    "split_levels", "write_sweep",
]


def __getattr__(name: str) -> Any:
    if name == "write_sweep":
        from hcisim.sweep.output import write_sweep

        return write_sweep
    raise AttributeError(f"module 'hcisim.sweep' has no attribute {name!r}")
