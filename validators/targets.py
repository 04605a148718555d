"""Validator targets: where the catalogue's claims are checked, and one run per scenario.

``--target`` takes an engine name (:mod:`hcisim.engines`): ``model`` (default),
``lab+netns``, ``lab+libvirt[://URI]``, ``hosts+ssh://root@h1,root@h2,root@h3`` (existing
servers over SSH: read-only checks and a baseline; the scenario's faults only with
``--allow-destructive``). The older ``lab``, ``lab:netns``, ``lab:libvirt`` and
``hosts:ssh://h1,ssh://h2,...`` mean the same.
"""

from __future__ import annotations

from pathlib import Path

# The machinery lives in the package (the installed pytest plugin uses it too).
from hcisim.pytest_plugin import Runs, Target, TargetError, claim_names, parse_target

__all__ = ["CATALOGUE", "REPO", "Runs", "Target", "TargetError", "claim_names", "parse_target",
           "scenario_files"]

REPO = Path(__file__).resolve().parents[1]
CATALOGUE = REPO / "scenarios"


def scenario_files(given: list[str] | None) -> list[Path]:
    """Scenario files named on the command line (files or folders), default the catalogue."""
    roots = [Path(g) for g in given] if given else [CATALOGUE]
    files: list[Path] = []
    for root in roots:
        if root.is_dir():
            files.extend(sorted(root.glob("*.yaml")))
        elif root.exists():
            files.append(root)
        else:
            raise TargetError(f"--scenarios {root}: no such file or folder")
    return files
