"""The observation vocabulary shared by the model, the labs, the claims and the report."""

from hcisim.observations.record import (
    Observations,
    Recorder,
    SchemaError,
    VocabularyError,
    conform,
    empty_table,
)
from hcisim.observations.schema import (
    COLUMNS,
    EVENT_KINDS,
    VM_IO_STATUSES,
    VM_STATES,
    EventKind,
    EventSource,
    VmIoStatus,
    VmState,
)
from hcisim.observations.summary import summarize
from hcisim.observations.vocabulary import check_vocabulary, vocabulary_problems

__all__ = [
    "COLUMNS", "EVENT_KINDS", "VM_IO_STATUSES", "VM_STATES", "EventKind", "EventSource",
    "Observations", "Recorder", "SchemaError", "VmIoStatus", "VmState", "VocabularyError",
    "check_vocabulary", "conform", "empty_table", "summarize", "vocabulary_problems",
]
