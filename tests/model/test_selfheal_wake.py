"""When the self-heal daemon starts by itself (no operator heal): on a CHILD_UP of one of its
own, idle, brick connections (afr_notify -> afr_selfheal_childup), else at the crawl
(docs/model.md "When it starts", hcisim/model/shd.py).

Oracles from the mechanism: the daemons' connections drop on a RST at once and on a silent
cut only when TCP keepalive gives up (client keepalive 20 s + 9 x 2 s: 18-38 s after the cut);
a hang keeps them (the kernel answers). So a heal starts heal_noticed_s after the daemons'
reconnect after a brick crash or a cut longer than 38 s, at the crawl after a hang or a cut
shorter than 18 s, and after a short power loss at the first keepalive probe after the
return (+ the reconnect). When the reconnect comes is the reconnect timer's: tests of when
heal starts relative to the repair state ``reconnect_timer_s`` in their scenario (0: the
daemons use the brick ``reconnect_delay_s`` after the repair), and every expected time is
derived from the scenario's own ``model`` values, not the shipped profile's.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from hcisim.model import simulate
from hcisim.model.keepalive import next_probe_s
from hcisim.model.pingtimer import syn_reconnect_at_s
from hcisim.model.selfheal import RESWEEP_S
from hcisim.scenario import Scenario

from .cases import HOSTS, host

AT = 100.0
CRAWL = 600.0
# no reconnect timer: the clients (and the daemons with them) use a brick that serves again
# reconnect_delay_s after the repair, whatever the shipped profile's timer
AT_REPAIR: dict[str, Any] = {"reconnect_timer_s": 0.0}


def wake_scenario(kind: str, duration: float, seed: int, run_s: float = 1500.0,
                  model: dict[str, Any] | None = None,
                  options: dict[str, Any] | None = None) -> Scenario:
    f: dict[str, Any] = {"at_s": AT, "kind": kind, "target": "host2", "duration_s": duration,
                         "heal_after_repair": False}  # no operator heal: the daemons' own
    if kind == "nic_loss":
        f["network"] = "storage"
    return Scenario.model_validate({
        "name": "wake", "seed": seed, "duration_s": run_s,
        "hosts": [host(h, 10.0, 1000.0, 100_000.0) for h in HOSTS],
        # server quorum off: glusterd does not stop host2's bricks, so only the daemons'
        # own connections can wake them
        "volumes": [{"name": "v", "type": "replica3", "bricks": [{"host": h} for h in HOSTS],
                     "options": {"ping_timeout_s": 5.0, "server_quorum_type": "none",
                                 **(options or {})}}],
        "io_profiles": {"w": {"read_pct": 0.0, "block_kib": 64, "queue_depth": 8,
                              "mb_s": 20}},
        "vms": [{"name": "vm1", "host": "host1",
                 "disks": [{"volume": "v", "size_gb": 10, "io": "w"}]}],
        "faults": [f], "model": model or {}})


def heal_starts(sc: Scenario) -> list[float]:
    ev = simulate(sc)["events"]
    return [float(t) for t in ev[ev["kind"] == "heal_start"]["t_s"]]


def at_reconnect(sc: Scenario, repair_s: float) -> float:
    """When heal starts if the daemons reconnect at ``repair_s`` (no reconnect timer)."""
    assert sc.model.reconnect_timer_s == 0
    return repair_s + sc.model.reconnect_delay_s + sc.model.heal_noticed_s


SEEDS = range(1, 9)


@pytest.mark.parametrize(("kind", "duration"), [("brick_crash", 10.0), ("nic_loss", 60.0),
                                                ("partition", 45.0),
                                                ("node_power_loss", 60.0)])
def test_heal_starts_at_the_reconnect_when_the_daemons_dropped(kind: str,
                                                               duration: float) -> None:
    """A RST (brick crash) drops them at once; a cut longer than 38 s outlasts keepalive.
    Without a reconnect timer they are back ``reconnect_delay_s`` after the repair and heal
    starts ``heal_noticed_s`` later (with the timer: the tests below)."""
    for seed in SEEDS:
        sc = wake_scenario(kind, duration, seed, model=AT_REPAIR)
        assert heal_starts(sc)[0] == pytest.approx(at_reconnect(sc, AT + duration))


@pytest.mark.parametrize("duration", [4.0, 10.0])
def test_after_a_brick_crash_heal_waits_for_the_daemons_next_reconnect_try(
        duration: float) -> None:
    """The RST drops every daemon's connection at the crash; rpc-clnt's reconnect timer tries
    every ``reconnect_timer_s`` from there and the first try at or after the repair connects
    (``reconnect_delay_s`` later): each daemon's CHILD_UP, and heal ``heal_noticed_s`` after
    it, are on the timer's grid from the crash, not at the repair."""
    sc = wake_scenario("brick_crash", duration, 1, run_s=400.0,
                       model={"reconnect_timer_s": 3.0})
    m = sc.model
    first_try = AT + m.reconnect_timer_s * math.ceil(duration / m.reconnect_timer_s)
    assert first_try > AT + duration  # the repair is off the grid: the timer shows
    obs = simulate(sc)
    ev = obs["events"]
    up = ev[(ev["kind"] == "shd_brick_up") & (ev["target"] == "v/host2")]
    assert len(up) == len(HOSTS)  # every host's daemon, once
    assert list(up["t_s"]) == pytest.approx([first_try + m.reconnect_delay_s] * len(HOSTS))
    starts = [float(t) for t in ev[ev["kind"] == "heal_start"]["t_s"]]
    assert starts[0] == pytest.approx(first_try + m.reconnect_delay_s + m.heal_noticed_s)


