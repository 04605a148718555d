"""When a host's kernel gives up on a peer that no longer answers ARP: its neighbour entry.

A connection's SYN to a powered-off host (or one whose link is down) goes out on the
neighbour (ARP) entry the host already has for the peer, as long as that entry is
REACHABLE, DELAY or PROBE: the SYN goes nowhere and TCP retransmits it. Once the entry is
FAILED, the next packet makes it INCOMPLETE and is queued while ARP asks for the peer
(``mcast_solicit`` broadcasts ``retrans_time`` apart); when nobody answers, the queued
packet's socket is told EHOSTUNREACH (``neigh_invalidate`` -> ``arp_error_report`` ->
``ip_link_failure``; ``tcp_v4_err`` ends a connect in SYN_SENT) and Gluster's connect
fails. So the client's reconnect after a long outage depends on this entry (read in
Linux ``net/core/neighbour.c``; the lab's packet trace, docs/calibration.md "the late
reconnect"):

- REACHABLE lasts ``reachable_time`` from the last confirmation (the peer's last reply: the
  VMs' I/O confirmed it until the loss), drawn by ``neigh_rand_reach_time`` uniformly in
  [base/2, 3 base/2) = 15-45 s, one value per interface, drawn again every 300 s;
- then DELAY (``delay_first_probe_time`` 5 s, the entry is in use: the clients' pings and
  SYNs), then PROBE (``ucast_solicit`` 3 unicast probes, 1 s apart), then FAILED;
- a packet sent while FAILED: 3 broadcast probes (``mcast_solicit``), 1 s apart, then the
  error, about 3 s later.

A partition made with iptables drops IP, not ARP: the entry stays REACHABLE, and the
connect rides its SYN retransmissions to the end. A hung host's kernel still answers.
"""

from __future__ import annotations

import math

import numpy as np

BASE_REACHABLE_S = 30.0  # net.ipv4.neigh.*.base_reachable_time_ms
DELAY_FIRST_PROBE_S = 5.0  # delay_first_probe_time
RETRANS_S = 1.0  # retrans_time_ms
UCAST_PROBES = 3  # ucast_solicit (PROBE state)
MCAST_PROBES = 3  # mcast_solicit (INCOMPLETE state)
REDRAW_S = 300.0  # neigh_periodic_work draws every parms' reachable_time again
# A connect's queued SYN is failed after the last broadcast probe's wait: a little after
# rpc-clnt's 3 s reconnect timer, started with that try, ticks again (in the lab's trace the
# ARP of a try ended ~0.04 s after that tick, which found the connect still in progress and
# did nothing), so the next try comes one timer period later.
RESOLVE_FAIL_LATE_S = 0.04


def failed_at_s(silent_s: float, reachable_s: float) -> float:
    """When the entry for a peer silent since ``silent_s`` (its last reply) goes FAILED."""
    return silent_s + reachable_s + DELAY_FIRST_PROBE_S + UCAST_PROBES * RETRANS_S


def resolve_window_s() -> tuple[float, ...]:
    """The broadcast probes of one resolution, from the packet that started it."""
    return tuple(k * RETRANS_S for k in range(MCAST_PROBES))


def resolve_fails_after_s() -> float:
    """From the queued packet to its socket's EHOSTUNREACH when nobody answers."""
    return MCAST_PROBES * RETRANS_S + RESOLVE_FAIL_LATE_S


class Neighbours:
    """The hosts' neighbour entries for their peers. ``failed_at_s`` answers for a loss;
    the reachable time is one draw per (host, 300 s epoch) from a random stream of its own,
    so the clients, the self-heal daemon and glusterd of a host (one network namespace, one
    entry per peer) agree, and the run's other draws stay as they were."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._reachable: dict[tuple[str, int], float] = {}
        self.failed: dict[tuple[str, float], float] = {}  # (host, silent since) -> failed

    def meta(self) -> list[dict[str, float | str]]:
        """Each entry that failed (the run's ``meta.detection.neighbours``)."""
        return [{"host": h, "silent_s": s, "failed_s": f}
                for (h, s), f in sorted(self.failed.items())]

    def reachable_s(self, host: str, t: float) -> float:
        key = (host, math.floor(t / REDRAW_S))
        r = self._reachable.get(key)
        if r is None:
            r = self._reachable[key] = BASE_REACHABLE_S * (0.5 + float(self.rng.random()))
        return r

    def failed_at_s(self, host: str, silent_s: float) -> float:
        """When ``host``'s entry for a peer that went silent at ``silent_s`` fails."""
        f = self.failed[(host, silent_s)] = failed_at_s(silent_s,
                                                        self.reachable_s(host, silent_s))
        return f
