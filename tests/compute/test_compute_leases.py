"""VM leases by sanlock's mechanism: a host that cannot renew kills its lease holders after
8 x io_timeout, and another host's start gets the lease only once the old host's delta
lease is dead (8 x io_timeout + 60 s), whatever the engine tries before."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcisim.claims import evaluate
from hcisim.model import StorageModel
from hcisim.model.compute.leases import LeaseBook, stops_renewals
from hcisim.observations import Observations
from hcisim.placement.ha_rules import (
    lease_host_dead_s,
    lease_renewal_fail_s,
    lease_renewal_s,
    lease_timeline,
)
from hcisim.scenario import Scenario, load_scenario, with_overrides
from hcisim.scenario.faults import make_fault

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def storage_cut(**over: object) -> Scenario:
    return with_overrides(load_scenario(SCENARIOS / "lab-ha-storage-cut.yaml"), dict(over))


def run(sc: Scenario) -> Observations:
    return StorageModel(sc).run()


def timeline(obs: Observations, vm: str, host: str) -> list[tuple[float, str, str]]:
    ev = obs["events"]
    compute = {"fault_start", "vm_paused", "vm_resumed", "lease_lost", "vm_down",
               "lease_expired", "lease_acquired", "vm_started"}
    ev = ev[ev["target"].isin([vm, host]) & ev["kind"].isin(compute)]
    return [(float(t), str(k), str(x)) for t, k, x in
            zip(ev["t_s"], ev["kind"], ev["target"], strict=True)]


def test_sanlock_timeouts_are_sanlocks() -> None:
    # sanlock 3.8 timeouts.c with oVirt's io_timeout 10 s
    assert (lease_renewal_s(10), lease_renewal_fail_s(10), lease_host_dead_s(10)) == \
        (20.0, 80.0, 140.0)
    tl = lease_timeline(10, 1000.0)
    assert tl.last_renewal_s == 990.0 and tl.holders_killed_s == 1070.0
    assert tl.free_s == 1000.0 + 140.0 + 1.0 and tl.phase_spread_s == 10.0


@given(st.integers(1, 60), st.floats(0, 1e6))
def test_lease_is_never_free_before_its_holders_are_killed(io: int, t: float) -> None:
    tl = lease_timeline(io, t)
    assert tl.last_renewal_s <= t <= tl.seen_s + 1e-6
    # safety: even with the latest renewal phase the holder is dead before the lease is free
    assert tl.holders_killed_s + tl.phase_spread_s < tl.free_s - tl.phase_spread_s


def test_which_faults_stop_renewals() -> None:
    assert stops_renewals(make_fault(at_s=0, kind="nic_loss", target="h", network="storage"))
    assert stops_renewals(make_fault(at_s=0, kind="node_power_loss", target="h"))
    assert stops_renewals(make_fault(at_s=0, kind="node_hang", target="h"))
    assert not stops_renewals(make_fault(at_s=0, kind="nic_loss", target="h",
                                         network="management"))
    assert not stops_renewals(make_fault(at_s=0, kind="brick_crash", target="h"))


def test_book_frees_a_lease_at_once_only_when_its_host_renews() -> None:
    book = LeaseBook(2)
    book.released("a", "h1", 10.0, host_died=False)  # a clean stop: free now
    assert book.free_at("a") == -math.inf
    tl = book.stop("h2", 10.0, ["b", "c"])
    book.released("b", "h2", 20.0, host_died=False)  # killed while h2 cannot renew
    assert book.free_at("b") == book.free_at("c") == tl.free_s
    book.resume("h2", {"c"})  # c still runs there: held again; b's stays on disk
    assert book.free_at("c") == -math.inf and book.free_at("b") == tl.free_s
    book.released("d", "h3", 30.0, host_died=True)
    assert book.free_at("d") == lease_timeline(2, 30.0).free_s


def test_storage_cut_kills_the_holder_and_restarts_only_once_the_lease_is_free() -> None:
    sc = storage_cut()
    io = sc.compute.fencing.lease_io_timeout_s
    cut = sc.faults[0].at_s
    tl = lease_timeline(io, cut)
    obs = run(sc)
    got = timeline(obs, "db1", "host3")
    boot = sc.vm("db1").boot_s
    # the VM pauses on the I/O error after the ping-timeout; sanlock kills it at
    # id_renewal_fail after host3's last renewal, long before vdsm's kill_paused_s would
    assert [(k, x) for _, k, x in got] == [
        ("fault_start", "host3"), ("vm_paused", "db1"), ("lease_lost", "host3"),
        ("vm_down", "db1"), ("lease_expired", "db1"), ("lease_acquired", "db1"),
        ("vm_started", "db1")]
    t = {k: ts for ts, k, _ in got}
    assert t["lease_lost"] == t["vm_down"] == pytest.approx(cut + 7 * io)
    assert t["lease_expired"] == t["lease_acquired"] == pytest.approx(tl.free_s)
    assert tl.free_s == cut + 8 * io + 60 + 1
    assert t["vm_started"] == pytest.approx(tl.free_s + boot)
    # never two copies: down on host3 before anything else holds it, then restarting
    st_ = obs["vm_state"]
    rows = st_[st_["vm"] == "db1"].sort_values("t_start_s")
    assert list(rows["state"]) == ["running", "paused", "down", "restarting", "running"]
    assert list(rows["host"])[-1] != "host3"
    [verdict] = evaluate(sc, obs)
    assert verdict.verdict == "pass"
    assert verdict.measured == pytest.approx(tl.free_s + boot - cut)


def test_storage_back_before_the_kill_keeps_the_vm_and_its_lease() -> None:
    # back 10 s after the cut: sanlock's kill would come at 14 s; the VM resumes in place
    sc = storage_cut(**{"faults[0].duration_s": 10})
    obs = run(sc)
    kinds = [k for _, k, _ in timeline(obs, "db1", "host3")]
    assert "lease_lost" not in kinds and "vm_down" not in kinds
    st_ = obs["vm_state"]
    assert list(st_[st_["vm"] == "db1"].sort_values("t_start_s")["host"]) == ["host3"] * \
        len(st_[st_["vm"] == "db1"])