@pytest.mark.parametrize(("kind", "duration"), [("node_hang", 60.0), ("nic_loss", 15.0),
                                                ("partition", 10.0)])
def test_nothing_wakes_the_daemons_when_their_connections_held(kind: str,
                                                               duration: float) -> None:
    """A hang (keepalive answered by the kernel), or a cut shorter than both sides'
    keepalive (the daemons': 18 s at least; the bricks' with glusterfs's own 42 s
    server.tcp-user-timeout: 32 s at least): the daemons never saw a CHILD_DOWN, so heal
    waits for the crawl every heal-timeout."""
    for seed in SEEDS:
        sc = wake_scenario(kind, duration, seed, options={"tcp_user_timeout_s": 42.0})
        assert heal_starts(sc)[0] == pytest.approx(CRAWL)


@pytest.mark.parametrize("kind", ["nic_loss", "partition"])
def test_a_cut_the_bricks_side_gave_up_on_wakes_them_at_their_next_probe(kind: str) -> None:
    """A 15 s cut with the lab's server.tcp-user-timeout (5 s): host2's brick resets each
    daemon's idle connection 2-12 s into it (its keepalive probes after 10 s idle, the user
    timeout passed at the next check, keepalive.server_closes_s), the daemons' own keepalive has
    not given up; after the repair a daemon's next probe (every 2 s once it started, 20 s
    after its last answer at the latest) gets a RST, CHILD_DOWN, and it connects again at
    once (no reconnect timer here): heal starts then, or when host2's own daemon, whose
    connections to the other bricks were reset likewise, connects again to one of them
    (it heals its brick too), whichever is first.
    The lab's validation partitions and NIC losses: every daemon disconnected at the repair
    and connected 3 s later (its reconnect timer), and heal started with it."""
    repair = AT + 15.0
    for seed in SEEDS:
        sc = wake_scenario(kind, 15.0, seed, model=AT_REPAIR,
                           options={"tcp_user_timeout_s": 5.0})
        ev = simulate(sc)["events"]
        down = ev[(ev["kind"] == "shd_brick_down") & (ev["target"] == "v/host2")]["t_s"]
        assert len(down) == 2 and all(repair <= t <= AT + 20.0 + 1e-9 for t in down)
        start = heal_starts(sc)[0]
        first = min(float(down.min()) + sc.model.reconnect_delay_s,
                    own_daemon_heals_at(ev, repair))
        assert start == pytest.approx(first + sc.model.heal_noticed_s)


