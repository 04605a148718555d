"""Linux TCP keepalive on Gluster's idle connections: its constants and timers, in one place.

Where a connection has no requests pending, no ping timer runs (``rpc_clnt_start_ping``,
:mod:`hcisim.model.pingtimer`), so a peer that went silent is noticed only by the kernel's
keepalive (``tcp_keepalive_timer``): after ``time`` seconds without receiving it probes
every ``interval``, and gives up after ``count`` unanswered probes, or, with a
TCP_USER_TIMEOUT, at the first probe at least that long after the last receipt. Gluster
sets them on each socket from its transport's ``keepalive-*`` options (glusterfs
``rpc/rpc-transport/socket/src/socket.c``, ``__socket_keepalive``: TCP_KEEPIDLE,
TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT); the values below are the ones each kind of
connection gets, and their sources:

- a Gluster client's brick connections (the mounts, the self-heal daemons): the
  ``client.keepalive-*`` options' defaults (glusterd-volume-set.c; socket.h's
  ``GF_KEEPALIVE_TIME`` 20, ``GF_KEEPALIVE_INTERVAL`` 2, ``GF_KEEPALIVE_COUNT`` 9);
- the bricks' side of every connection: the virt group (``/var/lib/glusterd/groups/virt``,
  ``extras/group-virt.example`` in the source; oVirt's HCI deployment applies it):
  ``server.keepalive-time=10``, ``server.keepalive-interval=2``, ``server.keepalive-count=5``,
  with ``server.tcp-user-timeout=20`` (the volume's ``tcp_user_timeout_s``); the lab's brick
  volfiles say the same;
- glusterd's peer connections: ``/etc/glusterfs/glusterd.vol`` (``transport.socket.
  keepalive-time 10``, ``keepalive-interval 2``; ``ping-timeout 0``: no ping timer) and
  socket.h's count 9. So server quorum notices a cut peer 18-28 s after the cut, whatever
  network.ping-timeout is.
"""

from __future__ import annotations

import math

import numpy as np

from hcisim.scenario.cluster import (
    VIRT_SERVER_KEEPALIVE_COUNT,
    VIRT_SERVER_KEEPALIVE_INTERVAL_S,
    VIRT_SERVER_KEEPALIVE_TIME_S,
)

# a Gluster client's brick connections: client.keepalive-* defaults, socket.h's GF_KEEPALIVE_*
CLIENT_KEEPALIVE_TIME_S = 20.0
CLIENT_KEEPALIVE_INTERVAL_S = 2.0
CLIENT_KEEPALIVE_COUNT = 9

# the bricks' side of every connection: the virt group's server.keepalive-*
# (/var/lib/glusterd/groups/virt); its TCP_USER_TIMEOUT is the volume's
# server.tcp-user-timeout (tcp_user_timeout_s, the virt group's 20 s)
SERVER_KEEPALIVE_TIME_S = VIRT_SERVER_KEEPALIVE_TIME_S
SERVER_KEEPALIVE_INTERVAL_S = VIRT_SERVER_KEEPALIVE_INTERVAL_S
SERVER_KEEPALIVE_COUNT = VIRT_SERVER_KEEPALIVE_COUNT

# glusterd's peer connections: glusterd.vol's keepalive-time and -interval, socket.h's count
GLUSTERD_KEEPALIVE_TIME_S = 10.0
GLUSTERD_KEEPALIVE_INTERVAL_S = 2.0
GLUSTERD_KEEPALIVE_COUNT = 9


def draw_last_keepalive_s(rng: np.random.Generator, cut_s: float,
                          keepalive_time_s: float = GLUSTERD_KEEPALIVE_TIME_S) -> float:
    """When an idle glusterd peer connection last heard its peer before a cut: the last
    answered keepalive probe, one every ``keepalive_time`` at a phase nobody knows."""
    return cut_s - keepalive_time_s * float(rng.random())


def known_last_keepalive_s(cut_s: float, anchor_s: float,
                           keepalive_time_s: float = GLUSTERD_KEEPALIVE_TIME_S) -> float:
    """When an idle glusterd peer connection last heard its peer before a cut, its phase
    known: the connection was last busy at ``anchor_s`` (the last cluster-wide command, or
    when it connected), then answered a keepalive probe every ``keepalive_time`` (the
    kernel probes ``keepalive_time`` after the last receipt; the answer's round trip, well
    under a millisecond between the lab's namespaces, is left out). A cut before the
    anchor: the connection was busy up to the cut."""
    if cut_s <= anchor_s:
        return cut_s
    return anchor_s + keepalive_time_s * math.floor((cut_s - anchor_s) / keepalive_time_s
                                                    + 1e-12)


def peer_loss_detected_s(cut_s: float, last_received_s: float,
                         keepalive_time_s: float = GLUSTERD_KEEPALIVE_TIME_S,
                         interval_s: float = GLUSTERD_KEEPALIVE_INTERVAL_S,
                         count: int = GLUSTERD_KEEPALIVE_COUNT) -> float:
    """When glusterd's idle peer connection fails after a cut (Linux TCP keepalive).

    The kernel probes after ``keepalive_time`` without receiving, then every ``interval``;
    an answered probe restarts the idle wait. After ``count`` unanswered probes the
    connection is reset: at ``last_received + time + count * interval``, the last
    ``last_received`` being the last answer before the cut.
    """
    if last_received_s > cut_s:
        raise ValueError("last_received_s must be at or before the cut")
    return last_received_s + keepalive_time_s + count * interval_s


def server_closes_s(cut_s: float, last_received_s: float, user_timeout_s: float,
                    keepalive_time_s: float = SERVER_KEEPALIVE_TIME_S,
                    interval_s: float = SERVER_KEEPALIVE_INTERVAL_S,
                    count: int = SERVER_KEEPALIVE_COUNT) -> float:
    """When the brick's side closes an idle connection whose client went silent at
    ``cut_s`` (Linux ``tcp_keepalive_timer``): it probes after ``keepalive_time`` without
    receiving, then every ``interval``; with a TCP_USER_TIMEOUT it resets at the first
    check at least that long after the last receipt with a probe unanswered, without one
    after ``count`` unanswered probes. ``last_received_s``: its last answered probe before
    the cut. The lab's 15 s partitions (validation matrix, a trace of session 13): the
    bricks reset every self-heal daemon's idle connection meanwhile, the daemons' next
    keepalive probe after the repair got a RST, and they connected again 3 s later."""
    if last_received_s > cut_s:
        raise ValueError("last_received_s must be at or before the cut")
    if user_timeout_s > 0:
        later = max(1, math.ceil((user_timeout_s - keepalive_time_s) / interval_s - 1e-9))
    else:
        later = count
    return last_received_s + keepalive_time_s + later * interval_s


def next_probe_s(t: float, last_ack_s: float,
                 keepalive_time_s: float = CLIENT_KEEPALIVE_TIME_S,
                 interval_s: float = CLIENT_KEEPALIVE_INTERVAL_S) -> float:
    """The first keepalive probe at or after ``t`` of a connection last answered at
    ``last_ack_s``: probes go out at ``last_ack + time + k * interval``."""
    first = last_ack_s + keepalive_time_s
    if t <= first:
        return first
    return first + interval_s * math.ceil((t - first) / interval_s - 1e-12)
