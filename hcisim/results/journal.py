"""Provenance of a run, written as ``journal.json`` beside its results.

Modelled on Chaos Toolkit's journal: enough to tell later which software on which machine
produced a result, and whether the run completed, failed or was interrupted. A failed run's
journal carries the error, so a result folder is never silently half-written.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import hcisim

RunStatus = Literal["running", "completed", "failed", "interrupted"]

# The package's source folder; a ``.git`` beside it means hcisim runs from a checkout.
_SOURCE = Path(hcisim.__file__).resolve().parent


def hcisim_version() -> str:
    """The installed distribution's version (the package's own constant when not installed)."""
    try:
        return metadata.version("hcisim")
    except metadata.PackageNotFoundError:
        return hcisim.__version__


@cache
def git_commit(source: Path = _SOURCE) -> dict[str, Any] | None:
    """Commit (and whether the tree had local changes) when hcisim runs from a git checkout;
    None from an installed wheel or without git."""
    root = source.parent
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no", "--", "hcisim"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def provenance() -> dict[str, Any]:
    """Which hcisim, Python and machine: the same for every run of this process."""
    uname = platform.uname()
    return {
        "hcisim_version": hcisim_version(),
        "git": git_commit(),
        "python": {"version": platform.python_version(),
                   "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "platform": {"system": uname.system, "release": uname.release,
                     "machine": uname.machine, "platform": platform.platform()},
        "node": uname.node,
    }


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


@dataclass
class Journal:
    """What happened in one run. ``to_dict`` is the ``journal.json`` document."""

    scenario: str
    seed: int | None
    engine: str
    started: float
    status: RunStatus = "running"
    finished: float | None = None
    error: dict[str, Any] | None = None
    outcome: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "scenario": self.scenario,
            "seed": self.seed,
            "engine": self.engine,
            "status": self.status,
            "started": _iso(self.started),
            "finished": None if self.finished is None else _iso(self.finished),
            "wall_s": None if self.finished is None else round(self.finished - self.started, 3),
            **provenance(),
            "error": self.error,
        }
        doc.update(self.outcome)
        return doc
