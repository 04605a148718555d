"""ha_reservation (n+1) and usable_capacity_at_least, against hand computation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.claims import evaluate, ha_plan
from hcisim.observations import Recorder
from tests.claims.cases import BASE, build, scenario

HA = {"kind": "ha_reservation"}


def _vms(spec: list[tuple[str, str, float, int, bool]]) -> list[dict[str, Any]]:
    return [{"name": n, "host": h, "ram_gib": r, "vcpus": c, "ha": ha} for n, h, r, c, ha in spec]


def test_small_ha_vms_fit_on_the_survivors() -> None:
    (v,) = evaluate(scenario([HA]), build(Recorder()))
    assert v.verdict == "pass" and v.measured == 0.0
    lost2 = next(e for e in v.evidence if e["failed_host"] == "host2")
    # host2's HA VM b (8 GiB) goes to host1 or host3, each 64 GiB with one 8 GiB VM
    assert sorted(lost2["free_ram_gib_after"].values()) == [48.0, 56.0]


def test_too_much_ha_memory_on_one_host_fails_with_the_shortfall() -> None:
    vms = _vms([("big1", "host1", 40, 2, True), ("big2", "host1", 40, 2, True),
                ("x2", "host2", 40, 2, False), ("x3", "host3", 40, 2, False)])
    (v,) = evaluate(scenario([HA], vms=vms, faults=[]), build(Recorder()))
    # host1 fails: 80 GiB of HA VMs, 24 + 24 GiB free on the others: neither 40 GiB VM fits
    assert v.verdict == "fail" and v.measured == 2.0
    e = next(e for e in v.evidence if e.get("failed_host") == "host1")
    assert e["unplaced"] == ["big1", "big2"] and e["ram_short_gib"] == pytest.approx(80.0)
    assert e["ram_deficit_gib"] == pytest.approx(80.0 - 48.0)


def test_cpu_overcommit_is_the_vcpu_limit() -> None:
    vms = _vms([("a", "host1", 1, 8, True), ("b", "host2", 1, 8, False),
                ("c", "host3", 1, 8, False)])
    sc = scenario([HA], vms=vms, faults=[], compute={"cpu_overcommit": 8.0})
    assert evaluate(sc, build(Recorder()))[0].verdict == "pass"  # 64 vCPU per host
    sc = scenario([HA], vms=vms, faults=[], compute={"cpu_overcommit": 1.5})
    (v,) = evaluate(sc, build(Recorder()))  # 12 per host, 4 free on each: 8 fits nowhere
    e = next(e for e in v.evidence if e.get("failed_host") == "host1")
    # 8 vCPUs free in total: no deficit, fragmentation strands the 8-vCPU VM
    assert v.verdict == "fail" and e["unplaced"] == ["a"]
    assert e["vcpu_short"] == 8.0 and e["vcpu_deficit"] == 0.0


def test_pinning_limits_where_a_vm_may_restart() -> None:
    vms = _vms([("a", "host1", 8, 2, True), ("full", "host2", 60, 2, False)])
    vms[0]["pinned_to"] = ["host1", "host2"]
    (v,) = evaluate(scenario([HA], vms=vms, faults=[]), build(Recorder()))
    assert v.verdict == "fail" and v.evidence[0]["unplaced"] == ["a"]


def test_placement_of_the_run_beats_the_scenario() -> None:
    vms = _vms([("a", "host1", 40, 2, True), ("b", "host2", 40, 2, True),
                ("c", "host3", 8, 2, True)])
    vms[2]["host"] = None
    rec = Recorder()
    rec.add("failover_pairs", "c", "host1", "host3", True)  # scheduler put c beside a
    (v,) = evaluate(scenario([HA], vms=vms, faults=[]), build(rec))
    e = next(e for e in v.evidence if e.get("failed_host") == "host1")
    assert e["ha_vms"] == 2


def test_the_runs_own_failover_table_can_fail_it() -> None:
    rec = Recorder()
    for vm, h in (("a", "host1"), ("b", "host2"), ("c", "host3")):
        rec.add("failover_pairs", vm, h, "" if vm == "b" else "host3", vm != "c")
    (v,) = evaluate(scenario([HA]), build(rec))
    assert v.verdict == "fail"
    assert {"source": "failover_pairs", "no_failover_host": ["b"]} in v.evidence


def test_the_runs_failover_table_decides_when_present() -> None:
    vms = _vms([("big1", "host1", 40, 2, True), ("big2", "host1", 40, 2, True),
                ("x2", "host2", 40, 2, False), ("x3", "host3", 40, 2, False)])
    rec = Recorder()  # say the run's scheduler (other filters, other order) placed both
    rec.add("failover_pairs", "big1", "host1", "host2", True)
    rec.add("failover_pairs", "big2", "host1", "host3", True)
    (v,) = evaluate(scenario([HA], vms=vms, faults=[]), build(rec))
    assert v.verdict == "pass" and v.measured == 0.0
    assert "did not" in v.evidence[-1]["note"]  # the disagreement is shown, not hidden


def test_the_hosted_engine_is_restarted_first() -> None:
    vms = _vms([("app", "host1", 30, 2, True), ("x2", "host2", 30, 2, False),
                ("x3", "host3", 60, 2, False)])
    vms.append({"name": "engine", "host": "host1", "ram_gib": 16, "vcpus": 4,
                "hosted_engine": True, "priority": "low"})
    (v,) = evaluate(scenario([HA], vms=vms, faults=[]), build(Recorder()))
    # only host2 has room (34 GiB): the engine takes it, app (high or not) is left over
    e = next(e for e in v.evidence if e.get("failed_host") == "host1")
    assert e["unplaced"] == ["app"] and v.verdict == "fail"


def test_no_ha_vm_is_not_applicable() -> None:
    vms = _vms([("a", "host1", 8, 2, False)])
    assert evaluate(scenario([HA], vms=vms, faults=[]), build(Recorder()))[0].verdict == "n/a"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["host1", "host2", "host3"]), st.integers(1, 40),
                          st.integers(1, 8), st.booleans()), min_size=1, max_size=8))
def test_n_plus_one_bounds(spec: list[tuple[str, int, int, bool]]) -> None:
    """Necessary: a pass means every host's HA RAM fits in the survivors' total free RAM.
    Sufficient: if every host's HA VMs fit together on any one survivor, it passes."""
    vms = _vms([(f"v{i}", h, r, c, ha) for i, (h, r, c, ha) in enumerate(spec)])
    sc = scenario([HA], vms=vms, faults=[])
    (v,) = evaluate(sc, build(Recorder()))
    ram = {h: 64.0 - sum(r for hh, r, _, _ in spec if hh == h) for h in sc.host_names}
    cpu = {h: 32.0 - sum(c for hh, _, c, _ in spec if hh == h) for h in sc.host_names}
    need = {h: (sum(r for hh, r, _, ha in spec if hh == h and ha),
                sum(c for hh, _, c, ha in spec if hh == h and ha)) for h in sc.host_names}
    if v.verdict == "pass":
        for h, (r, _) in need.items():
            assert r <= sum(max(0.0, ram[o]) for o in sc.host_names if o != h) + 1e-9
    fits_anywhere = all(all(ram[o] >= r and cpu[o] >= c for o in sc.host_names if o != h)
                        for h, (r, c) in need.items())
    if fits_anywhere and any(ha for *_, ha in spec):
        assert v.verdict == "pass"
    plans = ha_plan(sc, build(Recorder()))
    for p in plans:
        assert set(p.placed) | set(p.unplaced) == set(p.ha_vms)
        assert all(dest != p.failed_host for dest in p.placed.values())


