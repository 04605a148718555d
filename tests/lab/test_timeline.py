"""Unit tests of how the lab turns client views and heal polls into volume state."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hcisim.lab.backend import Sample
from hcisim.lab.clientlog import ClientLogTail, ConnEvent, HealLine, HealLogTail, QuorumLogTail
from hcisim.lab.collect import LabRecord, measured_heals, server_quorum_events, shd_events
from hcisim.lab.healbytes import BrickIo
from hcisim.lab.healinfo import Pending
from hcisim.lab.run import WRITER_LEAD_S, idle_windows, phase_rates
from hcisim.lab.scale import LabScale, as_built
from hcisim.lab.schedule import FaultWindow, play
from hcisim.lab.timeline import VolumeTimeline, has_quorum, heal_episodes
from hcisim.observations import Recorder
from hcisim.scenario import Fault, Volume, load_scenario, make_fault
from tests.lab.scenarios import small


def _vol(quorum: str = "auto", count: int | None = None) -> Volume:
    return Volume.model_validate({
        "name": "data", "type": "replica3",
        "bricks": [{"host": "host1"}, {"host": "host2"}, {"host": "host3"}],
        "options": {"quorum_type": quorum, "quorum_count": count}})


def test_client_quorum_matches_afr_rule() -> None:
    """auto: more than half up, or exactly half including the first brick (afr_has_quorum)."""
    for up in itertools.product([False, True], repeat=3):
        assert has_quorum(_vol(), up) == (sum(up) >= 2)
        assert has_quorum(_vol("fixed", 1), up) == (sum(up) >= 1)
        assert has_quorum(_vol("none"), up) == any(up)


def _connect_all(host: str, t: float) -> list[tuple[str, ConnEvent]]:
    return [(host, ConnEvent(t, "data", -1, False))] + [
        (host, ConnEvent(t + 0.01, "data", i, True)) for i in range(3)]


def _timeline(windows: list[FaultWindow]) -> VolumeTimeline:
    tl = VolumeTimeline(_vol(), ["host1", "host2", "host3"], windows)
    conn = [e for h in ("host1", "host2", "host3") for e in _connect_all(h, 0.0)]
    tl.add(Sample(1.0, conn, {}))
    return tl


def test_first_client_to_notice_marks_the_brick_down() -> None:
    hang = FaultWindow(make_fault(at_s=10, kind="node_hang", target="host3"), 10.0, 30.0)
    tl = _timeline([hang])
    # host1 writes through brick 2 and times out at 16.5; host2 is idle and never notices
    tl.add(Sample(17.0, [("host1", ConnEvent(16.5, "data", 2, False))], {}))
    assert tl.up_at(12.0) == (True, True, True)
    assert tl.up_at(16.5) == (True, True, False)
    # after the repair host3's client is a reference again; it still sees everything
    tl.add(Sample(31.0, [("host1", ConnEvent(30.5, "data", 2, True))], {}))
    assert tl.up_at(31.0) == (True, True, True)


def test_cut_off_host_view_does_not_count_while_cut_nor_while_reconnecting() -> None:
    cut = FaultWindow(make_fault(at_s=10, kind="nic_loss", target="host3"), 10.0, 20.0)
    tl = _timeline([cut])
    # host3 loses bricks 0 and 1; the others notice brick 2 gone
    tl.add(Sample(17.0, [("host3", ConnEvent(16.0, "data", 0, False)),
                         ("host3", ConnEvent(16.0, "data", 1, False)),
                         ("host1", ConnEvent(16.2, "data", 2, False)),
                         ("host2", ConnEvent(16.3, "data", 2, False))], {}))
    assert tl.up_at(17.0) == (True, True, False)
    # repaired at 20; host3's client takes until 21 to reconnect: it sees a minority, so
    # its stale view must not mark bricks 0 and 1 down
    tl.add(Sample(22.0, [("host3", ConnEvent(21.0, "data", i, True)) for i in (0, 1)]
                  + [("host1", ConnEvent(20.8, "data", 2, True)),
                     ("host2", ConnEvent(20.9, "data", 2, True))], {}))
    assert tl.up_at(20.5) == (True, True, False)
    assert tl.up_at(21.5) == (True, True, True)
    assert all(p.quorum for p in tl.points(1.0, 25.0, []))


def test_killed_client_is_not_a_witness() -> None:
    loss = FaultWindow(make_fault(at_s=10, kind="node_power_loss", target="host2"), 10.0, 20.0)
    tl = _timeline([loss])
    tl.client_died("host2", 10.0)
    tl.add(Sample(16.0, [("host1", ConnEvent(15.5, "data", 1, False)),
                         ("host3", ConnEvent(15.6, "data", 1, False))], {}))
    assert tl.up_at(21.0) == (True, False, True)  # host2's dead client says nothing


def test_when_no_client_sees_a_majority_quorum_is_really_lost() -> None:
    tl = _timeline([])
    tl.add(Sample(6.0, [(h, ConnEvent(5.0, "data", i, False))
                        for h in ("host1", "host2", "host3") for i in (1, 2)], {}))
    pts = tl.points(0.0, 7.0, [])
    assert pts[-1].up == (True, False, False) and not pts[-1].quorum


def test_heal_episode_starts_when_the_sink_is_back() -> None:
    tl = _timeline([])
    tl.add(Sample(5.0, [("host1", ConnEvent(4.0, "data", 2, False)),
                        ("host2", ConnEvent(4.0, "data", 2, False)),
                        ("host3", ConnEvent(4.0, "data", 2, False))], {}))
    for t, pend in ((6.0, 1e6), (8.0, 3e6), (10.0, 3e6), (12.0, 1e6), (14.0, 0.0)):
        tl.add(Sample(t, [], {"data": {2: Pending(pend, int(pend > 0))}}))
    for h in ("host1", "host2", "host3"):
        tl.add(Sample(9.5, [(h, ConnEvent(9.0, "data", 2, True))], {}))
    eps = heal_episodes(tl.points(0.0, 15.0, [6.0, 8.0, 10.0, 12.0, 14.0]), 2)
    assert len(eps) == 1
    assert eps[0].start == 9.0 and eps[0].end == 14.0 and eps[0].bytes == 3e6


def test_phase_rates_follow_the_phases() -> None:
    sc = load_scenario(None)  # phases 0.6 / 1.0 from 600 s / 0.6 from 1500 s
    rates = phase_rates(sc, "db1")
    assert [(r.start_s, r.duration_s, r.load) for r in rates] == [
        (0.0, 600.0, 0.6), (600.0, 900.0, 1.0), (1500.0, 300.0, 0.6)]


def test_idle_windows_are_where_the_load_is_zero() -> None:
    """A VM's load-0 phases (and a load 0 to the end: until its writer stops) are the
    windows its history writer issues nothing in; a VM always loaded has none."""
    sc = load_scenario(None)
    assert idle_windows(sc, "db1") == ()
    d = sc.model_dump(mode="json")
    d["phases"] = [{"start_s": 100.0, "load": 0.0}, {"start_s": 200.0, "load": 1.0},
                   {"start_s": 300.0, "load": 0.0, "vms": ["db1"]}]
    sc2 = type(sc).model_validate(d)
    assert idle_windows(sc2, "db1") == ((100.0, 200.0), (300.0, sc2.duration_s + WRITER_LEAD_S))
    assert idle_windows(sc2, "web1") == ((100.0, 200.0),)


def test_as_built_scales_sizes_and_demand_only() -> None:
    sc = load_scenario(None)
    scale = LabScale.fit(sc)
    assert 0 < scale.size < 1 and 0 < scale.io < 1
    built = as_built(sc, scale)
    assert built.volumes[1].size_gb == sc.volumes[1].size_gb * scale.size
    assert built.io_profiles["oltp"].iops == (sc.io_profiles["oltp"].iops or 0) * scale.io
    assert built.faults == sc.faults and built.volumes[0].options == sc.volumes[0].options
    assert as_built(small(), LabScale()) is not None


def test_restarted_client_does_not_mark_unattached_bricks_down() -> None:
    """After a power loss is repaired the host's new client attaches brick by brick; a brick
    it has not reached yet is unknown to it, not down (no false quorum loss)."""
    loss = FaultWindow(make_fault(at_s=10, kind="node_power_loss", target="host2"), 10.0, 20.0)
    tl = _timeline([loss])
    tl.client_died("host2", 10.0)
    tl.add(Sample(16.0, [("host1", ConnEvent(15.5, "data", 1, False)),
                         ("host3", ConnEvent(15.6, "data", 1, False))], {}))
    tl.add(Sample(23.0, [("host2", ConnEvent(21.0, "data", -1, False)),
                         ("host2", ConnEvent(21.2, "data", 0, True)),
                         ("host2", ConnEvent(21.3, "data", 1, True)),
                         ("host1", ConnEvent(21.5, "data", 1, True)),
                         ("host3", ConnEvent(21.6, "data", 1, True)),
                         ("host2", ConnEvent(22.0, "data", 2, True))], {}))
    assert tl.up_at(21.4) == (True, False, True)  # host1/host3 still see brick 1 down
    assert tl.up_at(21.7) == (True, True, True)  # host2's client has not reached brick 2
    assert all(p.quorum for p in tl.points(1.0, 25.0, []))


def test_host_back_from_a_cut_reconnecting_brick_by_brick_flaps_nothing() -> None:
    cut = FaultWindow(make_fault(at_s=10, kind="partition", target="host3"), 10.0, 20.0)
    tl = _timeline([cut])
    tl.add(Sample(17.0, [("host3", ConnEvent(16.0, "data", 0, False)),
                         ("host3", ConnEvent(16.0, "data", 1, False)),
                         ("host1", ConnEvent(16.2, "data", 2, False)),
                         ("host2", ConnEvent(16.3, "data", 2, False))], {}))
    # back at 20: host3 reaches brick 0 first (now it sees a majority), brick 1 later
    tl.add(Sample(22.0, [("host3", ConnEvent(20.05, "data", 0, True)),
                         ("host1", ConnEvent(20.06, "data", 2, True)),
                         ("host2", ConnEvent(20.07, "data", 2, True)),
                         ("host3", ConnEvent(20.3, "data", 1, True))], {}))
    assert tl.up_at(20.1) == (True, True, True)
    assert all(p.quorum for p in tl.points(1.0, 25.0, []))


def test_player_injects_at_at_s_and_repairs_at_the_bound_on_its_clock() -> None:
    """The one timeline player, on a fake clock: each action at its time, a repair before an
    injection due at the same moment, a fault still on at the end left unrepaired."""
    now = [100.0]
    log: list[tuple[str, str, float]] = []
    faults = [make_fault(at_s=5, kind="brick_crash", target="host3", duration_s=5),
              make_fault(at_s=10, kind="node_hang", target="host2", duration_s=2),
              make_fault(at_s=15, kind="nic_loss", target="host1")]

    def act(what: str) -> Callable[[Fault], float]:
        def do(f: Fault) -> float:
            log.append((what, f.target, now[0] - 100.0))
            return now[0]
        return do

    windows = play(faults, 100.0, 20.0, act("inject"), act("restore"),
                   bound=lambda f: None if f.duration_s is None else min(f.duration_s, 4.0),
                   clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert [(w, h, round(t, 6)) for w, h, t in log] == [
        ("inject", "host3", 5.0), ("restore", "host3", 9.0), ("inject", "host2", 10.0),
        ("restore", "host2", 12.0), ("inject", "host1", 15.0)]
    assert [(w.fault.target, w.end is None) for w in windows] == [
        ("host3", False), ("host2", False), ("host1", True)]
    assert now[0] >= 120.0  # played until the end of the run


def test_the_lab_places_unplaced_vms_as_the_model_does() -> None:
    """One placement everywhere: the lab puts each unplaced VM on the host the model's
    scheduler picks (not round-robin)."""
    from pathlib import Path

    from hcisim.lab.run import placement
    from hcisim.placement import initial_placement

    sc = load_scenario(Path(__file__).resolve().parents[2] / "scenarios/compute-n1-fails.yaml")
    model = initial_placement(sc)
    assert any(vm.host is None for vm in sc.vms)
    assert placement(sc) == {vm: h for vm, h in model.items() if h is not None}
    hosts = list(sc.host_names)
    round_robin = {vm.name: hosts[i % len(hosts)] for i, vm in enumerate(sc.vms)
                   if vm.host is None}
    assert any(model[vm] != h for vm, h in round_robin.items())  # the test can tell them apart


def _healed_while_clients_away() -> VolumeTimeline:
    """Every client saw brick 2 go down at 4 s; the heal polls saw 3 MB pending on it from
    6 s, reached it from 7 s, and saw none left at 8 s."""
    tl = _timeline([])
    tl.add(Sample(5.0, [(h, ConnEvent(4.0, "data", 2, False)) for h in ("host1", "host2", "host3")],
                  {}))
    for t, pend, reach in ((6.0, 3e6, False), (7.0, 3e6, True), (7.5, 1e6, True),
                           (8.0, 0.0, True)):
        tl.add(Sample(t, [], {"data": {2: Pending(pend, int(pend > 0))}},
                      {"data": [True, True, reach]}))
    return tl


def test_heal_the_daemon_ran_before_the_clients_reconnected_is_an_episode() -> None:
    """Measured on the lab (tests/lab/test_healbytes_lab.py): after a NIC loss's repair the
    self-heal daemon healed 36 MiB while every client still saw the brick down (their 3 s
    reconnect timer); the heal poll reached the brick, so the episode starts there."""
    tl = _healed_while_clients_away()
    for h in ("host1", "host2", "host3"):
        tl.add(Sample(9.0, [(h, ConnEvent(8.6, "data", 2, True))], {}))
    pts = tl.points(0.0, 10.0, [])
    assert not any(p.up[2] for p in pts if 4.0 <= p.t < 8.6)  # the clients saw it down
    eps = heal_episodes(pts, 2)
    assert [(e.start, e.end, e.bytes) for e in eps] == [(7.0, 8.0, 3e6)]


def test_shd_events_from_the_daemons_log(tmp_path: Path) -> None:
    """glustershd.log lines (as Gluster 10.3 writes them in the lab) become shd_brick_down /
    shd_brick_up events: a daemon retrying a refused brick logs a disconnect at each 3 s
    try, only the first counts; a daemon restart forgets what it knew; lines of another
    volume and before the run are not this run's."""
    def line(t: str, msgid: str, xl: str, rest: str) -> str:
        return (f"[2026-11-29 09:24:{t} +0000] I [MSGID: {msgid}] [client.c:2244:x] "
                f"{xl}: {rest}\n")
    log = tmp_path / "glustershd.log"
    log.write_text("".join([
        line("01.000000", "114046", "0-data-client-1", "Connected, attached to remote volume"),
        line("18.748833", "114018", "0-data-client-1",
             "disconnected from client, process will keep trying to connect glusterd"),
        line("18.779567", "114018", "2-vmstore-client-1", "disconnected from client"),
        line("21.750959", "114018", "0-data-client-1", "disconnected from client"),
        line("24.101000", "114046", "0-data-client-1", "Connected, attached to remote volume"),
        line("30.000000", "100030", "0-/usr/sbin/glusterfs", "Started running version"),
        line("31.000000", "114046", "0-data-client-1", "Connected, attached to remote volume"),
    ]))
    t0 = datetime(2026, 11, 29, 9, 24, 10, tzinfo=UTC).timestamp()
    tail = ClientLogTail(log, "data")
    rec = LabRecord(t0=t0, duration_s=60.0, end=t0 + 60.0, workloads=[],
                    samples=[Sample(t0 + 40.0, [], {}, shd=[("host1", e) for e in tail.poll()])])
    out = Recorder()
    shd_events(_vol(), rec, out)
    ev = out.build("lab", "shd", 0, 60.0)["events"]
    got = [(round(float(t), 3), k, tg, d) for t, k, tg, d in
           zip(ev["t_s"], ev["kind"], ev["target"], ev["detail"], strict=True)]
    assert got == [(8.749, "shd_brick_down", "data/host2", "glustershd on host1"),
                   (14.101, "shd_brick_up", "data/host2", "glustershd on host1"),
                   (21.0, "shd_brick_up", "data/host2", "glustershd on host1")]