def test_a_cut_between_18_and_38_s_wakes_them_all() -> None:
    """A 25 s cut: each daemon drops its connection if its keepalive gives up within it
    (18-38 s after, by the probes' phase) and reconnects at the repair (no reconnect
    timer); if not, the brick's side has reset it by then (10-20 s into the cut with the
    virt group's keepalive and 20 s user timeout) and its next probe, within 2 s of the
    repair, gets the RST: heal starts within 2 s of the repair at every seed, never at the
    crawl."""
    repair = AT + 25.0
    for seed in range(1, 13):
        sc = wake_scenario("nic_loss", 25.0, seed, model=AT_REPAIR)
        start = heal_starts(sc)[0]
        assert at_reconnect(sc, repair) - 1e-9 <= start <= at_reconnect(sc, repair) + 2.0


def own_daemon_heals_at(ev: Any, after: float, volume: str = "v") -> float:
    """When host2's own daemon can heal its brick after ``after``: connected to it and to
    another brick (hcisim.model.selfheal SelfHeal.healers), from its CHILD_UP events."""
    up = ev[(ev["kind"] == "shd_brick_up") & (ev["detail"] == "glustershd on host2")
            & (ev["t_s"] >= after - 1e-9)]
    own = float(up[up["target"] == f"{volume}/host2"]["t_s"].min()) \
        if (up["target"] == f"{volume}/host2").any() else after
    others = up[up["target"] != f"{volume}/host2"]["t_s"]
    return max(own, float(others.min()))


def test_a_short_power_loss_wakes_them_at_the_next_keepalive_probe() -> None:
    """host2 back after 10 s with no TCP state: the other daemons' next keepalive probe (20
    s after its last answer, then every 2 s) gets a RST and they reconnect. Between the
    return and the last possible probe (38 s after the loss), on the 2 s probe grid when
    later than the first probe. The RST is a disconnect: with a reconnect timer the daemon
    connects one ``reconnect_timer_s`` after the probe (the same probe: the keepalive phase
    is drawn from a stream of its own), without one at the probe. Heal does not wait for
    them if host2's own daemon, started with the host, sees its brick and
    a source: with the reconnect timer, one timer after the power-on (its own brick,
    started with it, refused its first connect), without at once."""
    for seed in SEEDS:
        probes = []
        for timer in (0.0, 3.0):
            sc = wake_scenario("node_power_loss", 10.0, seed,
                               model={"reconnect_timer_s": timer})
            m = sc.model
            ev = simulate(sc)["events"]
            up = ev[(ev["kind"] == "shd_brick_up") & (ev["target"] == "v/host2")
                    & (ev["detail"] != "glustershd on host2")]
            probe = float(up["t_s"].min()) - m.reconnect_delay_s - m.reconnect_timer_s
            assert AT + 10.0 < probe <= AT + 38.0 + 1e-9
            probes.append(probe)
            start = float(ev[(ev["kind"] == "heal_start")
                             & (ev["target"] == "v/host2")]["t_s"].iloc[0])
            first = min(own_daemon_heals_at(ev, AT + 10.0), float(up["t_s"].min()))
            assert start == pytest.approx(first + m.heal_noticed_s)
        assert probes[0] == pytest.approx(probes[1])


def test_next_probe() -> None:
    assert next_probe_s(5.0, 0.0) == 20.0  # before the first probe: the first probe
    assert next_probe_s(20.0, 0.0) == 20.0
    assert next_probe_s(21.0, 0.0) == 22.0  # then every 2 s
    assert next_probe_s(26.0, 0.0) == 26.0