def _vols(kind: str, caps: tuple[float, float, float]) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    for h, cap in zip(data["hosts"], caps, strict=True):
        h["disks"] = [{"name": "brick0", "capacity_gb": cap}]
    data["volumes"] = [{"name": "data", "type": kind, "bricks": [
        {"host": "host1"}, {"host": "host2"}, {"host": "host3"}]}]
    return {"hosts": data["hosts"], "volumes": data["volumes"]}


@pytest.mark.parametrize(("kind", "caps", "usable"), [
    ("replica3", (3000.0, 3000.0, 3000.0), 9000.0 / 3),  # raw / 3
    ("replica3", (3000.0, 2000.0, 3000.0), 2000.0),  # the smallest brick
    ("arbiter", (4000.0, 4000.0, 100.0), 4000.0),  # one data brick; the arbiter holds no data
    ("arbiter", (4000.0, 3500.0, 100.0), 3500.0),
])
def test_usable_capacity_by_layout(kind: str, caps: tuple[float, float, float],
                                   usable: float) -> None:
    claims = [{"kind": "usable_capacity_at_least", "gb": usable},
              {"kind": "usable_capacity_at_least", "gb": usable + 1, "volume": "data"}]
    ok, short = evaluate(scenario(claims, **_vols(kind, caps)), build(Recorder()))
    assert (ok.verdict, short.verdict) == ("pass", "fail")
    assert ok.measured == pytest.approx(usable)


def test_volumes_sharing_disks_say_so() -> None:
    claims = [{"kind": "usable_capacity_at_least", "gb": 100}]
    vols = [{"name": n, "type": "replica3", "bricks": [
        {"host": "host1"}, {"host": "host2"}, {"host": "host3"}]} for n in ("data", "vmstore")]
    (v,) = evaluate(scenario(claims, volumes=vols), build(Recorder()))
    assert v.evidence[0]["shares_disks_with"] in (["vmstore"], ["data"])