def test_server_quorum_events_from_glusterds_log(tmp_path: Path) -> None:
    """glusterd.log's server-quorum actions (Gluster 10.3's lines): one server_quorum_lost
    per host when it stops a first volume's bricks, server_quorum_regained when it has
    started them all again; the "regained" every glusterd start logs is no event."""
    def line(t: str, msgid: str, verb: str, vol: str, what: str) -> str:
        return (f"[2026-11-29 09:27:{t} +0000] C [MSGID: {msgid}] [glusterd-server-quorum.c:"
                f"350:glusterd_do_volume_quorum_action] 0-management: Server quorum {verb} "
                f"for volume {vol}. {what} local bricks. \n")
    log = tmp_path / "glusterd.log"
    log.write_text("".join([
        line("01.000000", "106003", "regained", "data", "Starting"),  # glusterd's start
        line("12.000000", "106003", "regained", "vmstore", "Starting"),  # a later start
        line("31.500000", "106002", "lost", "data", "Stopping"),
        line("31.520000", "106002", "lost", "vmstore", "Stopping"),
        "[2026-11-29 09:27:40.000000 +0000] I [MSGID: 106004] [x.c:1:y] 0-management: "
        "Peer <host1> state changed\n",
        line("44.100000", "106003", "regained", "data", "Starting"),
        line("44.130000", "106003", "regained", "vmstore", "Starting"),
    ]))
    t0 = datetime(2026, 11, 29, 9, 27, 10, tzinfo=UTC).timestamp()
    tail = QuorumLogTail(log)
    rec = LabRecord(t0=t0, duration_s=60.0, end=t0 + 60.0, workloads=[],
                    samples=[Sample(t0 + 50.0, [], {},
                                    server_quorum=[("host2", e) for e in tail.poll()])])
    out = Recorder()
    server_quorum_events(rec, out)
    ev = out.build("lab", "sq", 0, 60.0)["events"]
    got = [(round(float(t), 3), k, tg) for t, k, tg in
           zip(ev["t_s"], ev["kind"], ev["target"], strict=True)]
    assert got == [(21.5, "server_quorum_lost", "host2"),
                   (34.13, "server_quorum_regained", "host2")]


