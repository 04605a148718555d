"""Turn what a lab run recorded into the shared observation tables.

Inputs are raw and timestamped on the harness's clock (epoch seconds): fio's logs, the
history writers' logs, client log events, heal polls, fault windows. Every table row is
in seconds since the run started (``t0``), like the model's.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from hcisim.lab.backend import Sample, Workload
from hcisim.lab.clientlog import HealLine
from hcisim.lab.fio import read_plan_logs, rebin
from hcisim.lab.healbytes import IoSample, heal_received, volume_series
from hcisim.lab.healsinks import healed_into, logged_bytes, logged_episodes
from hcisim.lab.history import (
    CheckResult,
    History,
    Interval,
    bad_intervals,
    per_second,
    ran_twice_events,
)
from hcisim.lab.schedule import FaultWindow
from hcisim.lab.timeline import (
    HealEpisode,
    VolumePoint,
    VolumeTimeline,
    heal_episodes,
    logged_heal,
)
from hcisim.observations import Observations, Recorder
from hcisim.scenario import Scenario, Volume


@dataclass
class LabRecord:
    """Everything a lab run saw, before it is turned into tables."""

    t0: float
    duration_s: float
    end: float  # epoch: last observation (after the final heal wait)
    workloads: list[Workload]
    samples: list[Sample] = field(default_factory=list)
    counters: list[IoSample] = field(default_factory=list)  # brick write counters, dense
    windows: list[FaultWindow] = field(default_factory=list)
    killed: dict[str, float] = field(default_factory=dict)  # host -> epoch its VMs died
    histories: dict[str, History] = field(default_factory=dict)
    checks: dict[str, CheckResult] = field(default_factory=dict)
    stall_threshold_s: float = 0.5
    placement: dict[str, str] = field(default_factory=dict)  # VM -> host it runs on
    # gfid -> allocated bytes on a data brick of each file the self-heal daemons healed
    # (read before the lab goes away: hcisim.lab.healsinks.logged_bytes)
    entry_sizes: dict[str, float] = field(default_factory=dict)
    # real guests (hcisim.lab.guests.run) write their own VM tables instead of the default
    # vm_state rows: called with the recorder and each volume's timeline
    compute: Callable[[Recorder, dict[str, list[VolumePoint]]], None] | None = None


def demand_at(sc: Scenario, vm: str, base_mb_s: float, t: float) -> float:
    load = 1.0
    for ph in sc.phases:
        if ph.start_s <= t and (ph.vms is None or vm in ph.vms):
            load = ph.load
    return base_mb_s * load


def vm_io_rows(sc: Scenario, w: Workload, rec: LabRecord, base_mb_s: float,
               out: Recorder) -> None:
    cells = rebin(read_plan_logs(w.fio.log_dir), rec.t0, rec.duration_s)
    end_abs = rec.t0 + rec.duration_s
    bad = bad_intervals(rec.histories.get(w.key, History(w.key)), rec.stall_threshold_s,
                        end_abs)
    marks: list[Interval] = [Interval(i.start - rec.t0, i.end - rec.t0, i.status) for i in bad]
    if w.host in rec.killed:
        marks = [m for m in marks if m.start < rec.killed[w.host] - rec.t0]
        marks = [Interval(m.start, min(m.end, rec.killed[w.host] - rec.t0), m.status)
                 for m in marks]
        marks.append(Interval(rec.killed[w.host] - rec.t0, rec.duration_s, "stopped"))
    edges = sorted({e for m in marks for e in (m.start, m.end) if 0 < e < rec.duration_s})
    for c in cells:
        cuts = [c.t_start_s, *[e for e in edges if c.t_start_s < e < c.t_end_s], c.t_end_s]
        for a, b in itertools.pairwise(cuts):
            mid = (a + b) / 2
            status = next((m.status for m in marks if m.start <= mid < m.end), "ok")
            out.add("vm_io", w.vm, w.volume, a, b, demand_at(sc, w.vm, base_mb_s, a),
                    c.read_mb_s, c.write_mb_s, c.read_iops, c.write_iops, c.latency_ms,
                    c.latency_p99_ms, status)


def volume_rows(sc: Scenario, rec: LabRecord, out: Recorder) -> dict[str, list[VolumePoint]]:
    timelines: dict[str, list[VolumePoint]] = {}
    sample_times = [s.t for s in rec.samples]
    for vol in sc.volumes:
        tl = VolumeTimeline(vol, list(sc.host_names), rec.windows)
        for s in rec.samples:
            tl.add(s)
        for host, t_kill in rec.killed.items():
            tl.client_died(host, t_kill)
        pts = tl.points(rec.t0, rec.end, sample_times)
        timelines[vol.name] = pts
        prev = None
        for p in pts:
            t = p.t - rec.t0
            for i, b in enumerate(vol.bricks):
                out.add("volume_state", t, vol.name, b.host,
                        "arbiter" if vol.is_arbiter(b.host) else "data", p.up[i],
                        p.pending[i].bytes, p.quorum)
                if prev is not None and prev.up[i] != p.up[i]:
                    out.event(t, "brick_up" if p.up[i] else "brick_down",
                              f"{vol.name}/{b.host}", "client view")
            if prev is not None and prev.quorum != p.quorum:
                out.event(t, "quorum_regained" if p.quorum else "quorum_lost", vol.name)
            prev = p
        shd_events(vol, rec, out)
        logged = [h for s in rec.samples for _daemon, h in s.heals if h.volume == vol.name]
        for i, ep, nbytes, how in measured_heals(vol, pts, rec.counters, rec.windows, logged,
                                                 rec.entry_sizes, rec.t0):
            b = vol.bricks[i]
            out.add("heal", vol.name, b.host, ep.start - rec.t0, ep.end - rec.t0,
                    nbytes, ep.entries)
            out.event(ep.start - rec.t0, "heal_start", f"{vol.name}/{b.host}",
                      f"{ep.bytes:.0f} bytes pending")
            out.event(ep.end - rec.t0, "heal_done", f"{vol.name}/{b.host}",
                      f"{nbytes:.0f} bytes ({how}), {ep.entries} entries")
        exposure_rows(vol.name, [b.host for b in vol.data_bricks],
                      [i for i, b in enumerate(vol.bricks) if not vol.is_arbiter(b.host)],
                      pts, rec, out)
    return timelines


def shd_events(vol: Volume, rec: LabRecord, out: Recorder) -> None:
    """``shd_brick_down`` / ``shd_brick_up`` from the self-heal daemons' own log: a daemon's
    connection to a brick dropped, or came back (its CHILD_UP: what wakes heal). A daemon
    retrying a refused brick logs a disconnect at every try: only the first counts."""
    events = sorted(((ev.t, daemon, ev) for s in rec.samples for daemon, ev in s.shd
                     if ev.volume == vol.name), key=lambda x: x[0])
    state: dict[tuple[str, int], bool] = {}
    for t, daemon, ev in events:
        if ev.index < 0:  # the daemon (re)started: it knows no brick yet
            state = {k: v for k, v in state.items() if k[0] != daemon}
            continue
        if ev.index >= len(vol.bricks) or state.get((daemon, ev.index)) == ev.up:
            continue
        state[(daemon, ev.index)] = ev.up
        if rec.t0 <= t <= rec.end:
            out.event(t - rec.t0, "shd_brick_up" if ev.up else "shd_brick_down",
                      f"{vol.name}/{vol.bricks[ev.index].host}", f"glustershd on {daemon}")


def server_quorum_events(rec: LabRecord, out: Recorder) -> None:
    """``server_quorum_lost`` when glusterd on a host stops its bricks of a first volume for
    server quorum, ``server_quorum_regained`` when it has started them all again (the
    model's events: one per host). A glusterd that starts says "regained" for every
    volume: that is no event unless it had stopped them."""
    events = sorted(((ev.t, host, ev) for s in rec.samples for host, ev in s.server_quorum),
                    key=lambda x: x[0])
    lost: dict[str, set[str]] = {}
    for t, host, ev in events:
        had = lost.setdefault(host, set())
        if ev.lost and not had:
            had.add(ev.volume)
            if rec.t0 <= t <= rec.end:
                out.event(t - rec.t0, "server_quorum_lost", host,
                          f"glusterd stopped local bricks: {ev.volume}")
        elif ev.lost:
            had.add(ev.volume)
        elif ev.volume in had:
            had.discard(ev.volume)
            if not had and rec.t0 <= t <= rec.end:
                out.event(t - rec.t0, "server_quorum_regained", host, "bricks restarted")


def measured_heals(vol: Volume, pts: list[VolumePoint], counters: list[IoSample],
                   windows: list[FaultWindow], logged: Sequence[HealLine] = (),
                   sizes: Mapping[str, float] | None = None, since: float = -math.inf,
                   ) -> list[tuple[int, HealEpisode, float, str]]:
    """Every heal episode of ``vol``'s bricks with the bytes it healed and how they were
    measured: the brick write counters where a quiet reference brick lets them say, else
    the daemons' completions times each file's size (``sizes``), else the heal index
    estimate. The heal polls find the episodes; their start and end are the self-heal
    daemons' own instants where their log (``logged``) has them (:func:`logged_heal`); heals
    the log shows into a brick no poll attributed to it (after ``since``) are episodes too
    (:mod:`hcisim.lab.healsinks`)."""
    n = len(vol.bricks)
    polled_eps = {i: heal_episodes(pts, i) for i in range(n)}
    # (an arbiter is named a sink of metadata only: no data heal of its own)
    only_logged = {i: [] if vol.is_arbiter(b.host) else
                   logged_episodes(logged, i, n, polled_eps[i], since)
                   for i, b in enumerate(vol.bricks)}
    episodes = {i: sorted(polled_eps[i] + only_logged[i], key=lambda e: e.start)
                for i in range(n)}
    series = volume_series(counters, vol.name, n)
    out = []
    for i, b in enumerate(vol.bricks):
        for k, polled in enumerate(episodes[i]):
            if polled in only_logged[i]:  # up throughout: heal only, from its first begin
                # its counter from the poll before the first begin to one after the last
                # completion (the heal's last writes are in), the reference's over the same
                begin, after = polled.start, polled.end + 1.0
                got = None if vol.is_arbiter(b.host) else heal_received(
                    series, i, quiet_data_bricks(vol, pts, episodes, i, polled, begin, logged),
                    begin, after)
                out.append(_measured(i, n, polled, got, logged,
                                     None if vol.is_arbiter(b.host) else sizes, True))
                continue
            back = back_at(pts, windows, i, b.host, polled)
            prev_end = episodes[i][k - 1].end if k else None
            if prev_end is not None and (back is None or prev_end > back):
                # a second heal after one repair (writes that still missed the brick after
                # the first heal: a client not reconnected yet): what the brick received
                # since the previous heal ended, not since the repair again
                back = prev_end
            # heals logged before the brick came back (e.g. while the VM disks were laid
            # out) or in the previous episode are not this one's
            ep, from_log = logged_heal(polled, logged, back, n)
            # the brick's write counter over the polled episode (its samples bracket it)
            got = None if vol.is_arbiter(b.host) else heal_received(
                series, i, quiet_data_bricks(vol, pts, episodes, i, polled, back, logged),
                back, polled.end)
            out.append(_measured(i, n, ep, got, logged,
                                 None if vol.is_arbiter(b.host) else sizes, from_log,
                                 (back if back is not None else ep.start) - 1e-6))
    return out


def _measured(i: int, set_size: int, ep: HealEpisode, counted: float | None,
              logged: Sequence[HealLine], sizes: Mapping[str, float] | None, from_log: bool,
              lo: float | None = None) -> tuple[int, HealEpisode, float, str]:
    """One episode's bytes and how they were measured (see :func:`measured_heals`).
    ``sizes`` None: an arbiter brick (a daemon names it a sink of metadata only)."""
    when = "times: self-heal daemons' log" if from_log else "times: heal polls"
    done = healed_into(logged, i, set_size, ep.start - 1e-6 if lo is None else lo, ep.end)
    by_log = None if sizes is None else logged_bytes(done, sizes)
    said = f"daemons' completions x file sizes {by_log:.0f}" if by_log is not None else ""
    if counted is not None:
        return i, ep, counted, "; ".join(x for x in (
            "brick write counter", said, f"heal index estimate {ep.bytes:.0f}", when) if x)
    if by_log is not None:
        return i, ep, by_log, f"daemons' completions x file sizes; {when}"
    return i, ep, ep.bytes, f"heal index estimate; {when}"


def back_at(pts: list[VolumePoint], windows: list[FaultWindow], brick: int, host: str,
            ep: HealEpisode) -> float | None:
    """When ``brick`` could receive writes again before ``ep``: the latest repair of a fault
    on its host (until then nothing reached it), else the last time a client saw it down
    (None: never seen down)."""
    repairs = [w.end for w in windows
               if w.end is not None and w.end <= ep.end and w.fault.target == host]
    if repairs:
        return max(repairs)
    return max((p.t for p in pts if p.t <= ep.start and not p.up[brick]), default=None)


def quiet_data_bricks(vol: Volume, pts: list[VolumePoint],
                      episodes: dict[int, list[HealEpisode]], brick: int,
                      ep: HealEpisode, back: float | None,
                      logged: Sequence[HealLine] = ()) -> list[int]:
    """Data bricks other than ``brick`` that were up and not healing from ``back`` to the
    end of ``ep``: their write counters grew by the foreground writes alone. Not healing:
    no episode of theirs overlaps, and no daemon's log names them a sink meanwhile."""
    lo = ep.start if back is None else back
    settled = {p.t: p for p in pts}.values()  # the last point at each instant (no blips)
    n = len(vol.bricks)
    return [j for j, b in enumerate(vol.bricks)
            if j != brick and not vol.is_arbiter(b.host)
            and all(p.up[j] for p in settled if lo <= p.t <= ep.end)
            and not any(e.start < ep.end and e.end > lo for e in episodes[j])
            and not healed_into(logged, j, n, lo - 1.0, ep.end + 1.0)]


def exposure_rows(volume: str, data_hosts: list[str], data_idx: list[int],
                  pts: list[VolumePoint], rec: LabRecord, out: Recorder) -> None:
    """Windows where fewer data bricks than the layout promises hold the newest data."""
    want = len(data_idx)
    seg_start: float | None = None
    seg_good, seg_bytes = want, 0.0
    for p in [*pts, None]:
        if p is not None:
            good = sum(1 for i in data_idx if p.up[i] and p.pending[i].bytes == 0
                       and p.pending[i].entries == 0)
            pend = sum(p.pending[i].bytes for i in data_idx)
        if p is None or good != seg_good:
            t = (p.t if p is not None else rec.end) - rec.t0
            if seg_start is not None and seg_good < want:
                out.add("exposure", volume, seg_start, t, seg_good, seg_bytes)
            if p is None:
                break
            seg_start, seg_good, seg_bytes = t, good, pend
        else:
            seg_bytes = max(seg_bytes, pend)


def quorum_at(points: list[VolumePoint], times: list[float], t: float) -> bool:
    """Quorum of the volume at epoch ``t`` (``times``: the points' times, sorted)."""
    i = bisect.bisect_right(times, t) - 1
    return points[i].quorum if i >= 0 else True


def build_observations(sc: Scenario, rec: LabRecord, meta: dict[str, object],
                       engine: str = "lab:netns") -> Observations:
    out = Recorder()
    for fw in rec.windows:
        out.fault_event(fw.start - rec.t0, True, fw.fault)
        if fw.end is not None:
            out.fault_event(fw.end - rec.t0, False, fw.fault)
    timelines = volume_rows(sc, rec, out)
    server_quorum_events(rec, out)
    for w in rec.workloads:
        base = w.fio.profile.demand_mb_s if w.fio.phases else 0.0
        vm_io_rows(sc, w, rec, base, out)
        check = rec.checks.get(w.key)
        if check is not None:
            pts = timelines[w.volume]
            times = [p.t for p in pts]

            def has_quorum(t: float, pts: list[VolumePoint] = pts,
                           times: list[float] = times) -> bool:
                return quorum_at(pts, times, t)

            rows = per_second(check, rec.t0, rec.duration_s, has_quorum)
            for a, b, acked, copies, lost, quorum in rows:
                out.add("writes", w.vm, w.volume, a, b, acked, copies, quorum, lost)
            for t, detail in ran_twice_events(check, rec.t0):
                out.event(t, "vm_ran_twice", w.vm, detail)
    if rec.compute is not None:
        rec.compute(out, timelines)
        return out.build(engine, sc.name, sc.seed, rec.duration_s, meta=dict(meta))
    for vm in sc.vms:
        host = rec.placement.get(vm.name, vm.host or "")
        if host in rec.killed:
            t = rec.killed[host] - rec.t0
            out.add("vm_state", vm.name, host, 0.0, t, "running", "")
            out.add("vm_state", vm.name, host, t, rec.duration_s, "down",
                    "host lost power (the netns lab has no HA restart)")
            out.event(t, "vm_down", vm.name, "host lost power")
        else:
            out.add("vm_state", vm.name, host, 0.0, rec.duration_s, "running", "")
    return out.build(engine, sc.name, sc.seed, rec.duration_s, meta=dict(meta))
