"""Availability and durability over years: Monte Carlo replications of the fluid model with
fault schedules drawn from a failure table, checked against a Markov oracle.

docs/availability.md says what is drawn, what is measured and how to read the results.
"""

from hcisim.availability.oracle import ChainResult, replica_set
from hcisim.availability.schedule import draw_schedule, shorten_repairs
from hcisim.availability.study import (
    StudyTables,
    plan_study,
    replication_scenario,
    run_replication,
    run_study,
)
from hcisim.availability.table import (
    FailureTable,
    FailureTableError,
    load_failure_table,
    table_from_dict,
)

__all__ = [
    "ChainResult", "FailureTable", "FailureTableError", "StudyTables", "draw_schedule",
    "load_failure_table", "plan_study", "replica_set", "replication_scenario",
    "run_replication", "run_study", "shorten_repairs", "table_from_dict",
]
