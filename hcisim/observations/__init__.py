"""The observation vocabulary shared by the model, the labs, the claims and the report."""

from hcisim.observations.record import Observations, Recorder, SchemaError, conform, empty_table
from hcisim.observations.schema import COLUMNS, EVENT_KINDS, VM_IO_STATUSES, VM_STATES
from hcisim.observations.summary import summarize

__all__ = [
    "COLUMNS", "EVENT_KINDS", "VM_IO_STATUSES", "VM_STATES", "Observations", "Recorder",
    "SchemaError", "conform", "empty_table", "summarize",
]
