"""Worked examples: calibration against the lab, disk failure, data loss and unavailability,
link slowdown, partial partitions, and the event count's independence from IOPS."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from hcisim.model import simulate
from hcisim.model.elaborate import MIB, nic_mb_s
from hcisim.observations import Observations, summarize
from hcisim.scenario import Scenario

from .cases import HOSTS, host

SHARD = 64 * MIB


def scenario(vms: list[dict[str, Any]], faults: list[dict[str, Any]], kind: str = "replica3",
             duration: float = 900.0, **extra: Any) -> Scenario:
    d: dict[str, Any] = {
        "name": "example", "seed": 3, "duration_s": duration,
        "hosts": [host(h, 10, 1500, 100_000) for h in HOSTS],
        "volumes": [{"name": "data", "type": kind, "bricks": [{"host": h} for h in HOSTS]}],
        "vms": vms, "faults": faults, **extra}
    return Scenario.model_validate(d)


def vm(name: str, where: str, io: dict[str, Any], size_gb: float = 10.0) -> dict[str, Any]:
    return {"name": name, "host": where, "disks": [{"volume": "data", "size_gb": size_gb,
                                                    "io": io}]}


SEQ = {"read_pct": 0, "block_kib": 1024, "mb_s": 10, "queue_depth": 4, "random": False}
OLTP = {"read_pct": 70, "block_kib": 8, "iops": 2000, "queue_depth": 16}


def summary(obs: Observations, sc: Scenario) -> dict[str, Any]:
    return summarize(obs, [v.name for v in sc.vms], [v.name for v in sc.volumes])


def test_heal_of_fast_threads_takes_its_share_of_the_link() -> None:
    """A writer dirties 7.5 shards (-> 8 whole 64 MiB shards, 537 MB) while a brick is down.
    The daemons connect to it on their reconnect timer's next try, after the repair (the
    operator's `gluster volume heal` at the repair finds none connected), so the writes
    of the client's own reconnect gap are in the same heal. With fast threads (565 MB/s
    each, no per-entry cost, no CPU cap: stated, as the mechanism needs) 16 threads would
    copy far faster than the 10 GbE link: heal takes its share of it (``heal_share``), the
    writer's replica traffic aside."""
    away = 7.5 * SHARD / 10e6  # seconds of 10 MB/s sequential writes
    sc = scenario([vm("w", "host1", SEQ)], [
        {"at_s": 100, "kind": "brick_crash", "target": "host2", "duration_s": away}],
        model={"heal_thread_mb_s": 565.0, "heal_entry_s": 0.0, "heal_core_mb_s": 0.0})
    obs = simulate(sc)
    heal = obs["heal"]
    assert list(heal["shards"]) == [8]
    ev = obs["events"]
    shd_up = ev[(ev["kind"] == "shd_brick_up") & (ev["t_s"] > 100)]
    assert float(heal["t_start_s"].iloc[0]) == pytest.approx(
        float(shd_up["t_s"].min()) + sc.model.heal_noticed_s)
    took = float(heal["t_end_s"].iloc[0] - heal["t_start_s"].iloc[0])
    share = sc.model.heal_share * nic_mb_s(10)
    assert float(heal["bytes"].iloc[0]) / 1e6 / took == pytest.approx(share, rel=0.02)


def test_disk_failure_needs_a_full_heal_and_loses_nothing_on_replica3() -> None:
    sc = scenario([vm("a", "host1", OLTP, 2.0), vm("b", "host3", SEQ, 3.0)], [
        {"at_s": 100, "kind": "disk_failure", "target": "host2", "duration_s": 100}],
        duration=1200)
    obs = simulate(sc)
    shards = math.ceil(2e9 / SHARD) + math.ceil(3e9 / SHARD)  # every shard of every disk
    heal = obs["heal"]
    assert int(heal["shards"].sum()) == shards
    assert float(heal["bytes"].sum()) == shards * SHARD
    s = summary(obs, sc)
    assert s["volumes"]["data"]["lost_bytes"] == 0
    assert s["vms"]["a"]["max_io_stall_s"] == 0  # EIO from the failed disk: at once


def test_arbiter_loses_acknowledged_writes_when_its_only_copy_fails() -> None:
    """Data brick host2 is away, so writes are acknowledged on host1 alone (one copy); then
    host1's disk fails: exactly those writes are lost, and the volume says so."""
    sc = scenario([vm("a", "host1", OLTP)], [
        {"at_s": 100, "kind": "brick_crash", "target": "host2", "duration_s": 300},
        {"at_s": 200, "kind": "disk_failure", "target": "host1", "duration_s": 300}],
        kind="arbiter")
    obs = simulate(sc)
    wr = obs["writes"]
    one_copy = wr[(wr["copies"] == 1) & (wr["acked_bytes"] > 0)]
    assert not one_copy.empty
    assert float(wr["lost_bytes"].sum()) == pytest.approx(float(one_copy["acked_bytes"].sum()))
    assert (wr[wr["copies"] == 2]["lost_bytes"] == 0).all()
    ev = obs["events"]
    assert (ev["kind"] == "data_unavailable").any()


def test_second_fault_during_heal_makes_data_unavailable() -> None:
    """Arbiter: host2 returns and heals; host1 fails before the heal is done. host2 + the
    arbiter keep brick quorum, but the arbiter blames host2 for the dirty files: their
    newest data is unavailable, and I/O on them fails (ENOTCONN)."""
    sc = scenario([vm("a", "host1", OLTP, 50.0), vm("b", "host3", OLTP, 50.0)], [
        {"at_s": 100, "kind": "brick_crash", "target": "host2", "duration_s": 100},
        {"at_s": 230, "kind": "brick_crash", "target": "host1", "duration_s": 200}],
        kind="arbiter", duration=1500)
    obs = simulate(sc)
    ex = obs["exposure"]
    assert float(ex["unavailable_bytes"].max()) > 0
    assert int(ex["good_copies"].min()) == 0
    ev = obs["events"]
    unavailable = ev[ev["kind"] == "data_unavailable"]
    assert list(unavailable["t_s"]) == [230]
    s = summary(obs, sc)
    assert s["vms"]["b"]["io_error_s"] > 0
    assert s["volumes"]["data"]["acked_without_quorum_bytes"] == 0


