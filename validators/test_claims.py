"""Every claim of every catalogue scenario holds on the target (see conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hcisim.pytest_plugin import check_claim
from hcisim.scenario import load_scenario
from validators.targets import Runs


def test_claim(claim_case: tuple[Path, int], runs: Runs,
               record_property: Callable[[str, object], None]) -> None:
    path, index = claim_case
    if index < 0:
        load_scenario(path)  # raises the ScenarioError that names the bad field
        pytest.fail(f"{path}: could not be loaded")
    sc, obs = runs.of(path)
    check_claim(sc, obs, sc.claims[index], record_property)
