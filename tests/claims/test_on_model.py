"""Each claim passes and fails on real model runs (tolerance on either side of the truth)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from hcisim.claims import Verdict, judge_claim
from hcisim.observations import Observations
from hcisim.runner import engine_observations
from hcisim.scenario import ClaimSpec, Scenario, load_scenario, with_overrides

CATALOGUE = Path(__file__).resolve().parents[2] / "scenarios"
_SPEC: TypeAdapter[Any] = TypeAdapter(ClaimSpec)


@cache
def _run(name: str, overrides: tuple[tuple[str, Any], ...] = ()) -> tuple[Scenario,
                                                                         Observations]:
    sc = load_scenario(CATALOGUE / f"{name}.yaml")
    if overrides:
        sc = with_overrides(sc, dict(overrides))
    return sc, engine_observations(sc, "model")


def judge(name: str, claim: dict[str, Any],
          overrides: tuple[tuple[str, Any], ...] = ()) -> Verdict:
    sc, obs = _run(name, overrides)
    return judge_claim(sc, obs, _SPEC.validate_python(claim))


def test_zero_downtime_survivors_stall_at_least_one_ping_timeout() -> None:
    sc, _ = _run("replica3-power-loss")
    ping = sc.volumes[0].options.ping_timeout_s
    ok = judge("replica3-power-loss", {"kind": "zero_downtime", "max_stall_s": 4 * ping})
    assert ok.verdict == "pass"
    assert ok.measured is not None and ok.measured >= ping  # silent loss: stall >= T
    bad = judge("replica3-power-loss", {"kind": "zero_downtime", "max_stall_s": ping / 2})
    assert bad.verdict == "fail" and bad.measured == ok.measured


def test_vm_restart_within_on_a_power_loss() -> None:
    ok = judge("default", {"kind": "vm_restart_within", "within_s": 3600})
    assert ok.verdict == "pass" and ok.measured is not None and ok.measured > 1
    assert {e["failed_host"] for e in ok.evidence} == {"host2"}
    bad = judge("default", {"kind": "vm_restart_within", "within_s": 1})
    assert bad.verdict == "fail"


def test_replicas_two_during_the_outage_not_three() -> None:
    assert judge("replica3-power-loss", {"kind": "replicas", "min_copies": 2}).verdict == "pass"
    bad = judge("replica3-power-loss", {"kind": "replicas", "min_copies": 3})
    assert bad.verdict == "fail" and bad.measured == 2.0


def test_no_split_brain_holds_with_quorum_and_fails_with_quorum_off() -> None:
    assert judge("two-failures-quorum", {"kind": "no_split_brain"}).verdict == "pass"
    off = (("volumes[0].options.quorum_type", "none"),
           ("volumes[0].options.server_quorum_type", "none"))
    bad = judge("two-failures-quorum", {"kind": "no_split_brain"}, off)
    assert bad.verdict == "fail" and (bad.measured or 0) > 0
    assert bad.evidence[0]["witness"] == "fewer than 2 of 3 bricks"


def test_heal_within_either_side_of_the_measured_heal() -> None:
    ok = judge("replica3-power-loss", {"kind": "heal_within", "within_s": 3000})
    assert ok.verdict == "pass" and ok.measured is not None and ok.measured > 0
    bad = judge("replica3-power-loss", {"kind": "heal_within", "within_s": ok.measured / 2})
    assert bad.verdict == "fail"


def test_throughput_and_latency_either_side() -> None:
    tp = {"kind": "throughput_at_least", "window_s": [0, 500]}
    assert judge("replica3-power-loss", {**tp, "mb_s": 0.01}).verdict == "pass"
    assert judge("replica3-power-loss", {**tp, "mb_s": 1e4}).verdict == "fail"
    lat = {"kind": "latency_p99_at_most"}
    ok = judge("replica3-power-loss", {**lat, "ms": 1000})
    assert ok.verdict == "pass" and ok.measured is not None
    assert judge("replica3-power-loss", {**lat, "ms": ok.measured * 0.9}).verdict == "fail"


def test_ha_reservation_of_the_default_and_of_an_overfull_host() -> None:
    assert judge("default", {"kind": "ha_reservation"}).verdict == "pass"
    full = (("vms[1].ram_gib", 200),)  # db1 (host1) needs more than any survivor has free
    bad = judge("default", {"kind": "ha_reservation"}, full)
    assert bad.verdict == "fail"


def test_usable_capacity_of_the_default() -> None:
    ok = judge("default", {"kind": "usable_capacity_at_least", "gb": 7680, "volume": "data"})
    assert ok.verdict == "pass" and ok.measured == pytest.approx(7680.0)
    bad = judge("default", {"kind": "usable_capacity_at_least", "gb": 7681, "volume": "data"})
    assert bad.verdict == "fail"


def test_migration_claims_on_the_maintenance_evacuation() -> None:
    sc, obs = _run("maintenance")
    mig = obs["migrations"]
    assert not mig.empty and (mig["outcome"] == "converged").all()
    slowest = float((mig["t_end_s"] - mig["t_start_s"]).max())
    ok = judge("maintenance", {"kind": "migration_completes_within", "within_s": slowest})
    assert ok.verdict == "pass" and ok.measured == pytest.approx(slowest)
    assert judge("maintenance", {"kind": "migration_completes_within",
                                 "within_s": slowest * 0.99}).verdict == "fail"
    worst_ms = 1000 * float(mig["downtime_s"].max())
    assert 0 < worst_ms <= sc.compute.migration.downtime_ms
    assert judge("maintenance", {"kind": "migration_downtime_at_most",
                                 "ms": worst_ms}).verdict == "pass"
    assert judge("maintenance", {"kind": "migration_downtime_at_most",
                                 "ms": worst_ms * 0.99}).verdict == "fail"


def test_paused_at_most_on_a_quorum_loss() -> None:
    _, obs = _run("two-failures-quorum")
    st = obs["vm_state"]
    paused = st[st["state"] == "paused"]
    assert not paused.empty  # the model pauses VMs whose volume lost quorum
    ok = judge("two-failures-quorum", {"kind": "paused_at_most", "max_s": 1e6,
                                       "measure": "total"})
    assert ok.verdict == "pass" and ok.measured is not None and ok.measured > 0
    bad = judge("two-failures-quorum", {"kind": "paused_at_most", "max_s": ok.measured * 0.99,
                                        "measure": "total"})
    assert bad.verdict == "fail"
