"""What-if sweeps: a factorial grid of scenario overrides x seeded replications, run in
parallel (worker processes or a Dask cluster), gathered into one table with plots."""

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
from hcisim.sweep.output import write_sweep
from hcisim.sweep.table import results_table, run_row

__all__ = [
    "Factor", "SweepError", "SweepPlan", "SweepRun", "errors", "execute", "expand",
    "parse_set", "plan_sweep", "replication_seed", "results_table", "run_one", "run_row",
    "split_levels", "write_sweep",
]