def _heal_line(t: float, gfid: str, done: bool, sinks: tuple[int, ...] = (2,),
               volume: str = "data") -> HealLine:
    return HealLine(t, volume, 0, "data", gfid, done, sinks if done else ())


def test_heal_times_come_from_the_daemons_log_where_it_has_them() -> None:
    """The polls bracket a heal (the episode of the test above: 7.0 -> 8.0 s); the
    daemons' log has its instants: the first begin of a file this episode healed (6.62 s:
    before the first poll that reached the brick) and the last completion that healed
    brick 2 (7.71 s). Heals before the brick came back (its repair at 6.5 s; a layout's
    before the run), of another brick (sinks 0: an episode of that brick's own,
    :mod:`hcisim.lab.healsinks`) or another volume, and a file begun but never completed,
    are not it."""
    tl = _healed_while_clients_away()
    pts = tl.points(0.0, 10.0, [])
    logged = [_heal_line(-1.1, "a", False), _heal_line(-1.0, "a", True),  # before the run
              _heal_line(6.62, "b", False), _heal_line(6.70, "c", False),
              _heal_line(6.9, "b", True), _heal_line(7.71, "c", True),
              _heal_line(7.2, "d", False), _heal_line(7.8, "d", True, (0,)),  # another sink
              _heal_line(6.1, "e", False, volume="other"),
              _heal_line(6.15, "e", True, volume="other"),
              _heal_line(7.9, "f", False)]  # begun, not done by the poll that saw none
    # host3's NIC was lost at 3.5 s and is back at 6.5 s (the repair bounds this episode)
    cut = [FaultWindow(make_fault(at_s=3.5, kind="nic_loss", target="host3"), 3.5, 6.5)]
    got = measured_heals(_vol(), pts, [], cut, [h for h in logged if h.volume == "data"],
                         since=0.0)
    assert [(i, ep.start, ep.end) for i, ep, _b, _how in got] == [(0, 7.2, 7.8),
                                                                   (2, 6.62, 7.71)]
    assert all("times: self-heal daemons' log" in how for *_x, how in got)
    polled = measured_heals(_vol(), pts, [], cut, [])
    assert [(i, ep.start, ep.end) for i, ep, _b, _how in polled] == [(2, 7.0, 8.0)]
    assert "times: heal polls" in polled[0][3]


