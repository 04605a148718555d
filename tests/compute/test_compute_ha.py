"""The HA timeline and the hosted-engine agents, against the documented oVirt formulas."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.model.compute.ha import (
    fence_grace_s,
    host_failure_timeline,
    restart_schedule,
    retry_times,
)
from hcisim.placement.ha_rules import lease_host_dead_s
from hcisim.placement.hosted_engine import (
    HostHealth,
    agent_score,
    best_host,
    engine_restart,
    next_tick,
    takeover_host,
)
from hcisim.placement.inventory import VmSpec
from hcisim.scenario import make_fault
from hcisim.scenario.compute import Fencing, HaRestart, HostedEngine

F = Fencing()
HE = HostedEngine()


def test_grace_is_60_plus_half_second_per_vm_plus_20_for_spm() -> None:
    assert fence_grace_s(F, 10, spm=False) == 65.0
    assert fence_grace_s(F, 10, spm=True) == 85.0


def test_power_management_path() -> None:
    tl = host_failure_timeline(F, "h", "power_loss", 100.0, power_management=True,
                               running_vms=4, spm=True)
    assert tl.connecting_at_s == 120.0  # vdsConnectionTimeout
    assert tl.non_responsive_at_s == 120.0 + 60 + 2 + 20 + 30
    assert tl.fenced_at_s == tl.non_responsive_at_s
    assert tl.restart_ready_s(VmSpec("v", ha=True, lease=False)) == tl.fenced_at_s
    assert tl.restart_ready_s(VmSpec("n", ha=False)) is None


def test_lease_path_without_power_management() -> None:
    tl = host_failure_timeline(F, "h", "power_loss", 0.0, power_management=False,
                               running_vms=0, spm=False)
    assert tl.fenced_at_s is None
    # sanlock: the dead host's last renewal ~10 s before (half of 2 x io_timeout), the others
    # saw it ~10 s later and wait host_dead (8 x 10 + 60 s) past that, in whole seconds
    assert tl.lease_expired_at_s == 141.0
    # non-responsive at 20 + 60 + 30 = 110 s, before the lease is free: the lease decides
    assert tl.restart_ready_s(VmSpec("v", ha=True, lease=True)) == 141.0
    assert tl.restart_ready_s(VmSpec("nolease", ha=True, lease=False)) is None


def test_hang_is_noticed_only_after_vds_timeout() -> None:
    tl = host_failure_timeline(F, "h", "hang", 0.0, power_management=True, running_vms=0,
                               spm=False)
    assert tl.connecting_at_s == F.vds_timeout_s


def test_management_cut_keeps_vms_without_power_management() -> None:
    tl = host_failure_timeline(F, "h", "management_cut", 0.0, power_management=False,
                               running_vms=3, spm=False)
    assert tl.vms_stop_at_s() is None and math.isinf(tl.lease_expired_at_s)
    assert tl.restart_ready_s(VmSpec("v", ha=True)) is None
    cut = make_fault(at_s=0, kind="nic_loss", target="h", network="management")
    assert cut.host_loss == "management_cut"
    assert make_fault(at_s=0, kind="nic_loss", target="h").host_loss is None


def test_no_fencing_right_after_the_engine_started() -> None:
    tl = host_failure_timeline(F, "h", "power_loss", 0.0, power_management=True,
                               running_vms=0, spm=False, engine_up_from_s=400.0,
                               engine_started_at_s=400.0)
    assert tl.connecting_at_s == 420.0
    assert tl.fenced_at_s == 400.0 + F.disable_fence_at_startup_s


@settings(max_examples=100, deadline=None)
@given(st.floats(0, 1e4), st.booleans(), st.integers(0, 40), st.booleans(),
       st.sampled_from(["power_loss", "hang", "management_cut"]), st.floats(0, 2e4),
       st.booleans(), st.booleans())
def test_restart_never_before_detection_and_fencing_or_lease(
        t: float, pm: bool, n: int, spm: bool, loss: str, engine_from: float,
        ha: bool, lease: bool) -> None:
    tl = host_failure_timeline(F, "h", loss, t, power_management=pm,  # type: ignore[arg-type]
                               running_vms=n, spm=spm, engine_up_from_s=engine_from)
    ready = tl.restart_ready_s(VmSpec("v", ha=ha, lease=lease))
    if ready is None:
        return
    detected = max(t, engine_from) + (F.vds_timeout_s if loss == "hang"
                                      else F.vds_connection_timeout_s)
    assert ready >= detected + fence_grace_s(F, n, spm) + F.soft_fencing_s
    if not pm:  # never before another host's sanlock may take the lease
        assert ready >= t + lease_host_dead_s(F.lease_io_timeout_s)


def test_priority_tiers_wait_for_higher_ones_up_bounded() -> None:
    hi = VmSpec("hi", ha=True, priority="high", boot_s=100)
    mid = VmSpec("mid", ha=True, priority="medium", boot_s=10)
    lo = VmSpec("lo", ha=True, priority="low", boot_s=10)
    nowhere = VmSpec("nowhere", ha=True, priority="high")
    plan = restart_schedule([(hi, "a"), (mid, "b"), (lo, "b")], 50.0, HaRestart())
    by = {p.vm: p for p in plan}
    assert by["hi"].start_s == 50 and by["mid"].start_s == 150 and by["lo"].start_s == 160
    # a high-priority VM that fits nowhere never comes up: the others wait the full bound
    plan = restart_schedule([(hi, "a"), (nowhere, None), (mid, "b"), (lo, "b")], 50.0,
                            HaRestart())
    by = {p.vm: p for p in plan}
    assert by["nowhere"].host is None and math.isinf(by["nowhere"].start_s)
    assert by["mid"].start_s == by["lo"].start_s == 50 + 600
    slow = VmSpec("slow", ha=True, priority="high", boot_s=5000)
    plan = restart_schedule([(slow, "a"), (lo, "b")], 0.0, HaRestart(), engine_up_s=30.0)
    assert plan[1].start_s == 30.0 + 600.0  # blocked at most priority_block_max_s
    assert plan[0].start_s == 30.0  # not before the engine is up


def test_retries_short_then_long() -> None:
    times = retry_times(HaRestart(), 0.0, 4000.0)
    assert times[:10] == [30.0 * i for i in range(1, 11)]
    assert times[10] == 300.0 + 1800.0 and times[11] == 300.0 + 3600.0


def test_agent_score_penalties() -> None:
    assert agent_score(HE, HostHealth(), 16) == 3400
    assert agent_score(HE, HostHealth(gateway_ok=False), 16) == 1800
    assert agent_score(HE, HostHealth(bridge_ok=False), 16) == 2800
    assert agent_score(HE, HostHealth(cpu_load=0.8), 16) == 3400 - 800
    assert agent_score(HE, HostHealth(cpu_load=0.95), 16) == 2400
    assert agent_score(HE, HostHealth(free_ram_gib=8), 16) == 3000
    assert agent_score(HE, HostHealth(free_ram_gib=8, engine_here=True), 16) == 3400
    assert agent_score(HE, HostHealth(start_retries=2), 16) == 3300
    assert agent_score(HE, HostHealth(start_retries=4), 16) == 0


def test_best_host_and_takeover() -> None:
    order = ["a", "b", "c"]
    assert best_host({"a": 3000, "b": 3400, "c": 3400}, order) == "b"
    assert best_host({"a": 0}, order) is None
    assert takeover_host({"a": 1800, "b": 3400, "c": 3000}, "a", order, 800) == "b"
    assert takeover_host({"a": 3000, "b": 3400}, "a", order, 800) is None


def test_engine_restart_after_host_death_waits_for_data_and_lease() -> None:
    r = engine_restart(HE, 1000.0, host_died=True, lease_expiry_s=80.0,
                       scores={"b": 3400, "c": 3400}, order=["a", "b", "c"])
    assert r.noticed_at_s == 1060.0
    assert r.start_at_s == next_tick(1080.0, HE.agent_loop_s) == 1080.0
    assert r.host == "b" and r.up_at_s == 1080.0 + HE.boot_s
    vm_only = engine_restart(HE, 1003.0, host_died=False, lease_expiry_s=80.0,
                             scores={"a": 3400}, order=["a"])
    assert vm_only.start_at_s == 1010.0
