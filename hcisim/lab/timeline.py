"""Volume state over time, replayed from the client logs and the heal polls of a lab run.

Which client's view counts: the clients on hosts that no fault is hitting at that moment
(a cut-off host sees everyone else down, which says nothing about the bricks), and of
those only clients that see a majority of the bricks (a client just restarted, or still
reconnecting after its host was cut off, knows less than the others; if no client sees a
majority, all of them count, and quorum is really lost). A brick is down as soon as one of
them has seen it go down, up when one sees it connected and none has seen it go down; a
brick a client has not attached to since it (re)started is not known to that client:
a client notices a silent loss only when it has requests in flight to that brick (the
ping timer runs only then), so an idle client can keep "seeing" a dead brick for as long
as the fault lasts; the first client that notices marks the brick down.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from hcisim.lab.backend import Sample
from hcisim.lab.clientlog import FORGET_DOWNS, ClientView, ConnEvent, HealLine
from hcisim.lab.healinfo import Pending
from hcisim.lab.schedule import FaultWindow
from hcisim.scenario import Volume


@dataclass(frozen=True)
class VolumePoint:
    t: float  # epoch
    up: tuple[bool, ...]
    quorum: bool
    pending: tuple[Pending, ...]
    # the heal tool's own connection to each brick at the last heal poll (empty: no poll
    # said): a fresh client each poll, so it sees a brick back before the clients' 3 s
    # reconnect timer brings them back, as the self-heal daemon may (it heals then)
    heal_reaches: tuple[bool, ...] = ()


def has_quorum(vol: Volume, up: tuple[bool, ...]) -> bool:
    """Client quorum (afr_has_quorum): auto = more than half, or exactly half with the first."""
    n, k = len(up), sum(up)
    q = vol.options.quorum_type
    if q == "none":
        return k > 0
    if q == "fixed":
        assert vol.options.quorum_count is not None
        return k >= vol.options.quorum_count
    return 2 * k > n or (2 * k == n and up[0])


class VolumeTimeline:
    def __init__(self, vol: Volume, hosts: list[str], windows: list[FaultWindow]) -> None:
        self.vol = vol
        self.hosts = hosts
        self.windows = [w for w in windows if not w.fault.traits.slows]
        self.views = {h: ClientView(len(vol.bricks)) for h in hosts}
        self.heal: list[tuple[float, list[Pending], tuple[bool, ...]]] = []
        for w in self.windows:  # a host back from a fault: its disconnects were its own
            if w.end is not None and w.fault.target in self.views:
                self.views[w.fault.target].add([ConnEvent(w.end, vol.name, FORGET_DOWNS, False)])

    def add(self, sample: Sample) -> None:
        for host, ev in sample.conn:
            if ev.volume == self.vol.name and host in self.views:
                self.views[host].add([ev])
        pend = sample.pending.get(self.vol.name)
        if pend is not None:
            n = len(self.vol.bricks)
            self.heal.append((sample.t, [pend.get(i, Pending()) for i in range(n)],
                              tuple(sample.connected.get(self.vol.name, ()))))

    def reference_hosts(self, t: float) -> list[str]:
        hit = {w.fault.target for w in self.windows if w.active(t)}
        ref = [h for h in self.hosts if h not in hit]
        return ref or list(self.hosts)

    def up_at(self, t: float) -> tuple[bool, ...]:
        states = [self.views[h].state_at(t) for h in self.reference_hosts(t)]
        ready = [s for s in states if 2 * sum(1 for x in s if x) > len(s)] or states
        return tuple(
            not any(s[i] is False for s in ready) and any(s[i] for s in ready)
            for i in range(len(self.vol.bricks)))

    def client_died(self, host: str, t: float) -> None:
        """The client process on ``host`` was killed at ``t``: it sees nothing any more."""
        if host in self.views:
            self.views[host].add([ConnEvent(t, self.vol.name, -1, False)])

    def pending_at(self, t: float) -> tuple[tuple[Pending, ...], tuple[bool, ...]]:
        """The last heal poll's pending per brick at ``t``, and which bricks it reached."""
        last: tuple[list[Pending], tuple[bool, ...]] | None = None
        for ts, p, reach in self.heal:
            if ts > t:
                break
            last = p, reach
        if last is None:
            return tuple(Pending() for _ in self.vol.bricks), ()
        return tuple(last[0]), last[1]

    def change_times(self) -> list[float]:
        ts = {t for v in self.views.values() for t in v.change_times()}
        for w in self.windows:
            ts.add(w.start)
            if w.end is not None:
                ts.add(w.end)
        ts |= {t for t, _, _ in self.heal}
        return sorted(ts)

    def points(self, start: float, end: float, extra: list[float]) -> list[VolumePoint]:
        times = sorted({t for t in [*self.change_times(), *extra] if start <= t <= end} | {start})
        out = []
        for t in times:
            up = self.up_at(t)
            out.append(VolumePoint(t, up, has_quorum(self.vol, up), *self.pending_at(t)))
        return out