def test_heal_lines_of_gluster_10_3(tmp_path: Path) -> None:
    """The self-heal daemon's heal lines as Gluster 10.3 wrote them in this lab (trailing
    blanks included), read by the tail: begins, completions with their sinks, the entry
    heal's "full"/"granular" word; other volumes and other messages are not heal lines."""
    log = tmp_path / "glustershd.log"
    log.write_text(
        "[2026-11-30 15:19:51.938561 +0000] I [MSGID: 108026] [afr-self-heal-data.c:346:"
        "afr_selfheal_data_do] 0-data-replicate-0: performing data selfheal on "
        "687cbb27-ec2c-4496-8024-c6c6a7b4259a \n"
        "[2026-11-30 15:19:51.946971 +0000] I [MSGID: 108026] [afr-self-heal-common.c:1743:"
        "afr_log_selfheal] 0-data-replicate-0: Completed data selfheal on "
        "687cbb27-ec2c-4496-8024-c6c6a7b4259a. sources=[0] 2  sinks=1  \n"
        "[2026-11-30 15:19:52.000001 +0000] I [MSGID: 108026] [afr-self-heal-entry.c:1079:"
        "afr_selfheal_entry_do] 0-data-replicate-0: performing full entry selfheal on "
        "be318638-e8a0-4c6d-977d-7a937aa84806 \n"
        "[2026-11-30 15:19:52.100000 +0000] I [MSGID: 108026] [afr-self-heal-common.c:1743:"
        "afr_log_selfheal] 0-data-replicate-0: Completed entry selfheal on "
        "be318638-e8a0-4c6d-977d-7a937aa84806. sources=[0] 2  sinks=1  \n"
        "[2026-11-30 15:19:52.200000 +0000] I [MSGID: 108026] [afr-self-heal-common.c:1743:"
        "afr_log_selfheal] 0-vmstore-replicate-0: Completed data selfheal on "
        "80bed562-d9ef-491a-9162-cc23789ce2c6. sources=[0] 2  sinks=1  \n"
        "[2026-11-30 15:19:52.300000 +0000] I [MSGID: 114046] [client.c:2244:x] "
        "0-data-client-1: Connected, attached to remote volume\n"
        "[2026-11-30 15:19:52.400000 +0000] I [MSGID: 108026] [afr-self-heal-common.c:1743:"
        "afr_log_selfheal] 0-data-replicate-0: Completed data selfheal on "
        "80bed562-d9ef-491a-9162-cc23789ce2c6. sources=[0] 2  sinks=0 1  \n")
    got = HealLogTail(log, "data").poll()
    t0 = datetime(2026, 11, 30, 15, 19, 51, tzinfo=UTC).timestamp()
    assert [(round(h.t - t0, 6), h.kind, h.gfid[:8], h.done, h.sinks) for h in got] == [
        (0.938561, "data", "687cbb27", False, ()), (0.946971, "data", "687cbb27", True, (1,)),
        (1.000001, "entry", "be318638", False, ()), (1.1, "entry", "be318638", True, (1,)),
        (1.4, "data", "80bed562", True, (0, 1))]
    assert all(h.volume == "data" and h.subvol == 0 for h in got)


