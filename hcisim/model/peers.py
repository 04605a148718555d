"""glusterd's server quorum: which peers each glusterd is connected to, and its bricks.

Each host of the trusted pool (the hosts with bricks; a compute-only host only mounts the
volumes) runs glusterd, connected to every peer. Its peer connections have no ping timer
(glusterd.vol: ``ping-timeout 0``), so a cut peer is noticed by TCP keepalive alone
(:mod:`hcisim.model.keepalive`): 18-28 s after the cut when the keepalive's phase is
unknown, at a fixed time when it is known (``model.detection.peer_anchor_s``, measured on
the lab by the server-quorum experiment), whatever network.ping-timeout is. We assume
glusterd talks over the storage network. A host below the volume's
``server-quorum-ratio`` has its bricks killed at once; they are restarted as soon as it is
connected to enough peers again (a connection keepalive dropped comes back on the
reconnect timer and the SYN's retransmissions, as a client's).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from hcisim.model.elaborate import BrickModel, Cluster
from hcisim.model.gluster import server_quorum_met
from hcisim.model.keepalive import (
    GLUSTERD_KEEPALIVE_INTERVAL_S,
    GLUSTERD_KEEPALIVE_TIME_S,
    draw_last_keepalive_s,
    known_last_keepalive_s,
    peer_loss_detected_s,
)
from hcisim.model.pingtimer import back_at_s
from hcisim.model.world import World
from hcisim.observations import Recorder
from hcisim.scenario import Detection

Pair = tuple[str, str]  # (host, peer): host's glusterd's view of peer
Schedule = Callable[[float, Callable[[], None]], None]  # (delay, action)


class ServerQuorum:
    def __init__(self, cluster: Cluster, world: World, rng: np.random.Generator,
                 detection: Detection, rec: Recorder, schedule: Schedule,
                 clock: Callable[[], float], reconnect_delay_s: float,
                 reconnect_timer_s: float, syn_linear_timeouts: int) -> None:
        self.cluster = cluster
        self.world = world
        self.rng = rng  # the client views' stream: the draws stay in the order they were
        self.detection = detection
        self.rec = rec
        self.schedule = schedule
        self.clock = clock
        self.reconnect_delay_s = reconnect_delay_s
        self.reconnect_timer_s = reconnect_timer_s
        self.syn_linear_timeouts = syn_linear_timeouts
        # which peers each pool host is connected to, and the pending keepalive timers
        self.pool = tuple(h for h in cluster.hosts
                          if any(b.host == h for v in cluster.volumes.values() for b in v.bricks))
        self.peer_up: dict[Pair, bool] = {
            (h, p): True for h in self.pool for p in self.pool if p != h}
        self._peer_token: dict[Pair, int] = dict.fromkeys(self.peer_up, 0)
        self._peer_pending: dict[Pair, bool] = dict.fromkeys(self.peer_up, False)
        # when keepalive dropped each peer connection (its reconnect timer runs from there;
        # none for a glusterd that started since), and the ones waiting for their SYN
        self._peer_down_at: dict[Pair, float] = {}
        self._peer_connecting: set[Pair] = set()
        # when each peer went silent, and how its reconnect goes after keepalive dropped it
        # (unanswered: on SYNs; when the neighbour entry failed, if ARP went unanswered)
        self._peer_cut_at: dict[Pair, float] = {}
        self._peer_how: dict[Pair, tuple[bool, float | None]] = {}
        self.peer_losses: list[dict[str, Any]] = []  # each keepalive drop, for the meta
        # where each peer connection's keepalive chain runs from, when its phase is known
        # (detection phase known): the scenario's peer_anchor_s, moved when it connects
        # again or a cut shifts its probes (_peer_rephase)
        self._peer_anchor: dict[Pair, float] = {}
        self._peer_fresh: set[Pair] = set()  # of a glusterd that restarts
        if detection.phase == "known" and detection.peer_anchor_s is not None:
            self._peer_anchor = dict.fromkeys(self.peer_up, detection.peer_anchor_s)
        self.sq_lost: dict[str, bool] = {h: False for h in self.pool}

    def meta(self) -> dict[str, Any]:
        """The run's ``meta`` about glusterd's peers: their keepalive phase (known from
        ``peer_anchor_s``, a lab, or drawn per cut) and each connection keepalive dropped."""
        return {"peer_phase": "known" if self._peer_anchor else "unknown",
                "peer_anchor_s": self.detection.peer_anchor_s if self._peer_anchor else None,
                "peers": [dict(x) for x in self.peer_losses]}
    def _sq_bricks(self, host: str) -> list[BrickModel]:
        return [v.brick(host) for v in self.cluster.volumes.values()
                if v.spec.options.server_quorum_type == "server" and host in v.hosts]

    def _sq_met(self, host: str) -> bool:
        active = 1 + sum(1 for p in self.pool if p != host and self.peer_up[(host, p)])
        return all(server_quorum_met(active, len(self.pool),
                                     self.cluster.volumes[b.volume].spec.options
                                     .server_quorum_ratio_pct)
                   for b in self._sq_bricks(host))

    def _reconcile_peers(self, t: float, host: str) -> None:
        """glusterd's peer connections from ``host``: a peer it can reach is connected at
        once; a cut one is noticed by TCP keepalive (a timer per connection). With the
        reconnect timer on (``reconnect_timer_s`` > 0), a connection keepalive dropped
        comes back as a client's does after an unanswered loss: on the first SYN
        retransmission after the peer answers (rpc-clnt's 3 s timer, the same code), plus
        ``reconnect_delay_s``; a glusterd that started since connects at once."""
        if not self.world.powered(host):  # its glusterd is gone: a new one starts afresh
            for p in self.pool:
                self._peer_down_at.pop((host, p), None)
                self._peer_connecting.discard((host, p))
                self._peer_fresh.add((host, p))
        for p in self.pool:
            if p == host:
                continue
            pair = (host, p)
            if self.world.link(host, p):
                if pair in self._peer_connecting:
                    continue  # its SYN is on the way
                down = self._peer_down_at.get(pair)
                if not self.peer_up[pair] and down is not None and self.reconnect_timer_s > 0:
                    how = self._peer_how.get(pair, (True, None))
                    at = back_at_s(t, down, how[0], self.reconnect_timer_s,
                                   self.reconnect_delay_s, self.syn_linear_timeouts, how[1])
                    if at > t:
                        self._peer_token[pair] += 1
                        self._peer_connecting.add(pair)
                        self.schedule(at - t, self._peer_back(pair, self._peer_token[pair]))
                        continue
                self._peer_token[pair] += 1
                if pair in self._peer_fresh:  # a glusterd that started since: connects now
                    self._peer_fresh.discard(pair)
                    self._peer_rephase(pair, t, connected=True)
                elif self._peer_pending[pair]:  # a cut keepalive did not notice ends
                    self._peer_rephase(pair, t, connected=False)
                self._peer_pending[pair] = False
                if not self.peer_up[pair]:
                    self._peer_came_back(pair, t)
                    self._peer_rephase(pair, t, connected=True)
                self.peer_up[pair] = True
                self._peer_down_at.pop(pair, None)
            elif pair in self._peer_connecting:  # cut again before its SYN got through
                self._peer_connecting.discard(pair)
                self._peer_token[pair] += 1
            elif self.peer_up[pair] and not self._peer_pending[pair]:
                self._peer_cut_at[pair] = t
                self._peer_pending[pair] = True
                self._peer_token[pair] += 1
                token = self._peer_token[pair]
                at = peer_loss_detected_s(t, self._peer_last_heard(pair, t))
                self.schedule(at - t, self._peer_timer(pair, token))

    def _peer_last_heard(self, pair: Pair, t: float) -> float:
        """When glusterd's connection ``pair`` last heard its peer before a cut at ``t``:
        from its keepalive chain when the phase is known (the lab: its peer connections
        last carried a command at a fixed time before the run, measured by the
        server-quorum experiment), else drawn over one keepalive period (a production
        cluster's cluster-wide commands, e.g. the management's volume status queries, come
        at times the model does not know)."""
        anchor = self._peer_anchor.get(pair)
        if anchor is None:
            return draw_last_keepalive_s(self.rng, t)
        return known_last_keepalive_s(t, anchor)

    def _peer_rephase(self, pair: Pair, t: float, connected: bool) -> None:
        """A known keepalive chain after ``pair`` is reachable again at ``t``: a connection
        made now (``connected``: a glusterd that started, a reconnect after keepalive
        dropped it) runs from now, both directions (the peers' handshake crosses both);
        one a cut held (keepalive had not given up) runs from its first probe the peer
        answered: none was due in the cut, the chain as it was; else the probes that went
        unanswered were retried every keepalive-interval, the first at or after ``t``
        answered."""
        if pair not in self._peer_anchor:
            return
        if connected:
            self._peer_anchor[pair] = t
            self._peer_anchor[(pair[1], pair[0])] = t
            return
        cut = self._peer_cut_at.get(pair, t)
        probe = known_last_keepalive_s(cut, self._peer_anchor[pair]) + GLUSTERD_KEEPALIVE_TIME_S
        if probe < t:
            retries = math.ceil((t - probe) / GLUSTERD_KEEPALIVE_INTERVAL_S - 1e-12)
            self._peer_anchor[pair] = probe + retries * GLUSTERD_KEEPALIVE_INTERVAL_S

    def _peer_timer(self, pair: Pair, token: int) -> Callable[[], None]:
        return lambda: self._peer_lost(pair, token)

    def _peer_lost(self, pair: Pair, token: int) -> None:
        if self._peer_token[pair] != token or not self._peer_pending[pair]:
            return
        self._peer_pending[pair] = False
        self.peer_up[pair] = False
        self._peer_down_at[pair] = self.clock()
        host, peer = pair
        cut = self._peer_cut_at.get(pair, self.clock())
        self._peer_how[pair] = (
            # nobody answers its connect (a hung peer's kernel does; its own link down:
            # no route): then on the SYN's retransmissions, else on the timer's grid
            self.world.nic_up(host, "storage") and not self.world.answers(host, peer),
            None if self.world.arp_answers(host, peer)
            else self.world.neighbours.failed_at_s(host, cut))
        if self.world.powered(pair[0]):  # (a powered-off host's glusterd noticed nothing)
            self.peer_losses.append({"host": pair[0], "peer": pair[1],
                                     "down_s": self.clock(), "back_s": None})
        self._judge(pair[0])

    def _peer_came_back(self, pair: Pair, t: float) -> None:
        for loss in reversed(self.peer_losses):
            if (loss["host"], loss["peer"]) == pair and loss["back_s"] is None:
                loss["back_s"] = t
                break

    def _peer_back(self, pair: Pair, token: int) -> Callable[[], None]:
        def connected() -> None:
            if self._peer_token[pair] != token or pair not in self._peer_connecting:
                return
            self._peer_connecting.discard(pair)
            if self.world.link(*pair):
                self._peer_connected(pair)
                # the peer's glusterd, reached, drops its own connect in progress to us
                # and connects again at once (the lab's trace of a 45 s partition: host2's
                # two SYN_SENT peer sockets closed 1.4 s after host1's first connect got
                # through, and host2's quorum came 0.25-1.8 s after the first crossing)
                back = (pair[1], pair[0])
                if back in self._peer_connecting:
                    self._peer_connecting.discard(back)
                    self._peer_token[back] += 1
                    self._peer_connected(back)
        return connected

    def _peer_connected(self, pair: Pair) -> None:
        self._peer_came_back(pair, self.clock())
        self._peer_rephase(pair, self.clock(), connected=True)
        self.peer_up[pair] = True
        self._peer_down_at.pop(pair, None)
        self._judge(pair[0])

    def _judge(self, host: str) -> bool:
        """Kill or restart ``host``'s bricks as its server quorum says; True if it changed."""
        bricks = self._sq_bricks(host)
        if not bricks:
            return False
        met = not self.world.running(host) or self._sq_met(host)
        if met and self.sq_lost[host]:
            self.sq_lost[host] = False
            for b in bricks:
                self.world.sq_killed.discard(b.key)
            if self.world.running(host):
                self.rec.event(self.clock(), "server_quorum_regained", host,
                               "bricks restarted")
            return True
        if not met and not self.sq_lost[host]:
            self.sq_lost[host] = True
            for b in bricks:
                self.world.sq_killed.add(b.key)
            self.rec.event(self.clock(), "server_quorum_lost", host,
                           "glusterd stopped local bricks: "
                           + ", ".join(b.volume for b in bricks))
            return True
        return False

    def reconcile(self, t: float) -> bool:
        """Each pool host's peer connections, then its quorum: True if bricks were killed
        or restarted."""
        changed = False
        for h in self.pool:
            if not self._sq_bricks(h):
                continue
            self._reconcile_peers(t, h)
            changed |= self._judge(h)
        return changed
