"""The self-heal daemons' own connections to the bricks, and the CHILD_UP events that wake
them (glusterfs ``xlators/cluster/afr/src``, release 10 = main here).

Each brick host runs one self-heal daemon (glustershd), a Gluster client of its own with a
connection to every brick of the volume. Its AFR translator wakes the index healers of its
local bricks on every CHILD_UP (``afr_notify``: ``__afr_handle_child_up_event`` sets
``call_psh``, then ``afr_selfheal_childup`` -> ``afr_shd_index_healer_spawn`` for every child
that is up; ``afr-self-heald.c``), and once when it first hears from all its children (a
daemon that just started). The index healer of a brick heals the entries indexed on it:
the writes another brick missed are indexed on the bricks that took them. Otherwise it
crawls every ``cluster.heal-timeout``.

So heal starts by itself only when a daemon on a host with a good brick sees a brick
connection come back (CHILD_DOWN, then CHILD_UP). Its connections are idle: the ping timer
runs only while requests are pending (``rpc_clnt_start_ping``), so a silent loss is noticed by
TCP keepalive alone (client defaults ``client.keepalive-time`` 20 s, ``-interval`` 2 s,
``-count`` 9: :mod:`hcisim.model.keepalive`, its constants and timers): 18-38 s after the
cut, by the phase of the keepalive probes. What that means per fault:

- refused (brick process killed, disk failed, brick stopped, glusterd's server-quorum kill):
  RST, down at once; up when the brick serves again: wakes;
- power loss, NIC down, partition (nobody answers): down when keepalive gives up; a repair
  before that leaves the connection as it was (no wake), unless the brick's host rebooted
  or the brick's side reset the connection meanwhile (its own keepalive and
  TCP_USER_TIMEOUT, :func:`hcisim.model.keepalive.server_closes_s`): then the next packet
  after its return gets a RST, and the reconnect wakes;
- node hang, brick hang (SIGSTOP: the kernel still answers keepalive probes): the connection
  never drops, so nothing wakes the daemon (the lab's finding, lab-notes.md);
- a daemon whose own host powers up again starts fresh and wakes at once: its own brick's
  index holds entries of what that brick missed too (measured: it heals a share of them,
  :meth:`hcisim.model.selfheal.SelfHeal.healers`), unless the brick was replaced empty.
  Its own brick starts with it and registers its port later than the daemon's first
  connect asks glusterd's portmap: refused, it connects on its reconnect timer (the lab's
  power-ons: 3.01-3.06 s after the daemon started in 37 of 45, the other bricks within
  0.04 s; in 8 of 45 the brick was first and it connected in 0.02 s).

A reconnect comes at the daemon's next reconnect try (``reconnect_timer_s`` from its
disconnect, :func:`hcisim.model.pingtimer.reconnect_at_s`) plus ``reconnect_delay_s``, as
for the mounts; after a keepalive loss (nobody answered) its reconnect timer's first try
sits in SYN_SENT, and it connects at the first SYN retransmission after the brick's host
answers (:func:`hcisim.model.pingtimer.syn_reconnect_at_s`), as the mounts do after an
unanswered loss. Every drop and CHILD_UP is an event (``shd_brick_down`` at the moment the
daemon saw it, ``shd_brick_up``), as the lab reads them from glustershd.log.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from hcisim.model.elaborate import BrickModel, Cluster
from hcisim.model.keepalive import (
    CLIENT_KEEPALIVE_COUNT,
    CLIENT_KEEPALIVE_INTERVAL_S,
    CLIENT_KEEPALIVE_TIME_S,
    SERVER_KEEPALIVE_TIME_S,
    draw_last_keepalive_s,
    next_probe_s,
    peer_loss_detected_s,
    server_closes_s,
)
from hcisim.model.pingtimer import back_at_s
from hcisim.model.world import World
from hcisim.observations import Recorder

ShdKey = tuple[str, str, str]  # daemon host, volume, brick host
Link = Literal["up", "down", "dead"]  # dead: the daemon's own host is off


@dataclass
class _Silent:
    """A connection whose peer stopped answering: keepalive has not given up yet."""

    last_ack_s: float  # the last answered keepalive probe
    drop_s: float  # when keepalive gives up (if nothing answers before)
    rebooted: bool  # the brick's host lost power meanwhile (its TCP state is gone)
    token: int
    own_route: bool  # the daemon's own link stayed up (else its connects fail at once)
    neighbour_failed_s: float | None  # its host's ARP entry for the brick's host failed
    server_closes_s: float = math.inf  # the brick's side resets it (its keepalive)


class ShdConnections:
    """Per (daemon host, volume, brick host): the daemon's connection, and when it last saw
    a CHILD_UP per (volume, daemon host)."""

    def __init__(self, cluster: Cluster, world: World, rng: np.random.Generator,
                 schedule: Callable[[float, Callable[[], None]], None],
                 reconnect_delay_s: float, reconnect_timer_s: float = 0.0,
                 syn_linear_timeouts: int = 4, rec: Recorder | None = None) -> None:
        self.cluster = cluster
        self.world = world
        self.rng = rng
        self.schedule = schedule
        self.reconnect_delay_s = reconnect_delay_s
        self.reconnect_timer_s = reconnect_timer_s
        self.syn_linear_timeouts = syn_linear_timeouts
        self.rec = rec
        self.down_at: dict[ShdKey, float] = {}  # when each connection last dropped
        self.link: dict[ShdKey, Link] = {}
        self._token: dict[ShdKey, int] = {}
        for v in cluster.volumes.values():
            for s in v.bricks:
                for b in v.bricks:
                    self.link[(s.host, v.name, b.host)] = "up"
                    self._token[(s.host, v.name, b.host)] = 0
        self._silent: dict[ShdKey, _Silent] = {}
        # up, but the brick's host rebooted meanwhile: the next thing sent gets a RST (the
        # token of the keepalive probe that will find it)
        self._stale: dict[ShdKey, int] = {}
        self._connecting: set[ShdKey] = set()
        # dropped with nobody answering (keepalive gave up): the reconnect rides the SYNs
        self.unanswered: set[ShdKey] = set()
        self.neighbour_failed: dict[ShdKey, float] = {}  # ... and bound to ARP from here
        self.childup: dict[tuple[str, str], float] = {}  # (volume, daemon host) -> last
        self.woken: list[str] = []  # volumes whose daemons saw a CHILD_UP at this instant
        # bumped whenever a connection's link state or reset mark changes, i.e. whenever
        # :meth:`usable` may answer otherwise (the heal's healer counts are kept until then)
        self.version = 0

    # --- the physical path ----------------------------------------------------------------
    def _tcp_alive(self, s: str, b: BrickModel) -> bool:
        """Something on the brick's host answers the daemon's TCP (keepalive probes): its
        kernel runs (powered: a hang or a stopped brick process still answers) and the
        storage path passes."""
        w = self.world
        if not w.powered(b.host):
            return False
        if s == b.host:
            return True
        return (w.nic_up(s, "storage") and w.nic_up(b.host, "storage")
                and w.cuts[(frozenset((s, b.host)), "storage")] == 0)

    # --- changes ---------------------------------------------------------------------------
    def reconcile(self, t: float) -> None:
        """Bring every daemon connection in line with the world (call at every change of
        the world; timers do the rest)."""
        for key in self.link:
            self._reconcile_one(t, key)

    def _reconcile_one(self, t: float, key: ShdKey) -> None:
        s, volume, host = key
        w = self.world
        b = self.cluster.volumes[volume].brick(host)
        state = self.link[key]
        if not w.powered(s):
            if state != "dead":
                self._drop(key)
                self.link[key] = "dead"
                self.version += 1
            return
        if w.hung[s]:
            return  # the daemon is frozen: nothing it notices until it runs again
        if state == "dead":  # the daemon started again: it connects to what it reaches
            self.link[key] = "down"
            self.version += 1
            self.down_at.pop(key, None)  # a new process: no reconnect timer yet
            if s == host and self.reconnect_timer_s > 0:
                # its own brick starts with it and registers its port after the daemon's
                # first connect asked glusterd's portmap: refused ("failed to get the port
                # number for remote subvolume"), the next try on its reconnect timer
                self.down_at[key] = t
                self._event(t, key, up=False)
            if w.reachable(s, b):
                self._connect(t, key)
            return
        silent = self._silent.get(key)
        if silent is not None and self._tcp_alive(s, b):
            # the brick's host answers TCP again: what happened to the connection meanwhile
            self._silent.pop(key)
            if t >= silent.drop_s - 1e-9:
                state = self.link[key] = "down"  # keepalive had given up: CHILD_DOWN
                self.version += 1
                self.down_at[key] = silent.drop_s  # its reconnect timer ran from there,
                # each try held in SYN_SENT while nobody answered, bound to ARP once the
                # neighbour entry failed; with its own link down, no route: the timer's grid
                if silent.own_route:
                    self.unanswered.add(key)
                if silent.neighbour_failed_s is not None:
                    self.neighbour_failed[key] = silent.neighbour_failed_s
                self._event(silent.drop_s, key, up=False)
            elif silent.rebooted or t >= silent.server_closes_s - 1e-9:
                # back with no TCP state before keepalive gave up (the host rebooted, or
                # the brick's side closed it meanwhile): the next probe gets a RST
                token = self._stale[key] = silent.token
                self.version += 1
                at = next_probe_s(t, silent.last_ack_s)
                self.schedule(at - t, lambda: self._reset(key, token, at))
            # else answered again in time: the connection never dropped, no event
        if w.reachable(s, b):
            if state == "down" and key not in self._connecting:
                self._connect(t, key)
            return
        if state != "up":
            return
        if w.refused(s, b):
            self._drop(key)
            self.link[key] = "down"  # RST: CHILD_DOWN at once
            self.version += 1
            self.down_at[key] = t
            self._event(t, key, up=False)
        elif self._tcp_alive(s, b):
            pass  # hung: keepalive is answered, the connection stays
        elif key in self._silent:
            self._silent[key].rebooted |= not w.powered(host)
        else:
            # keepalive gives up at drop_s; nobody sees that before the brick's host
            # answers again (the connection is idle), so it is judged then: no timer
            self._token[key] += 1
            last = draw_last_keepalive_s(self.rng, t, CLIENT_KEEPALIVE_TIME_S)
            drop = peer_loss_detected_s(t, last, CLIENT_KEEPALIVE_TIME_S,
                                        CLIENT_KEEPALIVE_INTERVAL_S, CLIENT_KEEPALIVE_COUNT)
            server_last = draw_last_keepalive_s(self.rng, t, SERVER_KEEPALIVE_TIME_S)
            user_timeout = self.cluster.volumes[volume].spec.options.tcp_user_timeout_s
            self._silent[key] = _Silent(
                last, drop, not w.powered(host), self._token[key], w.nic_up(s, "storage"),
                None if w.arp_answers(s, host) else w.neighbours.failed_at_s(s, t),
                server_closes_s(t, server_last, user_timeout))

    def _drop(self, key: ShdKey) -> None:
        """Forget pending timers of ``key``."""
        self._token[key] += 1
        self._silent.pop(key, None)
        if self._stale.pop(key, None) is not None:
            self.version += 1
        self._connecting.discard(key)
        self.unanswered.discard(key)
        self.neighbour_failed.pop(key, None)

    def _reset(self, key: ShdKey, token: int, t: float) -> None:
        """A keepalive probe got a RST (at ``t``): CHILD_DOWN; reconnect if reachable."""
        if self._token[key] != token or self.link[key] != "up":
            return
        self._silent.pop(key, None)
        self._stale.pop(key, None)
        self.link[key] = "down"
        self.version += 1
        self.down_at[key] = t
        self._event(t, key, up=False)
        s, volume, host = key
        if self.world.reachable(s, self.cluster.volumes[volume].brick(host)):
            self._connect(t, key)

    def usable(self, key: ShdKey) -> bool:
        """The daemon can heal over this connection: up, and not to a host that rebooted
        since (its TCP state is gone; nothing has been sent to find out yet)."""
        return self.link[key] == "up" and key not in self._stale

    def send(self, t: float, key: ShdKey) -> None:
        """The daemon sends on ``key`` at ``t`` (the operator's ``gluster volume heal``
        sets it sweeping): a connection to a host that rebooted meanwhile gets its RST now,
        not at the next keepalive probe, and the reconnect starts from here."""
        token = self._stale.get(key)
        if token is not None:
            self._reset(key, token, t)

    def _connect(self, t: float, key: ShdKey) -> None:
        at = back_at_s(t, self.down_at.get(key), key in self.unanswered,
                       self.reconnect_timer_s, self.reconnect_delay_s, self.syn_linear_timeouts,
                       self.neighbour_failed.get(key))
        if at <= t:
            self._up(t, key)
            return
        self._token[key] += 1
        token = self._token[key]
        self._connecting.add(key)
        self.schedule(at - t, lambda: self._connected(key, token, at))

    def _connected(self, key: ShdKey, token: int, t: float) -> None:
        if self._token[key] != token:
            return
        self._connecting.discard(key)
        s, volume, host = key
        if self.world.running(s) and self.world.reachable(
                s, self.cluster.volumes[volume].brick(host)):
            self._up(t, key)

    def _up(self, t: float, key: ShdKey) -> None:
        """CHILD_UP in the daemon on ``key[0]``: it wakes its index healers."""
        self.link[key] = "up"
        self.version += 1
        self.down_at.pop(key, None)
        self.unanswered.discard(key)
        self.neighbour_failed.pop(key, None)
        s, volume, _ = key
        self.childup[(volume, s)] = t
        self.woken.append(volume)
        self._event(t, key, up=True)

    def _event(self, t: float, key: ShdKey, up: bool) -> None:
        if self.rec is not None:
            s, volume, host = key
            self.rec.event(t, "shd_brick_up" if up else "shd_brick_down", f"{volume}/{host}",
                           f"glustershd on {s}")

    def woke_at(self, volume: str, t: float, exclude: str) -> bool:
        """Whether a daemon on another host than ``exclude`` saw a CHILD_UP of ``volume`` at
        ``t``."""
        return any(abs(at - t) < 1e-9 for (v, s), at in self.childup.items()
                   if v == volume and s != exclude)

    def saw_childup(self, volume: str, daemon: str, t: float) -> bool:
        """Whether the daemon on ``daemon`` saw a CHILD_UP of ``volume`` at ``t``."""
        at = self.childup.get((volume, daemon))
        return at is not None and abs(at - t) < 1e-9