def test_what_missed_the_brick_during_its_heal_is_healed_at_the_next_sweep() -> None:
    """A writer at 10 MB/s while host2's storage link is down for 17 s: its client (ping
    timeout 5 s) marks host2 down 5-10 s into the cut and writes two copies from then on;
    the self-heal daemons' idle connections outlast the cut (keepalive gives up 18 s after
    it at the earliest), so they are connected at the repair and the operator's heal starts
    then. The writer's client reconnects 2 s after the repair and its writes of those 2 s
    miss host2 (one more 64 MiB shard). The daemon's sweep healed something, so it sweeps
    again RESWEEP_S after the heal ended (afr_shd_index_healer) and heals that shard then,
    not at the crawl (600 s). With the clients back at the repair there is nothing left
    over. (docs/lab.md saw this after a NIC loss's repair.)

    The mechanism shows only if the first heal outlasts the writer's reconnect gap (else the
    daemon re-sweeps while the client still misses host2, and heals the shard in pieces):
    the scenario states no reconnect timer (the client back ``reconnect_s`` after the
    repair) and a per-thread heal rate (20 MB/s: a 64 MiB shard takes 3.4 s) low enough for
    that, and the test checks that it did."""
    cut = (100.0, 17.0)
    repair = sum(cut)

    def heal_rows(reconnect_s: float) -> list[tuple[float, float, int]]:
        sc = Scenario.model_validate({
            "name": "resweep", "seed": 3, "duration_s": 900.0,
            "hosts": [host(h, 10, 1500, 100_000) for h in HOSTS],
            # the bricks' side keeps the daemons' idle connections through the cut with
            # glusterfs's own 42 s user timeout (with the virt group's 20 s it would reset
            # them 10-20 s into it, test above)
            "volumes": [{"name": "data", "type": "replica3",
                         "bricks": [{"host": h} for h in HOSTS],
                         "options": {"ping_timeout_s": 5.0, "tcp_user_timeout_s": 42.0}}],
            "io_profiles": {"seq": {"read_pct": 0, "block_kib": 1024, "mb_s": 10,
                                    "queue_depth": 4, "random": False}},
            "vms": [{"name": "w", "host": "host1",
                     "disks": [{"volume": "data", "size_gb": 10, "io": "seq"}]}],
            "faults": [{"at_s": cut[0], "kind": "nic_loss", "network": "storage",
                        "target": "host2", "duration_s": cut[1]}],
            "model": {"reconnect_delay_s": reconnect_s, "reconnect_timer_s": 0.0,
                      "heal_thread_mb_s": 20.0}})
        obs = simulate(sc)
        ev = obs["events"]
        assert (ev["kind"] == "shd_brick_down").sum() == 0  # the daemons stayed connected
        up = ev[(ev["kind"] == "brick_up") & (ev["target"] == "data/host2")]["t_s"]
        assert list(up) == pytest.approx([repair + reconnect_s])  # the writer's client
        heal = obs["heal"]
        return [(float(a), float(b), int(n)) for a, b, n in
                zip(heal["t_start_s"], heal["t_end_s"], heal["shards"], strict=True)]

    first, second = heal_rows(2.0)
    assert first[0] == pytest.approx(repair) and first[2] >= 2  # > 64 MiB written away
    assert first[1] > repair + 2.0  # the client was back before the first heal ended
    assert second[0] == pytest.approx(first[1] + RESWEEP_S) and second[2] == 1
    (only,) = heal_rows(0.0)
    assert only[0] == pytest.approx(repair) and only[2] == first[2]


