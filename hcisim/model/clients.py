"""What each client mount believes about each brick, and glusterd's server quorum.

Per (client host, volume, brick) a client sees the brick ``up``, ``lost`` (gone without a
word: no TCP RST, so in-flight I/O waits; only the ping timer will mark it down) or
``down``. A refused connection (brick process killed, disk failed, brick stopped) is seen
at once. A silent loss becomes ``down`` when the connection's ping timer bails out
(:mod:`hcisim.model.pingtimer`): T after the first ping sent after the loss, from the ping
chain's phase when it is known (the connection's anchor: ``model.detection.anchor_s``, or
when it last reconnected) or drawn over one period when not; requests the client sends to
the brick later (a VM starting I/O there) re-arm the check for another T.

Server quorum (glusterd's peer connections, which kill and restart bricks) is
:mod:`hcisim.model.peers`; the views hold it because its peers' reconnects run on the same
timers as the clients'.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from hcisim.model.elaborate import BrickModel, Cluster
from hcisim.model.io import DiskPlan
from hcisim.model.peers import ServerQuorum
from hcisim.model.pingtimer import (
    back_at_s,
    disconnects,
    draw_lost_ping_s,
    first_lost_ping_s,
    syn_reconnect_at_s,
)
from hcisim.model.world import World
from hcisim.observations import Recorder
from hcisim.scenario import Detection

Seen = Literal["up", "lost", "down"]
ViewKey = tuple[str, str, str]  # client host, volume, brick host
Schedule = Callable[[float, Callable[[], None]], None]  # (delay, action)


@dataclass
class Loss:
    """One silent loss as one connection's ping timer sees it (meta ``detections``)."""

    client: str
    volume: str
    brick: str
    lost_s: float  # the last reply came back here
    lost_ping_s: float  # the first ping never answered
    phase: str  # known | unknown
    anchor_s: float | None  # where the chain started (known phase)
    sends_s: list[float] = field(default_factory=list)  # requests sent after the loss
    rearmed: int = 0  # expiry checks that saw a send within T
    down_s: float | None = None
    back_s: float | None = None  # this client used the brick again (reconnect)

    def meta(self) -> dict[str, Any]:
        return {"client": self.client, "volume": self.volume, "brick": self.brick,
                "lost_s": self.lost_s, "first_lost_ping_s": round(self.lost_ping_s, 6),
                "down_s": self.down_s,
                "back_s": self.back_s,
                "stall_s": None if self.down_s is None else round(self.down_s - self.lost_s, 6),
                "phase": self.phase, "anchor_s": self.anchor_s, "rearmed": self.rearmed}