def test_a_dead_writers_files_heal_into_every_other_brick() -> None:
    """A writer that died mid-transaction leaves AFR's dirty flag on every brick and no
    blame: the polls never attribute its files, the daemons heal them from brick 2 into
    bricks 0 and 1 (``sources=[2] sinks=0 1``, every power loss of the validation matrix).
    Brick 0 was up throughout: its heal is an episode of its own, measured by its write
    counter against brick 2's (the quiet one); brick 1's heal (3 MB polled, 2 MB more
    unattributed) is measured against brick 2 too, never against brick 0, whose counter
    grew by its own heal (the arbiter case's bytes were halved that way). Without a quiet
    brick the daemons' completions times the files' sizes say."""
    tl = _healed_while_clients_away()
    pts = tl.points(0.0, 10.0, [])
    cut = [FaultWindow(make_fault(at_s=3.5, kind="nic_loss", target="host3"), 3.5, 6.5)]
    logged = [_heal_line(7.1, "own", False), _heal_line(7.6, "own", True, (2,)),
              _heal_line(7.2, "dirty", False), _heal_line(7.9, "dirty", True, (0, 2))]
    fg = 1_000_000  # foreground bytes per 0.5 s poll, on every brick that is up
    polls = [i * 0.5 for i in range(21)]

    def counter(t: float, brick: int) -> int:
        heal = {0: 2e6 * min(max(t - 7.2, 0.0) / 0.7, 1.0),  # "dirty": 2 MB, 7.2 -> 7.9
                2: 5e6 * min(max(t - 7.1, 0.0) / 0.8, 1.0) if t >= 6.5 else 0.0}
        since = 6.5 if brick == 2 else 0.0  # brick 2 receives nothing before its repair
        return int(fg * max(t - since, 0.0) / 0.5 + heal.get(brick, 0.0))

    samples = [(t, {"data": {b: BrickIo(100 + b, counter(t, b)) for b in (0, 1, 2)}})
               for t in polls]
    # brick 0 healed "dirty" only, brick 1 is the quiet one, brick 2 the returning one
    got = {i: (ep.start, ep.end, round(nbytes), how) for i, ep, nbytes, how in measured_heals(
        _vol(), pts, samples, cut, logged, {"own": 3e6, "dirty": 2e6}, since=0.0)}
    assert set(got) == {0, 2}
    assert got[0][:2] == (7.2, 7.9) and got[0][3].startswith("brick write counter")
    assert got[0][2] == pytest.approx(2e6, rel=0.05)
    assert got[2][3].startswith("brick write counter")
    assert "daemons' completions x file sizes 5000000" in got[2][3]
    # no quiet brick: the completions times the sizes
    fg_only = [(t, {"data": {b: BrickIo(100 + b, counter(t, b)) for b in (0, 2)}})
               for t in polls]
    alone = {i: (round(nbytes), how) for i, _ep, nbytes, how in measured_heals(
        _vol(), pts, fg_only, cut, logged, {"own": 3e6, "dirty": 2e6}, since=0.0)}
    assert alone[0] == (2_000_000, "daemons' completions x file sizes; times: self-heal "
                                   "daemons' log")
    assert alone[2][0] == 5_000_000


