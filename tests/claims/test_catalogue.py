"""The catalogue as a whole: every claim kind has a judge, claims know only the vocabulary."""

from __future__ import annotations

import json
import subprocess
import sys
import typing

from hcisim.claims import JUDGES, Verdict, evaluate
from hcisim.scenario.claims import ClaimSpec
from tests.claims.cases import build, healthy_run, scenario


def test_every_claim_kind_of_the_scenario_schema_has_a_judge() -> None:
    union = typing.get_args(ClaimSpec)[0]
    kinds = {typing.get_args(m.model_fields["kind"].annotation)[0]
             for m in typing.get_args(union)}
    assert kinds == set(JUDGES)


def test_claims_import_only_the_shared_vocabulary() -> None:
    code = ("import sys, hcisim.claims; "
            "print(sorted(m for m in sys.modules if m.startswith('hcisim.')))")
    mods = json.loads(subprocess.run([sys.executable, "-c", code], check=True,
                                     capture_output=True, text=True).stdout.replace("'", '"'))
    outside = [m for m in mods if not m.startswith(
        ("hcisim.claims", "hcisim.scenario", "hcisim.observations", "hcisim.placement"))]
    assert outside == []


def test_every_verdict_is_json_and_keeps_the_scenario_order() -> None:
    claims = [{"kind": k, **extra} for k, extra in (
        ("zero_downtime", {"max_stall_s": 30}), ("vm_restart_within", {"within_s": 120}),
        ("replicas", {}), ("no_split_brain", {}), ("heal_within", {"within_s": 60}),
        ("throughput_at_least", {"mb_s": 1}), ("latency_p99_at_most", {"ms": 10}),
        ("ha_reservation", {}), ("usable_capacity_at_least", {"gb": 10}))]
    claims[0]["name"] = "survivors"
    verdicts = evaluate(scenario(claims), build(healthy_run()))
    assert [v.kind for v in verdicts] == [c["kind"] for c in claims]
    assert verdicts[0].name == "survivors" and verdicts[1].name == "vm_restart_within"
    assert all(v.verdict == "pass" for v in verdicts), [v for v in verdicts if not v.passed]
    for v in verdicts:
        d = json.loads(json.dumps(v.to_dict(), allow_nan=False))
        assert Verdict(**d).to_dict() == d
