"""Every catalogue scenario runs on the model, passes its claims, and shows its story."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from hcisim.runner import RunResult, run_scenario
from hcisim.scenario import load_scenario

CATALOGUE = Path(__file__).resolve().parents[2] / "scenarios"
NAMES = ("replica3-power-loss", "arbiter-power-loss", "brick-crash", "storage-nic-loss",
         "two-failures-quorum", "node-hang", "maintenance")


@cache
def run(name: str) -> RunResult:
    return run_scenario(load_scenario(CATALOGUE / f"{name}.yaml"))


def events(name: str, kind: str) -> pd.DataFrame:
    ev = run(name).observations["events"]
    return ev[ev["kind"] == kind]


@pytest.mark.parametrize("name", NAMES)
def test_catalogue_scenario_passes_its_claims(name: str) -> None:
    r = run(name)
    assert r.verdicts, "every catalogue scenario makes claims"
    assert [v.name for v in r.verdicts if v.verdict == "fail"] == []
    assert all(v["acked_without_quorum_bytes"] == 0 for v in r.summary["volumes"].values())
    assert all(v["lost_bytes"] == 0 for v in r.summary["volumes"].values())


@pytest.mark.parametrize("name", ["replica3-power-loss", "storage-nic-loss", "node-hang"])
def test_survivors_stall_between_T_and_4T(name: str) -> None:
    r = run(name)
    sc = r.scenario
    target = sc.faults[0].target
    t = sc.volumes[0].options.ping_timeout_s
    for vm in sc.vms:
        if vm.host != target:
            assert t <= r.summary["vms"][vm.name]["max_io_stall_s"] <= 4 * t


def test_two_failures_lose_then_regain_quorum() -> None:
    r = run("two-failures-quorum")
    lost, back = events("two-failures-quorum", "quorum_lost"), events(
        "two-failures-quorum", "quorum_regained")
    assert len(lost) == 1 and len(back) == 1
    # regained when the clients use two bricks again: host3's power returns at 1200, its
    # glusterd reaches the peers on a SYN of its reconnect try (at most one reconnect
    # timer later), every glusterd restarts its brick, the clients connect after their
    # reconnect delay
    m = r.scenario.model
    regained = float(back["t_s"].iloc[0])
    assert 900 < float(lost["t_s"].iloc[0]) < 1200 < regained
    assert regained <= 1200 + m.reconnect_timer_s + m.reconnect_delay_s + 1e-9
    up = events("two-failures-quorum", "brick_up")
    assert regained == pytest.approx(sorted(up[up["t_s"] > 1200]["t_s"])[1])
    restarted = events("two-failures-quorum", "server_quorum_regained")
    assert regained == pytest.approx(float(restarted["t_s"].max()) + m.reconnect_delay_s)
    assert r.summary["volumes"]["data"]["quorum_lost_s"] > 0
    # host1, alone, lost server quorum too: glusterd stopped its brick, restarted it later;
    # host3's glusterd, powered on at 1200 with no peer reachable yet, starts without
    # quorum and keeps its brick stopped until it reaches host1
    sq = events("two-failures-quorum", "server_quorum_lost")
    assert list(sq["target"]) == ["host1", "host3"]
    assert 900 < float(sq["t_s"].iloc[0]) < 1200 == float(sq["t_s"].iloc[1])
    # host1's VMs paused on ENOTCONN, resumed when quorum came back
    for vm in ("db1", "app1"):
        v = r.summary["vms"][vm]
        assert v["paused_s"] > 0 and v["io_error_s"] > 0
    io = r.observations["vm_io"]
    assert (io[io["status"] == "error"]["write_mb_s"] == 0).all()


def test_brick_crash_and_maintenance_switch_over_at_once() -> None:
    for name in ("brick-crash", "maintenance"):
        io = run(name).observations["vm_io"]
        assert not io["status"].isin(["stalled", "error"]).any(), name
        assert all(v["max_io_stall_s"] == 0 for v in run(name).summary["vms"].values())


def test_maintenance_heals_after_activate() -> None:
    r = run("maintenance")
    start = events("maintenance", "heal_start")
    m = r.scenario.model
    # activated at 1200: the bricks start, clients and daemons connect on their reconnect
    # timer's next try (from when they lost the brick), then the daemons heal
    up = events("maintenance", "brick_up")
    (back,) = up[up["t_s"] >= 1200]["t_s"]
    assert 1200 < back <= 1200 + m.reconnect_timer_s + m.reconnect_delay_s + 1e-9
    shd = events("maintenance", "shd_brick_up")
    assert float(shd[shd["t_s"] >= 1200]["t_s"].min()) == pytest.approx(back)
    assert list(start["t_s"]) == [pytest.approx(back + m.heal_noticed_s)]
    assert r.summary["volumes"]["data"]["heal_completed_s"] is not None


def test_node_hang_heal_starts_when_glusterd_restarts_the_bricks() -> None:
    """host3 hangs 600-720 s. The daemons' idle connections to its brick only notice a
    hang by keepalive, but when host3 thaws its glusterd finds its peers gone (they
    dropped it during the hang), loses server quorum and stops its brick; the daemons
    see that brick go, and connect again (their reconnect timer) once glusterd has
    reached its peers and restarted it: that CHILD_UP starts heal, not the 600 s crawl."""
    r = run("node-hang")
    m = r.scenario.model
    crawl = r.scenario.volumes[0].options.heal_timeout_s
    assert list(events("node-hang", "server_quorum_lost")["t_s"]) == [720]
    gone = events("node-hang", "shd_brick_down")
    assert set(gone["t_s"]) == {720}
    back = events("node-hang", "shd_brick_up")
    assert len(back) == 3 and 720 < float(back["t_s"].min()) <= 720 + m.reconnect_timer_s + (
        m.reconnect_delay_s + 1e-9)
    assert list(events("node-hang", "heal_start")["t_s"]) == [
        pytest.approx(float(back["t_s"].min()) + m.heal_noticed_s)]
    assert float(events("node-hang", "heal_start")["t_s"].iloc[0]) < 2 * crawl
    # the hung host's VMs die with it (sanlock's watchdog resets a hung host: compute
    # model); they are not HA, so they stay down after host3 returns at 720 s
    st = r.observations["vm_state"]
    for vm in ("log3", "app3"):
        assert r.summary["vms"][vm]["downtime_s"] == pytest.approx(3600 - 600)
        down = st[(st["vm"] == vm) & (st["state"] == "down")]
        assert list(down["t_start_s"]) == [600] and "hang" in str(down["reason"].iloc[0])
        io = r.observations["vm_io"]
        assert (io[(io["vm"] == vm) & (io["t_start_s"] >= 600)]["status"] == "stopped").all()


def test_arbiter_acknowledges_with_one_data_copy() -> None:
    r = run("arbiter-power-loss")
    assert r.summary["volumes"]["data"]["min_copies_acked"] == 1
    assert r.summary["volumes"]["data"]["min_good_copies"] == 1
    replica3 = run("replica3-power-loss")
    assert replica3.summary["volumes"]["data"]["min_copies_acked"] == 2


def test_storage_nic_loss_isolates_its_host() -> None:
    r = run("storage-nic-loss")
    assert list(events("storage-nic-loss", "server_quorum_lost")["target"]) == ["host3"]
    paused = {vm for vm, v in r.summary["vms"].items() if v["paused_s"] > 0}
    assert paused == {"log3", "app3"}