def test_an_arbiter_named_a_sink_heals_no_data() -> None:
    """On an arbiter volume the daemons name the arbiter a sink too (``sources=[1] sinks=0
    2``: its metadata); it is no episode and no bytes of its own."""
    vol = Volume.model_validate({
        "name": "data", "type": "arbiter",
        "bricks": [{"host": "host1"}, {"host": "host2"}, {"host": "host3"}]})
    tl = VolumeTimeline(vol, ["host1", "host2", "host3"], [])
    pts = tl.points(0.0, 10.0, [])
    logged = [_heal_line(7.2, "dirty", False), _heal_line(7.9, "dirty", True, (0, 2))]
    got = measured_heals(vol, pts, [], [], logged, {"dirty": 2e6}, since=0.0)
    assert [(i, b) for i, _ep, b, _how in got] == [(0, 2e6)]


def test_a_completion_logged_after_the_empty_poll_ends_the_episode() -> None:
    """The daemon logs a file's completion after the undo-pending xattrop and the unlock
    (afr-self-heal-data.c ``__afr_selfheal_data``), so the poll that finds the heal index
    empty can come first (calibration part 5: 0.15-1.2 s in 8 of 30 heals): the episode
    ends at the last completion into the brick within POLL_BRACKET_S after that poll, and
    one further away is not this episode's (healsinks makes it an episode of its own)."""
    from hcisim.lab.timeline import POLL_BRACKET_S, HealEpisode, logged_heal

    polled = HealEpisode(1, 10.0, 20.0, 0.0, 2)
    lines = [HealLine(10.5, "data", 0, "data", "a", False),
             HealLine(12.0, "data", 0, "data", "a", True, (1,)),
             HealLine(11.0, "data", 0, "data", "b", False),
             HealLine(20.0 + POLL_BRACKET_S - 0.2, "data", 0, "data", "b", True, (1,)),
             HealLine(25.0, "data", 0, "data", "c", False),
             HealLine(26.0, "data", 0, "data", "c", True, (1,))]
    ep, from_log = logged_heal(polled, lines, 9.0, 3)
    assert from_log and (ep.start, ep.end) == (10.5, 20.0 + POLL_BRACKET_S - 0.2)
    # a completion into another brick does not end it
    other = [*lines[:2], HealLine(20.5, "data", 0, "data", "b", True, (0,))]
    assert logged_heal(polled, other, 9.0, 3)[0].end == 12.0