class ClientViews:
    def __init__(self, cluster: Cluster, world: World, rng: np.random.Generator,
                 detection: Detection, rec: Recorder, schedule: Schedule,
                 clock: Callable[[], float], late_s: float = 0.0,
                 reconnect_delay_s: float = 0.0, reconnect_timer_s: float = 0.0,
                 syn_linear_timeouts: int = 4) -> None:
        self.clock = clock
        self.late_s = late_s  # model.ping_timer_late_s: each ping-timer callback this late
        # model.reconnect_delay_s / reconnect_timer_s: a reachable brick is used at the
        # client's next reconnect try, this long after it (pingtimer.reconnect_at_s)
        self.reconnect_delay_s = reconnect_delay_s
        self.reconnect_timer_s = reconnect_timer_s
        self.down_at: dict[ViewKey, float] = {}  # when each connection last disconnected
        # connections bailed out by the ping timer from a host that did not answer at all:
        # they reconnect on the SYN's retransmissions (pingtimer.syn_reconnect_at_s)
        self.unanswered: set[ViewKey] = set()
        # ...and when their host's neighbour (ARP) entry for the brick's host failed
        self.neighbour_failed: dict[ViewKey, float] = {}
        self._bailed: dict[ViewKey, Loss] = {}  # the loss each connection is down from
        # connections whose SYN will reach a host whose brick does not serve: when
        # (_refused_on_arrival)
        self._portmap_try: dict[ViewKey, float] = {}
        self.syn_linear_timeouts = syn_linear_timeouts
        self._reconnecting: dict[ViewKey, float] = {}  # key -> when its clients use it
        self.cluster = cluster
        self.world = world
        self.rng = rng
        self.detection = detection
        self.rec = rec
        self.schedule = schedule
        self.rtt_s = cluster.scenario.network("storage").rtt_ms / 1000.0
        self.seen: dict[ViewKey, Seen] = {}
        self.version = 0  # bumped whenever any view changes
        self._token: dict[ViewKey, int] = {}
        self.anchor: dict[ViewKey, float] = {}  # where each connection's ping chain started
        # connections that (re)connected during the run: their chain's phase is known even
        # when the scenario's phase is unknown (a cluster that was up before t = 0)
        self.reanchored: set[ViewKey] = set()
        self.losses: list[Loss] = []
        self._pending: dict[ViewKey, Loss] = {}  # losses whose ping timer has not bailed out
        self._issuing: dict[tuple[str, str], set[str]] = {}  # (client, volume) -> disks
        self.alive: dict[str, bool] = {}
        for c in cluster.hosts:
            self.alive[c] = True
            for v in cluster.volumes.values():
                for b in v.bricks:
                    self.seen[(c, v.name, b.host)] = "up"
                    self._token[(c, v.name, b.host)] = 0
                    self.anchor[(c, v.name, b.host)] = detection.anchor_s
        self.peers = ServerQuorum(cluster, world, rng, detection, rec, schedule, clock,
                                  reconnect_delay_s, reconnect_timer_s, syn_linear_timeouts)
        self.pool = self.peers.pool

    def state(self, client: str, volume: str, brick: str) -> Seen:
        return self.seen[(client, volume, brick)]

    # --- client views -------------------------------------------------------------------
    def reconcile(self, t: float) -> bool:
        """Bring every running client's view in line with the world; True if any changed."""
        changed = False
        for c in self.cluster.hosts:
            running = self.world.running(c)
            if not running:
                self.alive[c] = False  # frozen or off: its view no longer matters
                continue
            fresh = not self.alive[c]
            self.alive[c] = True
            for v in self.cluster.volumes.values():
                for b in v.bricks:
                    changed |= self._reconcile_one(t, c, b, fresh)
        return changed

    def _reconcile_one(self, t: float, c: str, b: BrickModel, fresh: bool) -> bool:
        key = (c, b.volume, b.host)
        st = self.seen[key]
        reachable = self.world.reachable(c, b)
        if not reachable and self._reconnecting:
            self._reconnecting.pop(key, None)  # gone again before its clients reconnected
        if not reachable and self._portmap_try and not self.world.refused(c, b):
            self._portmap_try.pop(key, None)  # unreachable again before its SYN got there
        if reachable and (st != "up" or fresh) and self._reconnect_later(t, key):
            new: Seen = "down" if fresh else st  # connects when _reconnect_due fires
        elif reachable:
            new = "up"
            if st != "up" or fresh:
                self.anchor[key] = t  # (re)connected: the ping chain starts again here
                self.reanchored.add(key)
                self._back(key, t)
                self.down_at.pop(key, None)
                self._answered(key)
        elif fresh or self.world.refused(c, b):
            new = "down"  # a (re)started client connects or fails at once
            if fresh:
                self.down_at.pop(key, None)  # it starts connecting now, no timer yet
                self._answered(key)
            elif st != "down":
                self.down_at[key] = t  # RST: disconnected at once, every try refused
                self._answered(key)
            elif key in self.unanswered and key in self.down_at:
                self._refused_on_arrival(t, key)
        elif st == "up":
            new = "lost"
            self._token[key] += 1
            self._start_ping_timer(t, key, self._token[key])
        else:
            new = st
        if new == st:
            return False
        if new != "lost":
            self._token[key] += 1  # a pending ping timer no longer applies
            self._pending.pop(key, None)
        self.seen[key] = new
        self.version += 1
        return True

    def _refused_on_arrival(self, t: float, key: ViewKey) -> None:
        """The brick's host answers again from ``t`` but the brick does not serve (glusterd
        stopped it for server quorum, or has not started it yet): the client's connect,
        on TCP's SYN backoff since its disconnect, reaches glusterd at its next SYN, whose
        portmap has no port for the brick; the client disconnects there and tries again on
        its reconnect timer's grid from that try. The lab's NIC loss of the validation
        matrix (session 14's kept logs): a client's SYN reached host2 1.8 s after the
        repair, "failed to get the port number for remote subvolume" (the brick, stopped
        for quorum, restarted 0.7 s later), and it connected 3.0 s after that, on its
        timer; from the SYN schedule alone it would have waited for the next SYN, 8 s
        later. A brick back by that SYN is used on it (:meth:`_reconnect_later`)."""
        tried = syn_reconnect_at_s(t, self.down_at[key], self.reconnect_timer_s, 0.0,
                                   self.syn_linear_timeouts, self.neighbour_failed.get(key))
        self._answered(key)
        self.down_at[key] = tried
        self._portmap_try[key] = tried

    def _reconnect_later(self, t: float, key: ViewKey) -> bool:
        """True while a brick that is reachable again waits for its client's reconnect
        (:func:`reconnect_at_s`; the first call schedules :meth:`_reconnect_due`)."""
        if key in self._reconnecting:
            return True
        tried = self._portmap_try.pop(key, None)
        if tried is not None and t <= tried:  # back before the SYN on its way reaches it
            at = tried + self.reconnect_delay_s
        else:
            at = back_at_s(t, self.down_at.get(key), key in self.unanswered,
                           self.reconnect_timer_s, self.reconnect_delay_s,
                           self.syn_linear_timeouts, self.neighbour_failed.get(key))
        if at <= t:
            return False
        self._token[key] += 1  # a pending ping timer no longer applies
        self._pending.pop(key, None)
        token = self._token[key]
        self._reconnecting[key] = token
        self.schedule(at - t, lambda: self._reconnect_due(key, token))
        return True

    def _reconnect_due(self, key: ViewKey, token: int) -> None:
        """The client connects to the returning brick (if it still can); the ping chain
        starts here."""
        if self._reconnecting.get(key) != token:
            return  # gone again meanwhile, or a newer reconnect
        del self._reconnecting[key]
        c, volume, host = key
        if not self.world.running(c) or not self.world.reachable(
                c, self.cluster.volumes[volume].brick(host)):
            return
        self.anchor[key] = self.clock()
        self.reanchored.add(key)
        self._back(key, self.clock())
        self.down_at.pop(key, None)
        self._answered(key)
        self._token[key] += 1
        self.seen[key] = "up"
        self.version += 1

    def _answered(self, key: ViewKey) -> None:
        """The connection's next reconnect is not one of an unanswered loss (any more)."""
        self.unanswered.discard(key)
        self.neighbour_failed.pop(key, None)

    def _back(self, key: ViewKey, t: float) -> None:
        """The connection is up again: its silent loss (if one bailed it out) ends here."""
        loss = self._bailed.pop(key, None)
        if loss is not None:
            loss.back_s = t

    def _start_ping_timer(self, t: float, key: ViewKey, token: int) -> None:
        """The connection's first unanswered ping, and its expiry T later."""
        timeout = self.cluster.volumes[key[1]].spec.options.ping_timeout_s
        phase = "known" if self.detection.phase == "known" or key in self.reanchored \
            else "unknown"
        if phase == "known":
            rtt = 0.0 if key[0] == key[2] else self.rtt_s
            anchor: float | None = self.anchor[key]
            assert anchor is not None
            ping = first_lost_ping_s(t, anchor, timeout, rtt, self.late_s)
        else:
            anchor = None
            ping = draw_lost_ping_s(self.rng, t, timeout, self.late_s)
        loss = Loss(key[0], key[1], key[2], t, ping, phase, anchor)
        self.losses.append(loss)
        self._pending[key] = loss
        self.schedule(ping + timeout + self.late_s - t,
                      lambda: self._ping_expired(key, token))

    def _ping_expired(self, key: ViewKey, token: int) -> None:
        """``rpc_clnt_ping_timer_expired``: bail out, or re-arm for another T if a request
        went out within T (whole seconds)."""
        if self._token[key] != token or self.seen[key] != "lost":
            return
        t = self.clock()
        loss = self._pending[key]
        timeout = self.cluster.volumes[key[1]].spec.options.ping_timeout_s
        sent = max([loss.lost_ping_s, loss.lost_s, *[s for s in loss.sends_s if s <= t]])
        if not disconnects(t, loss.lost_s, sent, timeout):
            loss.rearmed += 1
            self.schedule(timeout + self.late_s, lambda: self._ping_expired(key, token))
            return
        loss.down_s = t
        self._bailed[key] = loss
        del self._pending[key]
        self.seen[key] = "down"
        c, _, host = key
        if not self.world.nic_up(c, "storage"):
            # its own link is down: no route, every connect fails at once (ENETUNREACH),
            # so it connects at the timer's first tick after the repair
            self.down_at[key] = t
            self._answered(key)
        elif not self.world.answers(c, host):
            # the host does not answer at all (link, power, cut): the reconnect timer's
            # first try connects on the SYN's retransmissions, bound to ARP once the
            # neighbour entry fails (pingtimer.syn_reconnect_at_s; not through a cut)
            self.down_at[key] = t
            self.unanswered.add(key)
            self.neighbour_failed.pop(key, None)
            if not self.world.arp_answers(c, host):
                self.neighbour_failed[key] = self.world.neighbours.failed_at_s(c, loss.lost_s)
        else:
            # its kernel answers but the brick does not (a hang): no mechanism measured
            # yet, reconnect_delay_s after it serves again
            self.down_at.pop(key, None)
            self._answered(key)
        self.version += 1

    def note_requests(self, t: float, plans: Iterable[DiskPlan]) -> None:
        """Requests sent to a lost brick after the loss (``model.detection.later_sends``).

        A disk already issuing when its client lost the brick is a closed loop stuck on that
        request: it sends nothing new. A disk that starts issuing on that client while the
        loss is pending (a VM placed, resumed or starting a phase there) sends a request to
        every brick its writes go to (all of them) or its reads (the read brick), which moves
        the connection's ``last_sent``. Costs nothing while no loss is pending.
        """
        if not self._pending or not self.detection.later_sends:
            self._issuing.clear()
            return
        watched = {(c, v) for c, v, _ in self._pending}
        now: dict[tuple[str, str], set[str]] = {cv: set() for cv in watched}
        fresh: dict[tuple[str, str], list[DiskPlan]] = {}
        for p in plans:
            cv = (p.client, p.disk.volume)
            if cv not in now or p.demand <= 0 or p.status not in ("ok", "stalled"):
                continue
            now[cv].add(p.disk.key)
            known = self._issuing.get(cv)
            if known is not None and p.disk.key not in known:
                fresh.setdefault(cv, []).append(p)
        for (c, v), starters in fresh.items():
            for key, loss in self._pending.items():
                if key[0] != c or key[1] != v:
                    continue
                if any(p.disk.write_frac > 0 or p.read_brick == key[2] for p in starters):
                    loss.sends_s.append(t)
        self._issuing = now

    def meta(self) -> dict[str, Any]:
        """How silent losses were detected (the run's ``meta``): the mechanism, the phase
        mode, and one entry per connection that lost a brick silently."""
        return {"mechanism": "rpc-clnt ping timer", "phase": self.detection.phase,
                "anchor_s": self.detection.anchor_s if self.detection.phase == "known"
                else None,
                "later_sends": self.detection.later_sends,
                "losses": [loss.meta() for loss in self.losses],
                **self.peers.meta(),
                # the hosts' ARP entries for a silent peer, when they failed
                "neighbours": self.world.neighbours.meta()}

    def reconcile_server_quorum(self, t: float) -> bool:
        return self.peers.reconcile(t)