@dataclass(frozen=True)
class HealEpisode:
    brick: int
    start: float
    end: float
    bytes: float
    entries: int


def heal_episodes(points: list[VolumePoint], brick: int) -> list[HealEpisode]:
    """Runs of pending heal on one brick, from when it is up (heal can flow) to pending 0.

    Up for heal: a client sees the brick, or the heal poll itself reached it. The self-heal
    daemon heals as soon as it reaches the brick (an operator heal at the repair sets it
    sweeping), often before the clients' 3 s reconnect timer brings them back: a short heal
    can run and finish while every client still sees the brick down (measured: 36 MiB
    healed 0.7-2.4 s after a NIC loss's repair, the clients back at 2.6-2.9 s).

    Bytes are the most that was pending once the brick was back: everything written while
    it was away, as the heal index estimate gives it (:mod:`hcisim.lab.healinfo`).
    """
    out: list[HealEpisode] = []
    start: float | None = None
    peak, entries = 0.0, 0
    for p in points:
        pend = p.pending[brick]
        if pend.bytes > 0 or pend.entries > 0:
            reached = brick < len(p.heal_reaches) and p.heal_reaches[brick]
            if start is None and (p.up[brick] or reached):
                start = p.t
            if start is not None:
                peak, entries = max(peak, pend.bytes), max(entries, pend.entries)
        elif start is not None:
            out.append(HealEpisode(brick, start, p.t, peak, entries))
            start, peak, entries = None, 0.0, 0
    return out


# how far a heal's log instants may lie outside the heal polls that bracket it: the polls
# run 0.5-1 s apart, and the daemon logs a file's completion after the post-op that took it
# off the heal index (afr-self-heal-data.c ``__afr_selfheal_data``: the undo-pending
# xattrop, the unlock, then ``afr_log_selfheal``), so the poll that finds the
# index empty can come before the last "Completed" line (calibration part 5: 0.15-1.2 s in
# 8 of 30 heals)
POLL_BRACKET_S = 1.0


def logged_heal(ep: HealEpisode, lines: Sequence[HealLine], after: float | None,
                set_size: int) -> tuple[HealEpisode, bool]:
    """``ep`` with its start and end from the self-heal daemons' log, and whether the log
    said. The heal polls only bracket a heal: it ends between the poll that still saw
    pending entries and the one that saw none (0.5-1 s apart), and an episode "starts" at
    the first poll that saw the brick back. The log has the instants: the last completion
    that healed this brick (sinks) up to :data:`POLL_BRACKET_S` after the poll that saw it
    done, and the first begin of
    a file among those completions; ``after``: when the brick came back (its repair) or the
    previous episode ended, whichever is later (earlier heals are not this episode's; None:
    no bound). Unchanged where no completion healed the brick."""
    lo = -math.inf if after is None else after
    done = [h for h in lines if h.done and lo < h.t <= ep.end + POLL_BRACKET_S
            and ep.brick in h.sink_bricks(set_size)]
    if not done:
        return ep, False
    end = max(h.t for h in done)
    files = {h.gfid for h in done}
    begun = [h.t for h in lines if not h.done and h.gfid in files and lo < h.t <= end]
    return replace(ep, start=min(begun, default=min(h.t for h in done)), end=end), True
