"""Every claim of every catalogue scenario holds on the target (see conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from hcisim.claims import judge_claim
from hcisim.scenario import load_scenario
from validators.targets import Runs


def test_claim(claim_case: tuple[Path, int], runs: Runs,
               record_property: Callable[[str, object], None]) -> None:
    path, index = claim_case
    if index < 0:
        load_scenario(path)  # raises the ScenarioError that names the bad field
        pytest.fail(f"{path}: could not be loaded")
    sc, obs = runs.of(path)
    claim = sc.claims[index]
    v = judge_claim(sc, obs, claim)
    for key in ("verdict", "measured", "limit", "unit"):
        record_property(key, getattr(v, key))
    record_property("engine", obs.engine)
    evidence = json.dumps(v.evidence, indent=1, default=str)
    if v.expected == "fail":
        if v.verdict != "fail":
            pytest.fail(f"{sc.name}: claim {v.name!r} is documented to fail (expect: fail) "
                        f"but was {v.verdict} on {obs.engine}: measured {v.measured} {v.unit}",
                        pytrace=False)
        return
    if v.verdict == "n/a":
        pytest.skip(f"{v.name}: not applicable on this run: {evidence}")
    if v.verdict != "pass":
        pytest.fail(f"{sc.name}: claim {v.name!r} ({v.kind}) failed on {obs.engine}: "
                    f"measured {v.measured} {v.unit}, limit {v.limit} {v.unit}\n"
                    f"evidence: {evidence}", pytrace=False)