@pytest.mark.parametrize("kind", ["nic_loss", "node_power_loss"])
def test_the_daemons_reconnect_on_their_syn_after_keepalive_gave_up(kind: str) -> None:
    """host2 unreachable for 60 s (longer than keepalive's 38 s): each daemon's connection to
    host2's brick drops when its keepalive gives up (``shd_brick_down``), its reconnect
    timer's first try 3 s later sits in SYN_SENT, and it connects on the first SYN
    retransmission after host2 answers (``shd_brick_up``): the mounts' mechanism
    (pingtimer.syn_reconnect_at_s). Heal starts heal_noticed_s after the first daemon that
    can heal is back: host2's own, on a NIC loss connecting again to the others on the same
    SYNs, after a power loss starting with the host at once. Without the timer (0): at the
    repair + the delay, as before."""
    def run(timer: float) -> tuple[list[tuple[float, float, float]], list[float], float,
                                   float]:
        sc = wake_scenario(kind, 60.0, 3, run_s=400.0,
                           model={"reconnect_timer_s": timer, "reconnect_delay_s": 0.02,
                                  "syn_linear_timeouts": 4})
        obs = simulate(sc)
        ev = obs["events"]
        failed = {(x["host"], x["silent_s"]): x["failed_s"]
                  for x in obs.meta["detection"]["neighbours"]}
        pairs = []
        for daemon in ("host1", "host3"):
            mine = ev[(ev["target"] == "v/host2") & (ev["detail"] == f"glustershd on {daemon}")]
            down = mine[mine["kind"] == "shd_brick_down"]["t_s"]
            up = mine[mine["kind"] == "shd_brick_up"]["t_s"]
            assert len(down) == 1 and len(up) == 1, mine
            pairs.append((float(down.iloc[0]), float(up.iloc[0]), failed[(daemon, AT)]))
        return (pairs, [float(t) for t in ev[ev["kind"] == "heal_start"]["t_s"]],
                sc.model.heal_noticed_s, own_daemon_heals_at(ev, AT + 60.0))

    repair = AT + 60.0
    pairs, starts, noticed, own = run(3.0)
    for down, up, failed in pairs:
        assert AT + 18.0 - 1e-9 <= down <= AT + 38.0 + 1e-9  # keepalive gave up
        # host2 did not answer ARP: the entry failed 23-53 s after the loss, then each
        # try's SYN waited on ARP (neighbour.py)
        assert AT + 23.0 - 1e-9 <= failed <= AT + 53.0 + 1e-9
        assert up == pytest.approx(syn_reconnect_at_s(repair, down, 3.0, 0.02, 4, failed))
        assert up > repair + 0.02  # on a SYN or an ARP probe, not at the repair
    assert starts and starts[0] == pytest.approx(min(own, *(u for _, u, _ in pairs)) + noticed)
    pairs, starts, noticed, own = run(0.0)
    assert {round(u, 9) for _, u, _ in pairs} == {round(repair + 0.02, 9)}
    assert starts[0] == pytest.approx(repair + 0.02 + noticed)


@pytest.mark.parametrize("threads", [1, 8])
@pytest.mark.parametrize("vtype", ["replica3", "arbiter"])
def test_every_bricks_daemon_heals_side_by_side(threads: int, vtype: str) -> None:
    """Each brick host's daemon sweeps its own brick's index, and every brick (an arbiter
    too, host2's own as well: SelfHeal.healers) indexed what host2 missed: after a brick
    crash the three daemons are back at once and heal with ``shd_max_threads`` entries
    each, so the drain runs 3 x threads shards in flight (the fluid drain of
    hcisim.calibration.fit), not ``threads``.

    The parallelism shows only while the threads, not the heal path, bound the heal: the
    scenario states a per-thread rate (15 MB/s) whose 3 x 8 threads stay below the path's
    cap (``heal_share`` of the 10 GbE NIC and of the disks in 128 KiB I/O); with the
    measured profile's rate (565 MB/s) one thread alone fills the path and 1 and 8 threads
    heal in the same time."""
    from hcisim.calibration.fit import HealTrial, drain_s

    d = wake_scenario("brick_crash", 10.0, 1, model={"heal_thread_mb_s": 15.0,
                                                     "heal_core_mb_s": 0.0}).model_dump(
        mode="json")  # the per-thread rate bounds the heal (no CPU cap)
    d["volumes"][0]["type"] = vtype
    d["volumes"][0]["options"]["shd_max_threads"] = threads
    sc = Scenario.model_validate(d)
    p = sc.model
    disk = sc.hosts[0].disks[0]
    nic = next(n for n in sc.hosts[0].nics if "storage" in n.networks)
    cap = p.heal_share * min(nic.gbps * 1000 / 8,
                             1 / (1 / disk.bandwidth_mb_s + (1e6 / (128 * 1024)) / disk.iops))
    assert 3 * threads * p.heal_thread_mb_s < cap  # thread-bound, not path-bound
    obs = simulate(sc)
    heal = obs["heal"]
    first = heal[heal["brick"] == "host2"].sort_values("t_start_s").iloc[0]
    shards = int(first["shards"])
    assert shards > 3 * threads  # the parallelism is what the heal's length says
    shard_bytes = float(first["bytes"]) / shards
    trial = HealTrial(shards, shard_bytes, 3 * threads, 1e9, 0.0)
    took = float(first["t_end_s"] - first["t_start_s"])
    assert took == pytest.approx(drain_s(trial, p.heal_entry_s, p.heal_thread_mb_s), rel=1e-6)
    one = HealTrial(shards, shard_bytes, threads, 1e9, 0.0)
    assert took < 0.5 * drain_s(one, p.heal_entry_s, p.heal_thread_mb_s)