def test_link_slowdown_caps_replicated_writes() -> None:
    """host1's storage NIC at 200 Mbit/s: its VM sends each write to two remote bricks, so
    writes <= 25 MB/s / 2."""
    big = {"read_pct": 0, "block_kib": 1024, "mb_s": 1000, "queue_depth": 32, "random": False}
    sc = scenario([vm("a", "host1", big)], [
        {"at_s": 100, "kind": "link_slowdown", "target": "host1", "duration_s": 100,
         "rate_mbit": 200}])
    io = simulate(sc)["vm_io"]
    slow = io[(io["t_start_s"] >= 100) & (io["t_end_s"] <= 200)]
    fast = io[io["t_end_s"] <= 100]
    assert float(slow["write_mb_s"].max()) == pytest.approx(200 / 8 / 2)
    assert float(fast["write_mb_s"].max()) == pytest.approx(nic_mb_s(10) / 2)


def test_partition_from_one_peer_stalls_only_that_pair() -> None:
    sc = scenario([vm("a", "host1", OLTP), vm("b", "host2", OLTP), vm("c", "host3", OLTP)], [
        {"at_s": 100, "kind": "partition", "target": "host3", "peers": ["host1"],
         "duration_s": 200}])
    s = summary(simulate(sc), sc)
    assert s["vms"]["b"]["max_io_stall_s"] == 0
    assert 20 <= s["vms"]["a"]["max_io_stall_s"] <= 80
    assert 20 <= s["vms"]["c"]["max_io_stall_s"] <= 80
    assert not any(s["vms"][v]["paused_s"] for v in ("a", "b", "c"))


def test_heal_waits_for_shd_notice_without_operator() -> None:
    sc = scenario([vm("a", "host1", OLTP)], [
        {"at_s": 100, "kind": "brick_crash", "target": "host2", "duration_s": 50,
         "heal_after_repair": False}])
    obs = simulate(sc)
    # the daemons notice once they are connected again (their reconnect timer's next try
    # after the repair; the brick process restarted, so no SYN waits)
    ev = obs["events"]
    (back,) = set(ev[(ev["kind"] == "shd_brick_up") & (ev["t_s"] > 100)]["t_s"])
    assert 150 < back <= 150 + sc.model.reconnect_timer_s + sc.model.reconnect_delay_s
    assert list(obs["heal"]["t_start_s"]) == [pytest.approx(back + sc.model.heal_noticed_s)]


def test_event_count_does_not_grow_with_iops() -> None:
    base = scenario([vm("a", "host1", OLTP), vm("b", "host2", SEQ), vm("c", "host3", OLTP)], [
        {"at_s": 100, "kind": "node_power_loss", "target": "host2", "duration_s": 60},
        {"at_s": 400, "kind": "brick_crash", "target": "host3", "duration_s": 60}],
        phases=[{"start_s": 0, "load": 0.5}, {"start_s": 300, "load": 1.0}])
    d = base.model_dump(mode="json")
    busy = copy.deepcopy(d)
    for v in busy["vms"]:
        io = v["disks"][0]["io"]
        io["iops" if io["iops"] is not None else "mb_s"] *= 10
    a = simulate(base)
    b = simulate(Scenario.model_validate(busy))
    # a few dozen events per fault (detections, reconnect tries, heal milestones), none
    # per I/O (10x the I/O is ~10^5 more writes here). The load may move an episode by
    # one (the heal shares the NICs and disks with the VMs; a client that still misses the
    # brick writes into an episode, whose shards are then healed again): at most 2. (152
    # since session 16: the healed brick's own daemon heals from its own CHILD_UP, one more
    # change of a heal's parallelism per daemon that joins later.)
    assert abs(a.meta["sim_events"] - b.meta["sim_events"]) <= 2
    assert max(a.meta["sim_events"], b.meta["sim_events"]) < 200
    assert float(b["vm_io"]["write_iops"].max()) > float(a["vm_io"]["write_iops"].max())


def test_progress_is_reported_up_to_one() -> None:
    seen: list[float] = []
    sc = scenario([vm("a", "host1", OLTP)], [
        {"at_s": 100, "kind": "node_power_loss", "target": "host2", "duration_s": 300}])
    simulate(sc, progress=seen.append)
    assert seen and seen == sorted(seen) and seen[-1] == 1.0


@pytest.mark.parametrize(("hot_pct", "shards"), [(100.0, math.ceil(10e9 / SHARD)),
                                                 (2.0, math.ceil(0.2e9 / SHARD))])
def test_write_hot_set_bounds_the_heal(hot_pct: float, shards: int) -> None:
    """A busy random writer (2000 IOPS, 30 % writes) for five minutes dirties every shard it
    writes to: the whole 10 GB disk by default, only its 200 MB hot set at 2 %."""
    io = {**OLTP, "write_hot_pct": hot_pct}
    sc = scenario([vm("a", "host1", io)], [
        {"at_s": 100, "kind": "brick_crash", "target": "host2", "duration_s": 300}],
        duration=1500)
    heal = simulate(sc)["heal"]
    assert list(heal["shards"]) == [shards]
    assert float(heal["bytes"].sum()) == shards * SHARD
