"""Fit the profile's parameters to measurements through the model's own mechanisms.

Each parameter is fitted once over every trial of every case that informs it, never per
case: the same formula the model applies predicts each trial, and the parameters minimise
the squared residuals over all of them (with a tiny pull towards the base profile, so that
a parameter the trials cannot pin down keeps its old value instead of drifting).

- detection: stall = T + late + (p - f), ``p`` the first ping lost after the fault at ``f``
  on a chain started at the anchor with period T + rtt + late
  (:func:`hcisim.model.pingtimer.first_lost_ping_s`); fits ``detection_anchor_s`` and
  ``ping_timer_late_s``. Trials at fault offsets spread over one ping period pin both.
- reconnect: from the repair until the clients use the brick = the client's own wait for
  its connecting try (the 3 s reconnect timer from its disconnect after a refused connection,
  :func:`hcisim.model.pingtimer.reconnect_at_s`; the SYN's retransmissions after a host
  that did not answer, :func:`hcisim.model.pingtimer.syn_reconnect_at_s`) + one constant,
  ``reconnect_delay_s`` (the portmap query and the handshake), its value the median of
  measured - wait over the trials that say when the clients disconnected (a power-on's
  service start, not modelled, makes a few trials seconds late: the median keeps them from
  moving the constant). Without such trials: the constant alone, the mean delay.
- heal: from the first CHILD_UP of the brick in a self-heal daemon on another host to the
  end of heal = ``heal_noticed_s`` + the fluid drain of ``n`` shards of ``s`` bytes with
  ``min(k, shards left)`` threads at ``s / (s / r + e)`` each (k: ``shd-max-threads`` x the
  daemons healing side by side, the reading's ``healers``),
  capped by the heal share of the path (the drain :mod:`hcisim.model.selfheal` integrates);
  fits ``heal_noticed_s``, ``heal_entry_s`` (e) and ``heal_thread_mb_s`` (r). Per-entry and
  per-byte costs separate only with two shard sizes; with one, the base profile's rate is
  kept and the entry cost takes the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hcisim.model.pingtimer import reconnect_at_s, syn_reconnect_at_s

PULL = 1e-6  # weight of the pull towards the base profile (s^2 per unit^2)


@dataclass(frozen=True)
class Fitted:
    """Fitted values, the prediction for each trial (same order), and the RMS residual."""

    values: dict[str, float]
    predicted: tuple[float, ...]

    def rms(self, measured: Sequence[float]) -> float | None:
        if not measured:
            return None
        r = np.asarray(measured) - np.asarray(self.predicted)
        return float(np.sqrt(np.mean(r * r)))


# --- detection -------------------------------------------------------------------------------
@dataclass(frozen=True)
class StallTrial:
    fault_s: float
    ping_timeout_s: float
    rtt_s: float
    stall_s: float


def detection_stalls(trials: Sequence[StallTrial], anchor_s: float, late_s: float
                     ) -> np.ndarray:
    """The mechanism's stall per trial (no later sends: closed-loop writers)."""
    f = np.array([t.fault_s for t in trials])
    T = np.array([t.ping_timeout_s for t in trials])
    rtt = np.array([t.rtt_s for t in trials])
    period = T + rtt + late_s
    k = np.maximum(0.0, np.floor((f - rtt - anchor_s) / period) + 1.0)
    lost_ping = anchor_s + k * period
    stall: np.ndarray = lost_ping + T + late_s - f
    return stall


def fit_detection(trials: Sequence[StallTrial], base_anchor_s: float, base_late_s: float,
                  anchor_range: tuple[float, float] = (-5.0, 0.0),
                  late_range: tuple[float, float] = (0.0, 1.0)) -> Fitted:
    """Least squares over a grid (the stall is piecewise linear and jumps by a period in
    both parameters, so no gradient method): anchor 0.02 s, lateness 0.01 s steps."""
    y = np.array([t.stall_s for t in trials])
    best = (math.inf, base_anchor_s, base_late_s)
    for late in np.arange(late_range[0], late_range[1] + 1e-9, 0.01):
        for anchor in np.arange(anchor_range[0], anchor_range[1] + 1e-9, 0.02):
            r = y - detection_stalls(trials, float(anchor), float(late))
            cost = float(r @ r) + PULL * ((anchor - base_anchor_s) ** 2
                                          + (late - base_late_s) ** 2)
            if cost < best[0]:
                best = (cost, float(anchor), float(late))
    _, anchor, late = best
    anchor, late = round(anchor, 3), round(late, 3)
    pred = detection_stalls(trials, anchor, late)
    return Fitted({"detection_anchor_s": anchor, "ping_timer_late_s": late},
                  tuple(float(x) for x in pred))


# --- reconnect -------------------------------------------------------------------------------
RECONNECT_TIMER_S = 3.0  # rpc-clnt.c rpc_clnt_reconnect: ts.tv_sec = 3
UNANSWERED_KINDS = ("nic_loss", "node_power_loss", "partition")  # connects get no answer


def fit_reconnect(delays_s: Sequence[float]) -> Fitted:
    value = max(0.0, float(np.mean(delays_s))) if delays_s else 0.0
    value = round(value, 3)
    return Fitted({"reconnect_delay_s": value}, tuple(value for _ in delays_s))