@pytest.mark.parametrize("threads", [1, 2, 8])
def test_heal_is_no_faster_than_its_cpu_cap_whatever_the_threads(threads: int) -> None:
    """``heal_core_mb_s`` caps heal per CPU core of the healing daemons' hosts: set so that
    the three daemons (host2's own too) together heal at 30 MB/s at most, with threads at 20
    MB/s each (3 x 20 > 30 already with one thread per daemon), 1, 2 and 8 threads heal in the
    same time, the fluid drain of hcisim.calibration.fit with the cap; without the cap 8
    threads are faster."""
    from hcisim.calibration.fit import HealTrial, drain_s

    base = wake_scenario("brick_crash", 10.0, 1)
    cores = sum(base.host(h).cores for h in HOSTS)
    per_core = 30.0 / cores

    def first_heal(core_mb_s: float) -> tuple[float, int, float]:
        d = wake_scenario("brick_crash", 10.0, 1, model={
            "heal_thread_mb_s": 20.0, "heal_entry_s": 0.0,
            "heal_core_mb_s": core_mb_s}).model_dump(mode="json")
        d["volumes"][0]["options"]["shd_max_threads"] = threads
        obs = simulate(Scenario.model_validate(d))
        heal = obs["heal"]
        row = heal[heal["brick"] == "host2"].sort_values("t_start_s").iloc[0]
        return (float(row["t_end_s"] - row["t_start_s"]), int(row["shards"]),
                float(row["bytes"]) / int(row["shards"]))

    took, shards, shard_bytes = first_heal(per_core)
    trial = HealTrial(shards, shard_bytes, 3 * threads, 1e9, 0.0, daemons=3, cores=cores)
    assert took == pytest.approx(drain_s(trial, 0.0, 20.0, per_core), rel=1e-6)
    # capped at 30 MB/s while at least two shards are left (2 x 20 > 30 with one thread
    # each): the bytes at the cap, the last shard at one thread's 20 MB/s
    assert took == pytest.approx((shards - 1) * shard_bytes / 30e6 + shard_bytes / 20e6,
                                 rel=1e-6)
    free, _, _ = first_heal(0.0)
    if threads == 8:
        assert free < 0.5 * took


def test_operator_heal_after_a_short_power_loss_resets_the_daemons_stale_connections() -> None:
    """host2 loses power for 15 s, less than keepalive needs (18-38 s): the other hosts'
    daemons never dropped their connections to its brick, but host2's TCP state is gone.
    The operator's heal at the repair makes each daemon send on that dead connection: a
    RST at once (CHILD_DOWN at the repair), the reconnect on its timer; not a heal at the
    repair over connections that no longer exist. host2's own daemon, started with the
    host, heals its brick as soon as it is connected."""
    from hcisim.calibration.cases import fault, lab_scenario
    from hcisim.model import simulate

    sc = lab_scenario("short-power-loss", [fault("node_power_loss", 11.3, 15)], 45)
    m = sc.model
    assert m.reconnect_timer_s > 0
    obs = simulate(sc)
    ev = obs["events"]
    repair = 26.3
    others = ("glustershd on host1", "glustershd on host3")
    down = ev[(ev["kind"] == "shd_brick_down") & (ev["target"] == "data/host2")
              & ev["detail"].isin(others)]
    assert sorted(down["detail"]) == sorted(others)
    assert list(down["t_s"]) == [pytest.approx(repair)] * 2
    up = ev[(ev["kind"] == "shd_brick_up") & (ev["target"] == "data/host2")
            & ev["detail"].isin(others)]
    assert list(up["t_s"]) == [pytest.approx(repair + m.reconnect_timer_s
                                             + m.reconnect_delay_s)] * 2
    heal = obs["heal"]
    into_host2 = heal[heal["brick"] == "host2"].sort_values("t_start_s")
    # healed first by host2's own daemon, which started with the host (not over the stale
    # connections either)
    assert float(into_host2["t_start_s"].iloc[0]) == pytest.approx(
        own_daemon_heals_at(ev, repair, "data") + m.heal_noticed_s)
    # host1's brick heals vm2's interrupted writes (docs/model.md) over connections that
    # stayed up: at the repair (the operator's heal), judged again when the clients are back
    starts = list(heal[heal["brick"] == "host1"]["t_start_s"])
    assert len(starts) == 1 and repair <= starts[0] <= (repair + m.reconnect_delay_s
                                                     + m.heal_noticed_s + 1e-6)


