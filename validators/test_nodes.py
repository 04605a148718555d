"""lab:libvirt: the deployed node VMs pass the acceptance's read-only checks (glusterd, volume
options as intended, brick filesystems, mounts, time in sync), as run right after deploy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from validators.targets import Runs


def test_deployed_nodes(node_scenario: Path, runs: Runs) -> None:
    sc, obs = runs.of(node_scenario)
    checks = obs.meta.get("node_checks")
    if not isinstance(checks, dict):
        pytest.fail(f"{sc.name}: the lab recorded no node checks", pytrace=False)
    if "skipped" in checks or "error" in checks:
        pytest.fail(f"{sc.name}: node checks did not run: {checks}", pytrace=False)
    problems = {f"{host}/{check}": found
                for host, by_check in checks.items() for check, found in by_check.items()
                if found}
    if problems:
        pytest.fail(f"{sc.name}: node checks failed on {obs.engine}:\n"
                    + json.dumps(problems, indent=1), pytrace=False)
