"""The result store: a folder per run that no other run shares, ``runs/latest``, and the
journal (provenance and status) written however a run ends."""

from hcisim.results.journal import Journal, RunStatus, git_commit, hcisim_version, provenance
from hcisim.results.record import TRACEBACK, RunRecord, default_out, recording, write_result
from hcisim.results.store import (
    LATEST,
    RUNS,
    ResultFolderError,
    new_run_folder,
    point_latest,
    result_folder,
    use_folder,
)

__all__ = [
    "LATEST", "RUNS", "TRACEBACK", "Journal", "ResultFolderError", "RunRecord", "RunStatus",
    "default_out", "git_commit", "hcisim_version", "new_run_folder", "point_latest",
    "provenance", "recording", "result_folder", "use_folder", "write_result",
]