@pytest.mark.parametrize("threads", [1, 8])
def test_more_entries_in_flight_than_cores_heal_slower_in_all(threads: int) -> None:
    """``heal_concurrency``: with n entries in flight on the healing daemons' c cores, the
    cores heal ``c x heal_core_mb_s / (1 + heal_concurrency x (n / c - 1))`` (n > c): on
    2-core hosts (c = 6 for the three daemons, host2's own too) 8 threads each (n = 24)
    heal slower than 1 thread each (n = 3, below the cores: no cost), the fluid drain of
    hcisim.calibration.fit with the same formula; at concurrency 0, as fast."""
    from hcisim.calibration.fit import HealTrial, drain_s

    def first_heal(concurrency: float) -> tuple[float, int, float, int]:
        d = wake_scenario("brick_crash", 10.0, 1, model={
            "heal_thread_mb_s": 20.0, "heal_entry_s": 0.0, "heal_core_mb_s": 10.0,
            "heal_concurrency": concurrency}).model_dump(mode="json")
        for h in d["hosts"]:
            h["cores"] = 2
        d["volumes"][0]["options"]["shd_max_threads"] = threads
        obs = simulate(Scenario.model_validate(d))
        heal = obs["heal"]
        row = heal[heal["brick"] == "host2"].sort_values("t_start_s").iloc[0]
        return (float(row["t_end_s"] - row["t_start_s"]), int(row["shards"]),
                float(row["bytes"]) / int(row["shards"]), 6)

    took, shards, shard_bytes, cores = first_heal(0.5)
    trial = HealTrial(shards, shard_bytes, 3 * threads, 1e9, 0.0, daemons=3, cores=cores)
    assert took == pytest.approx(drain_s(trial, 0.0, 20.0, 10.0, 0.5), rel=1e-6)
    free, _, _, _ = first_heal(0.0)
    if threads == 8:
        # 24 in flight on 6 cores: 60 MB/s / (1 + 0.5 x 3) = 24 MB/s while > 6 shards left
        assert took > 2.0 * free
    else:
        assert took == pytest.approx(free, rel=1e-9)  # 3 in flight: below the cores


def test_the_bricks_side_resets_by_linux_keepalive_timer_rule() -> None:
    """tcp_keepalive_timer with the virt group's server keepalive (10 s, 2 s, 5 probes):
    the first probe 10 s after the last receipt; with a TCP_USER_TIMEOUT u, the reset at
    the first check (every 2 s after it) at least u after the last receipt with a probe
    unanswered; without one, after the 5th unanswered probe."""
    from hcisim.model.keepalive import server_closes_s

    assert server_closes_s(100.0, 95.0, 5.0) == pytest.approx(95.0 + 12.0)  # the lab's
    assert server_closes_s(100.0, 95.0, 11.0) == pytest.approx(95.0 + 12.0)
    assert server_closes_s(100.0, 95.0, 20.0) == pytest.approx(95.0 + 20.0)  # virt group
    assert server_closes_s(100.0, 95.0, 42.0) == pytest.approx(95.0 + 42.0)  # glusterfs's
    assert server_closes_s(100.0, 95.0, 0.0) == pytest.approx(95.0 + 10.0 + 5 * 2.0)
    with pytest.raises(ValueError):
        server_closes_s(100.0, 101.0, 5.0)