@dataclass(frozen=True)
class ReconnectTrial:
    kind: str  # the fault: refused (brick crash) or unanswered (link, power) connects
    repair_s: float
    disconnect_s: float  # when the clients saw the brick go
    measured: float  # repair -> the clients use the brick


def reconnect_wait_s(t: ReconnectTrial, timer_s: float, linear_timeouts: int) -> float:
    """From the repair to the client's connecting try, by mechanism (no handshake)."""
    if t.kind in UNANSWERED_KINDS:
        at = syn_reconnect_at_s(t.repair_s, t.disconnect_s, timer_s, 0.0, linear_timeouts)
    else:
        at = reconnect_at_s(t.repair_s, t.disconnect_s, timer_s, 0.0)
    return at - t.repair_s


def fit_reconnect_mechanism(trials: Sequence[ReconnectTrial], linear_timeouts: int,
                            timer_s: float = RECONNECT_TIMER_S) -> Fitted:
    """``reconnect_delay_s`` over the client's own wait (module docstring); the timer is
    glusterfs's constant, not fitted."""
    waits = [reconnect_wait_s(t, timer_s, linear_timeouts) for t in trials]
    delay = max(0.0, float(np.median([t.measured - w for t, w in zip(trials, waits,
                                                                      strict=True)])))
    delay = round(delay, 3)
    return Fitted({"reconnect_delay_s": delay, "reconnect_timer_s": timer_s},
                  tuple(w + delay for w in waits))


# --- heal ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HealTrial:
    shards: int  # entries healed
    shard_bytes: float
    threads: int  # entries in flight at most: cluster.shd-max-threads x healing daemons
    cap_mb_s: float  # heal share of the slowest resource on the heal path
    duration_s: float  # from the daemons' first CHILD_UP of the brick to heal done


def drain_s(t: HealTrial, entry_s: float, thread_mb_s: float) -> float:
    """Seconds to heal ``t.shards`` shards: with m shards left, min(m, k) threads at the
    per-thread rate, capped at ``cap_mb_s`` (the model's fluid drain, summed per shard)."""
    mb = t.shard_bytes / 1e6
    per_thread = mb / (mb / thread_mb_s + entry_s)
    m = np.arange(1, max(1, t.shards) + 1)
    rate = np.minimum(np.minimum(m, t.threads) * per_thread, t.cap_mb_s)
    return float(np.sum(mb / rate)) if t.shards > 0 else 0.0


def _waves(t: HealTrial) -> float:
    """Σ 1 / min(m, k) over the shards left m = n..1: the drain in per-shard times."""
    m = np.arange(1, max(1, t.shards) + 1)
    return float(np.sum(1.0 / np.minimum(m, t.threads))) if t.shards > 0 else 0.0


def _at_rate(trials: Sequence[HealTrial], y: np.ndarray, rate: float,
             base: tuple[float, float, float]) -> tuple[float, float, float]:
    """(cost, noticed, entry) at a thread rate: below the heal cap the drain is
    ``waves × (s / r + e)``, linear in the delay and the entry cost, so these two come from
    linear least squares (clamped at 0); the cost is then taken with the cap."""
    w = np.array([_waves(t) for t in trials])
    rest = y - w * np.array([t.shard_bytes / 1e6 / rate for t in trials])
    a = np.column_stack([np.ones_like(w), w])
    (noticed, entry), *_ = np.linalg.lstsq(a, rest, rcond=None)
    entry = max(0.0, float(entry))
    noticed = max(0.0, float(np.mean(rest - w * entry)))
    res = y - noticed - np.array([drain_s(t, entry, rate) for t in trials])
    cost = float(res @ res) + PULL * ((entry - base[1]) ** 2
                                      + (math.log(rate) - math.log(base[2])) ** 2)
    return cost, noticed, entry


HEAL_RATE_GRID_MB_S = (0.5, 500.0)  # the coarse search's per-thread rates
HEAL_RATE_EDGE_MB_S = round(HEAL_RATE_GRID_MB_S[1] * 1.13, 3)  # the fine search's top


def fit_heal(trials: Sequence[HealTrial], base_noticed_s: float, base_entry_s: float,
             base_thread_mb_s: float) -> Fitted:
    """Thread rate on a coarse then a fine geometric grid; at each rate the delay before
    heal and the entry cost by least squares."""
    y = np.array([t.duration_s for t in trials])
    base = (base_noticed_s, base_entry_s, base_thread_mb_s)
    if len({t.shard_bytes for t in trials}) < 2:
        rate = base_thread_mb_s
    else:
        coarse = min(np.geomspace(*HEAL_RATE_GRID_MB_S, 60),
                     key=lambda r: _at_rate(trials, y, r, base))
        rate = float(min(np.geomspace(coarse / 1.13, coarse * 1.13, 61),
                         key=lambda r: _at_rate(trials, y, r, base)))
    _, noticed, entry = _at_rate(trials, y, rate, base)
    noticed, entry, rate = round(noticed, 3), round(entry, 3), round(rate, 3)
    pred = tuple(noticed + drain_s(t, entry, rate) for t in trials)
    return Fitted({"heal_noticed_s": noticed, "heal_entry_s": entry,
                   "heal_thread_mb_s": rate}, pred)
