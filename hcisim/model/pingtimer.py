"""When a Gluster client notices a silently lost brick: the ping timer of rpc-clnt-ping.c.

Read from glusterfs ``rpc/rpc-lib/src/rpc-clnt-ping.c`` and ``rpc-clnt.c`` (release 10 and
main are the same here); the line references are to those files.

- A connection pings its brick only while requests are pending: ``rpc_clnt_start_ping``
  returns without pinging (and the chain stops) when no frame is saved; the next request
  restarts it at once (``rpc_clnt_check_and_start_ping`` after every submit).
- Sending a ping arms ``rpc_clnt_ping_timer_expired`` after T (network.ping-timeout).
  The reply cancels it and arms ``rpc_clnt_start_ping`` after T: so while I/O is pending,
  pings go out every T + (ping round trip), a chain anchored where it last (re)started.
- When the expiry timer fires it compares whole seconds (``gf_time()``):
  ``current - last_received < T || current - last_sent < T`` re-arms it for another T
  (activity seen); otherwise the transport is disconnected and the brick marked down.
  ``last_sent`` moves with every request written to the socket, pings included
  (``RPC_TRANSPORT_MSG_SENT``), ``last_received`` with every reply.

So after a silent loss at ``f`` with a closed-loop writer (its request goes out at ``f`` and
never returns), the first ping sent after ``f`` at ``p`` is never answered and the brick is
marked down at ``p + T``: the stall is ``T + (p - f)``, between T and 2T, fixed by the phase
of the ping chain. A client that keeps *sending* new requests to the dead brick (open-loop
arrivals, other processes, lookups) moves ``last_sent`` and pushes detection out by whole
periods of T: the tail beyond 2T.

glusterd's own peer connections do not ping (``option ping-timeout 0`` in glusterd.vol); they
rely on TCP keepalive (keepalive-time 10 s, interval 2 s, count 9 from glusterd.vol and
socket.h: :mod:`hcisim.model.keepalive`), so server quorum notices a cut peer 18-28 s after
the cut whatever network.ping-timeout is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from hcisim.model.neighbour import resolve_fails_after_s, resolve_window_s


@dataclass(frozen=True)
class Detection:
    """When a client marks a brick down after a silent loss, and how that was derived."""

    at_s: float  # absolute time the brick is marked down
    stall_s: float  # at_s - fault time
    phase: str  # "known": from the ping chain's anchor; "unknown": drawn over the phase


def next_ping_s(fault_s: float, anchor_s: float, ping_timeout_s: float,
                ping_rtt_s: float = 0.0) -> float:
    """The first ping a busy connection sends at or after ``fault_s``.

    The chain started (first ping) at ``anchor_s``; each ping is sent T after the previous
    ping's reply, so pings go out at ``anchor + k (T + rtt)``.
    """
    if fault_s <= anchor_s:
        return anchor_s
    period = ping_timeout_s + ping_rtt_s
    k = math.ceil((fault_s - anchor_s) / period - 1e-12)
    return anchor_s + k * period


def first_lost_ping_s(fault_s: float, anchor_s: float, ping_timeout_s: float,
                      ping_rtt_s: float = 0.0, late_s: float = 0.0) -> float:
    """The first ping whose reply does not come back: sent at ``p`` with ``p + rtt > fault``
    (a ping in flight when the link goes is lost as well as the ones after it). ``late_s``:
    how late each ping-timer callback fires (``model.ping_timer_late_s``), added to every
    cycle of the chain."""
    period = ping_timeout_s + ping_rtt_s + late_s
    k = max(0, math.floor((fault_s - ping_rtt_s - anchor_s) / period) + 1)
    return anchor_s + k * period


def _whole(t: float) -> int:
    return math.floor(t + 1e-9)


def reconnect_at_s(back_s: float, disconnect_s: float | None, timer_s: float,
                   delay_s: float) -> float:
    """When a client uses a brick that is reachable again from ``back_s``.

    rpc-clnt.c: at a disconnect ``rpc_clnt_handle_disconnect`` arms ``rpc_clnt_reconnect``
    ``timer_s`` later (3 s), which tries to connect and re-arms itself every 3 s while not
    connected. So a client refused at every try (the brick's process gone: RST) tries at
    ``disconnect_s + k timer_s`` (k >= 1), and the first try at or after ``back_s``
    connects, ``delay_s`` later (the portmap query, the handshake): the lab's brick
    crashes, 2.15-2.39 s after a repair 4 s after the crash. Not after a silent loss: a
    try to an unreachable host stays in progress on TCP's SYN backoff, and the lab's
    reconnects there do not follow this grid; callers pass no disconnect then. Without a
    timer (0), or no disconnect: ``delay_s`` after ``back_s``."""
    if timer_s <= 0 or disconnect_s is None:
        return back_s + delay_s
    k = max(1, math.ceil((back_s - disconnect_s) / timer_s - 1e-9))
    return disconnect_s + k * timer_s + delay_s


# Linux's SYN retransmission (tcp_timer.c): the first RTO is TCP_TIMEOUT_INIT (1 s); the
# first ``net.ipv4.tcp_syn_linear_timeouts`` + 1 RTOs stay at 1 s (Linux >= 6.5, default 4;
# 0 before: 1, 2, 4, ...), then they double. A connect in SYN_SENT is retransmitted
# ``tcp_syn_retries`` (6) + ``tcp_syn_linear_timeouts`` times (``tcp_write_timeout`` adds
# the linear ones), then fails one more RTO later (ETIMEDOUT). Each timer fires late, the
# more the longer it is (the timer wheel rounds a long expiry up to its level's
# granularity): in the lab's packet traces (Linux 6.18, medians of 90, 18, 16, 10, 6 and 5
# gaps) 1.022, 2.02, 4.22, 8.19, 16.13 and 32.52 s.
SYN_INITIAL_RTO_S = 1.0
SYN_RETRIES = 6
SYN_TIMER_SLACK_S = 0.022
# (2.01-2.02 s measured for the 2 s RTO: the 1 s timers' 0.022, within 2 ms)
SYN_RTO_LATE_S = {1.0: SYN_TIMER_SLACK_S, 2.0: SYN_TIMER_SLACK_S, 4.0: 0.22, 8.0: 0.19,
                  16.0: 0.13, 32.0: 0.52}
SYN_LONG_RTO_LATE_S = 0.52  # a longer RTO (the last, 64 s, before the give-up): unmeasured


def _rto_late_s(rto_s: float) -> float:
    return SYN_RTO_LATE_S.get(rto_s, SYN_LONG_RTO_LATE_S)


def syn_schedule(linear_timeouts: int, retries: int = SYN_RETRIES,
                 initial_rto_s: float = SYN_INITIAL_RTO_S,
                 slack_s: float | None = None) -> tuple[tuple[float, ...], float]:
    """When one ``connect()`` to a host that does not answer sends its SYNs (offsets from
    the call, the first 0) and when it gives up (ETIMEDOUT). ``slack_s``: each timer this
    late (None: as measured per RTO, ``SYN_RTO_LATE_S``)."""
    sends, t = [0.0], 0.0
    retransmissions = retries + linear_timeouts
    for i in range(retransmissions + 1):
        rto = (initial_rto_s if i <= linear_timeouts
               else initial_rto_s * 2 ** (i - linear_timeouts))
        t += rto + (_rto_late_s(rto) if slack_s is None else slack_s)
        if i < retransmissions:
            sends.append(t)
    return tuple(sends), t


def _next_tick(disconnect_s: float, timer_s: float, after_s: float) -> int:
    """The reconnect timer's first tick (``k``: at ``disconnect + k timer``) at or after
    ``after_s``: rpc-clnt re-arms it every ``timer_s`` from the disconnect while not
    connected, and a tick that finds a connect in progress does nothing."""
    return math.ceil((after_s - disconnect_s) / timer_s - 1e-9)


def syn_reconnect_at_s(back_s: float, disconnect_s: float, timer_s: float, delay_s: float,
                       linear_timeouts: int, neighbour_failed_s: float | None = None) -> float:
    """When a client uses a brick whose host did not answer at all (link down, powered
    off, cut off) from the client's disconnect until ``back_s``.

    The reconnect timer's first try, ``timer_s`` after the disconnect, calls ``connect()``;
    the SYN goes nowhere and the kernel retransmits it (:func:`syn_schedule`). Later ticks
    of the timer find that socket still connecting and do nothing (socket.c
    ``socket_connect``: ``priv->sock >= 0``), so the client connects at the first
    retransmission after the host answers again, not on the timer's 3 s grid; only when a
    connect fails does the next tick start another. Seen in the lab's packet traces (one
    SYN_SENT socket held 7.1 s after a NIC loss; one held 68 s, SYNs 1, 1, 1, 1, 1, 2, 4,
    8, 16, 32 s apart, after a 60 s power loss) and in the campaign's NIC losses (the
    clients reconnected 7.1, 8.1 or 10.1 s after their disconnect, as this schedule says).

    ``neighbour_failed_s``: when the client host's neighbour (ARP) entry for the brick's
    host went FAILED (:mod:`hcisim.model.neighbour`; None: ARP is answered, as through a
    partition). A SYN due from then on is queued on an ARP resolution: it goes out when
    a broadcast probe is answered (the host is back), or the connect fails with
    EHOSTUNREACH ~3 s later and the timer's next tick tries again, each try bound to ARP:
    after a long outage the clients whose SYN gap spans the failure and the return
    connect on that late SYN (tens of seconds), the others within a few seconds.
    ``delay_s`` after the SYN: the portmap query and the handshake."""
    if timer_s <= 0:
        return back_s + delay_s
    sends, give_up = syn_schedule(linear_timeouts)
    failed = neighbour_failed_s if (neighbour_failed_s is not None
                                    and neighbour_failed_s < back_s) else None
    # ticks from one try to the next: an ARP-bound try (it starts on a tick and fails a
    # fixed number of ticks later), and a try that waits out its whole connect
    arp_step = _next_tick(0.0, timer_s, resolve_fails_after_s())
    try_step = _next_tick(0.0, timer_s, give_up)
    k = 1
    while True:
        start = disconnect_s + timer_s * k
        if failed is not None and start >= failed:
            # every try from here is bound to ARP: jump over the whole ones that fail
            # before ``back_s`` (an outage of hours is thousands), to the tick the loop
            # below would reach
            skip = math.floor((back_s - 1e-9 - start) / (arp_step * timer_s)) - 1
            if skip > 0:
                k += skip * arp_step
                start = disconnect_s + timer_s * k
        elif failed is None:
            # jump over the whole tries that end before ``back_s``
            skip = math.floor((back_s - 1e-9 - sends[-1] - start) / (try_step * timer_s)) - 1
            if skip > 0:
                k += skip * try_step
                start = disconnect_s + timer_s * k
        for offset in sends:
            syn = start + offset
            if syn >= back_s - 1e-9:
                return syn + delay_s
            if failed is not None and syn >= failed:
                probe = next((syn + p for p in resolve_window_s() if syn + p >= back_s - 1e-9),
                             None)
                if probe is not None:
                    return probe + delay_s  # a broadcast probe is answered: the SYN goes
                k = _next_tick(disconnect_s, timer_s, syn + resolve_fails_after_s())
                break
        else:
            k = _next_tick(disconnect_s, timer_s, start + give_up)


def back_at_s(back_s: float, disconnect_s: float | None, unanswered: bool, timer_s: float,
              delay_s: float, linear_timeouts: int,
              neighbour_failed_s: float | None = None) -> float:
    """When a connection is used again, by how it went down: on the SYN retransmissions
    after a loss nobody answered (:func:`syn_reconnect_at_s`, bound to ARP from
    ``neighbour_failed_s``), else on the reconnect timer's grid (:func:`reconnect_at_s`:
    refused tries, or the client's own link down: no route, every connect fails at once).
    One rule for the mounts, the self-heal daemons and glusterd's peers (the same
    rpc-clnt)."""
    if unanswered and disconnect_s is not None:
        return syn_reconnect_at_s(back_s, disconnect_s, timer_s, delay_s, linear_timeouts,
                                  neighbour_failed_s)
    return reconnect_at_s(back_s, disconnect_s, timer_s, delay_s)


def disconnects(expiry_s: float, last_received_s: float, last_sent_s: float,
                ping_timeout_s: float) -> bool:
    """``rpc_clnt_ping_timer_expired``: the transport is bailed out only if nothing was
    received AND nothing was sent for T, in whole seconds (``gf_time()``); otherwise the
    expiry timer is re-armed for another T."""
    now = _whole(expiry_s)
    return (now - _whole(last_received_s) >= ping_timeout_s
            and now - _whole(last_sent_s) >= ping_timeout_s)


def detect_from_ping(fault_s: float, lost_ping_s: float, ping_timeout_s: float,
                     later_sends_s: Iterable[float] = (), phase: str = "known") -> Detection:
    """Detection after a silent loss at ``fault_s`` whose first unanswered ping went out at
    ``lost_ping_s``: its expiry fires T later and re-arms (another T) while a request was
    sent within T of it (the writer's stuck one at ``fault_s``, the ping, ``later_sends_s``).
    The last reply came back at the fault."""
    t = ping_timeout_s
    sends = sorted(s for s in later_sends_s if s >= fault_s)
    expiry = lost_ping_s + t
    while True:
        sent = max([lost_ping_s, fault_s, *[s for s in sends if s <= expiry]])
        if disconnects(expiry, fault_s, sent, t):
            return Detection(at_s=expiry, stall_s=expiry - fault_s, phase=phase)
        expiry += t


def detect_known_phase(fault_s: float, anchor_s: float, ping_timeout_s: float,
                       ping_rtt_s: float = 0.0, later_sends_s: Iterable[float] = ()
                       ) -> Detection:
    """Detection time when the ping chain's anchor is known (connect or reconnect time).

    ``later_sends_s``: times after the fault at which the client wrote new requests to the
    dead brick (each one re-arms the expiry check if it is within T of it, in whole seconds).
    A ping already in flight at ``fault_s`` (sent within one round trip before it) is lost
    too; its expiry check sees the writer's request sent at ``fault_s``.
    """
    p = first_lost_ping_s(fault_s, anchor_s, ping_timeout_s, ping_rtt_s)
    return detect_from_ping(fault_s, p, ping_timeout_s, later_sends_s, "known")


def draw_lost_ping_s(rng: np.random.Generator, fault_s: float, ping_timeout_s: float,
                     late_s: float = 0.0) -> float:
    """The first unanswered ping when the chain's phase is not known: uniform over one
    period (T + ``late_s``) after the fault."""
    return fault_s + (ping_timeout_s + late_s) * float(rng.random())


def detect_unknown_phase(rng: np.random.Generator, fault_s: float, ping_timeout_s: float,
                         later_sends_s: Iterable[float] = ()) -> Detection:
    """Detection when the chain's phase is not known: uniform over one ping period, so the
    stall is uniform on [T, 2T) without later sends."""
    p = draw_lost_ping_s(rng, fault_s, ping_timeout_s)
    return detect_from_ping(fault_s, p, ping_timeout_s, later_sends_s, "unknown")
