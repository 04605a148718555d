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
  capped by the heal share of the path and by ``heal_core_mb_s`` per CPU core of the
  healing daemons' hosts (the drain :mod:`hcisim.model.selfheal` integrates); fits
  ``heal_noticed_s``, ``heal_entry_s`` (e), ``heal_thread_mb_s`` (r),
  ``heal_core_mb_s`` and ``heal_concurrency`` (the CPU rate per core falls with the
  entries in flight per core beyond one, :func:`hcisim.model.healrate.heal_cpu_mb_s`).
  Per-entry and per-byte costs separate only with two shard sizes (with one, the base
  profile's rate is kept and the entry cost takes the rest), the CPU cap and its
  concurrency cost from the threads only with two thread counts, and the rate from the
  delay before heal only with two backlogs.
- server quorum: the cut-off host's glusterd stops its bricks when TCP keepalive drops its
  peers, ``keepalive-time + count x interval`` after the last probe answered before the
  cut, the probes a keepalive-time apart from when the peer connections were last busy;
  fits that anchor, ``peer_anchor_s`` (:func:`fit_peer_anchor`), least squares.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hcisim.model.healrate import heal_cpu_mb_s, heal_thread_mb_s
from hcisim.model.keepalive import (
    GLUSTERD_KEEPALIVE_COUNT,
    GLUSTERD_KEEPALIVE_INTERVAL_S,
    GLUSTERD_KEEPALIVE_TIME_S,
)
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


# --- server quorum -----------------------------------------------------------------------------
PEER_ANCHOR_STEP_S = 0.001  # the grid of the peer keepalive chain's phase


def peer_stops_s(fault_s: np.ndarray, anchor_s: float) -> np.ndarray:
    """Seconds from a cut at each ``fault_s`` until the cut-off glusterd drops its peers
    (and stops its bricks), their keepalive chain running from ``anchor_s``
    (:func:`hcisim.model.keepalive.known_last_keepalive_s`, then
    :func:`~hcisim.model.keepalive.peer_loss_detected_s`)."""
    last = np.where(fault_s <= anchor_s, fault_s,
                    anchor_s + GLUSTERD_KEEPALIVE_TIME_S
                    * np.floor((fault_s - anchor_s) / GLUSTERD_KEEPALIVE_TIME_S + 1e-12))
    return np.asarray(last + GLUSTERD_KEEPALIVE_TIME_S
                      + GLUSTERD_KEEPALIVE_COUNT * GLUSTERD_KEEPALIVE_INTERVAL_S - fault_s,
                      dtype=float)


def fit_peer_anchor(faults_s: Sequence[float], stopped_s: Sequence[float],
                    base_anchor_s: float | None) -> Fitted:
    """The phase of glusterd's peer keepalive chain: the anchor in one keepalive period
    before t = 0 whose predicted stops (:func:`peer_stops_s`) are nearest the measured ones
    in least squares (faults after t = 0: every anchor a period apart predicts the same)."""
    f = np.asarray(faults_s, dtype=float)
    y = np.asarray(stopped_s, dtype=float)
    grid = np.arange(-GLUSTERD_KEEPALIVE_TIME_S, 0.0, PEER_ANCHOR_STEP_S)
    cost = np.array([float(((y - peer_stops_s(f, a)) ** 2).sum()) for a in grid])
    if base_anchor_s is not None:
        cost = cost + PULL * (grid - base_anchor_s) ** 2
    anchor = round(float(grid[int(np.argmin(cost))]), 3)
    return Fitted({"peer_anchor_s": anchor}, tuple(float(v) for v in peer_stops_s(f, anchor)))


# --- heal ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HealTrial:
    shards: int  # entries healed
    shard_bytes: float
    threads: int  # entries in flight at most: cluster.shd-max-threads x healing daemons
    cap_mb_s: float  # heal share of the slowest resource on the heal path
    duration_s: float  # from the daemons' first CHILD_UP of the brick to heal done
    daemons: int = 1  # self-heal daemons healing side by side
    cores: float = 1.0  # CPU cores of their hosts (what heal_core_mb_s caps per core)
    # when the second, third, ... daemon joined, seconds after the first one's CHILD_UP
    # (each daemon heals from its own CHILD_UP of the brick); empty: all from the start.
    # Applied from the drain's start, i.e. heal_noticed_s late (the model: from the
    # CHILD_UP): exact with no delay before heal (the shipped fit's is 0.168 s)
    joins_s: tuple[float, ...] = ()
    # cores all the hosts' heal shares (heal_cpu_pool_cores: the netns lab's machine); 0:
    # none, each daemon's host its own
    pool_cores: float = 0.0

    def cores_of(self, daemons: np.ndarray | float) -> np.ndarray | float:
        """The cores ``daemons`` of this trial's healing daemons heal on."""
        own = (self.cores if np.ndim(daemons) == 0 and daemons == self.daemons
               else self.cores / max(1, self.daemons) * daemons)
        return own if self.pool_cores <= 0 else np.minimum(own, self.pool_cores)


def _grid_shape(cores: np.ndarray, kappa: np.ndarray, entries: np.ndarray
                ) -> tuple[int, int, int]:
    return (len(cores), len(kappa), len(entries))


def _drains(t: HealTrial, entries: np.ndarray, thread_mb_s: float,
            core_mb_s: float | np.ndarray, concurrency: np.ndarray | None = None
            ) -> np.ndarray:
    """The drain (s) of ``t`` at each per-core CPU cap (a float: that axis dropped),
    concurrency cost (None: 0 only) and per-entry cost of ``entries``, as the array
    (caps, costs, entries): with m shards left and d daemons healing, n = min(m, d x
    threads per daemon) entries in flight at the per-thread rate, capped at ``cap_mb_s``
    and at what d daemons' cores heal with n in flight
    (:func:`hcisim.model.healrate.heal_cpu_mb_s`; a cap of 0: no CPU cap). The model's
    fluid drain (:mod:`hcisim.model.selfheal`): summed per shard, or, when the daemons
    joined one by one (``t.joins_s``), integrated from one change of the parallelism (a
    shard done below the threads, a daemon joining) to the next, as the model's
    milestones do."""
    scalar = np.ndim(core_mb_s) == 0
    cores = np.atleast_1d(np.asarray(core_mb_s, dtype=float))
    kappa = np.zeros(1) if concurrency is None else np.asarray(concurrency, dtype=float)
    shape = _grid_shape(cores, kappa, entries)
    if t.shards <= 0:
        out = np.zeros(shape)
    elif t.joins_s and t.daemons > 1:
        out = _joined_drains(t, entries, thread_mb_s, cores, kappa)
    else:
        mb = t.shard_bytes / 1e6
        per_thread = heal_thread_mb_s(t.shard_bytes, thread_mb_s, entries)  # entry
        n = np.minimum(np.arange(1, t.shards + 1), t.threads).astype(float)  # shard
        c = cores[:, None, None]
        cap = np.full((len(cores), len(kappa), len(n)), t.cap_mb_s)
        cpu = heal_cpu_mb_s(t.cores_of(t.daemons), c, n[None, None, :], kappa[None, :, None])
        cap = np.where(c > 0, np.minimum(cap, cpu), cap)
        flow = np.minimum(n[None, None, None, :] * per_thread[None, None, :, None],
                          cap[:, :, None, :])
        out = np.asarray((mb / flow).sum(axis=3), dtype=float)
    return out[0] if scalar else out


def _joined_drains(t: HealTrial, entries: np.ndarray, thread_mb_s: float,
                   cores: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """:func:`_drains` of a trial whose daemons joined at ``t.joins_s``: from one change
    of the parallelism to the next (the next join, or the shard count reaching the
    threads, then each shard done), every grid point at once."""
    shape = _grid_shape(cores, kappa, entries)
    mb = t.shard_bytes / 1e6
    per_daemon = t.threads / t.daemons
    per_thread = heal_thread_mb_s(t.shard_bytes, thread_mb_s, entries)[None, None, :]
    c, k = cores[:, None, None], kappa[None, :, None]
    joins = np.array([*sorted(t.joins_s)[:t.daemons - 1], math.inf])
    now, left = np.zeros(shape), np.full(shape, float(t.shards))
    d = np.ones(shape, dtype=int)
    while True:
        live = left > 1e-9
        if not live.any():
            return now
        threads = per_daemon * d
        big = left > threads
        up = np.ceil(left - 1e-9)
        target = np.maximum(np.where(big, threads, up - 1.0), 0.0)
        n = np.maximum(np.where(big, threads, up), 1.0)  # (1 where drained: no 0 / 0)
        cap = np.full(shape, t.cap_mb_s)
        cpu = heal_cpu_mb_s(t.cores_of(d), c, n, k)
        cap = np.where(c > 0, np.minimum(cap, cpu), cap)
        rate = np.minimum(n * per_thread, cap) / mb  # shards per second
        dt = (left - target) / rate
        to_join = np.maximum(joins[np.minimum(d - 1, len(joins) - 1)] - now, 0.0)
        join = live & (to_join < dt)
        now = np.where(live, now + np.where(join, to_join, dt), now)
        left = np.where(live, np.where(join, left - rate * to_join, target), left)
        d = np.where(join, d + 1, d)


def drain_s(t: HealTrial, entry_s: float, thread_mb_s: float, core_mb_s: float = 0.0,
            concurrency: float = 0.0) -> float:
    """Seconds to heal ``t.shards`` shards (:func:`_drains` at one entry and concurrency
    cost)."""
    return float(_drains(t, np.array([entry_s]), thread_mb_s, float(core_mb_s),
                         np.array([concurrency]))[0, 0])


HEAL_RATE_GRID_MB_S = (0.5, 500.0)  # the coarse search's per-thread rates
HEAL_RATE_EDGE_MB_S = round(HEAL_RATE_GRID_MB_S[1] * 1.13, 3)  # the fine search's top
HEAL_ENTRY_GRID_S = (0.002, 2.0)  # the coarse search's per-entry costs (and 0)
HEAL_CORE_GRID_MB_S = (1.0, 300.0)  # the coarse search's per-core caps (and none)
HEAL_CONCURRENCY_GRID = (0.05, 20.0)  # the coarse search's concurrency costs (and 0)


@dataclass(frozen=True)
class _HealFit:
    cost: float
    rate: float
    core: float
    entry: float
    noticed: float
    concurrency: float = 0.0


def _best(trials: Sequence[HealTrial], y: np.ndarray, rates: Sequence[float],
          cores: Sequence[float], entries: np.ndarray,
          base: tuple[float, float, float], kappas: np.ndarray | None = None,
          base_kappa: float = 0.0) -> _HealFit:
    """The grid point of least squares; the delay before heal is each point's mean rest
    (clamped at 0), so the grid spans rate x CPU cap x concurrency x entry cost only
    (caps, costs and entries at once, per rate)."""
    kappa = np.zeros(1) if kappas is None else np.asarray(kappas, dtype=float)
    caps = np.asarray(cores, dtype=float)
    logs = np.log(np.where(caps > 0, caps, 1.0))
    cap_pull = (np.zeros(len(caps)) if base[0] <= 0
                else np.where(caps > 0, (logs - math.log(base[0])) ** 2, 0.0))
    best: _HealFit | None = None
    for rate in rates:
        # trial x cap x concurrency x entry
        d = np.array([_drains(t, entries, rate, caps, kappa) for t in trials])
        noticed = np.maximum(0.0, (y[:, None, None, None] - d).mean(axis=0))
        res = y[:, None, None, None] - noticed[None] - d
        pull = (cap_pull[:, None, None] + ((entries - base[1]) ** 2)[None, None, :]
                + ((kappa - base_kappa) ** 2)[None, :, None]
                + (math.log(rate) - math.log(base[2])) ** 2)
        cost = (res * res).sum(axis=0) + PULL * pull
        c, j, i = np.unravel_index(int(np.argmin(cost)), cost.shape)
        if best is None or cost[c, j, i] < best.cost:
            best = _HealFit(float(cost[c, j, i]), float(rate), float(caps[c]),
                            float(entries[i]), float(noticed[c, j, i]), float(kappa[j]))
    assert best is not None
    return best


def _around(x: float, step: float, n: int = 11) -> list[float]:
    """A geometric grid of ``n`` points within x / step .. x * step (0 stays 0: no cap)."""
    if x <= 0:
        return [0.0]
    return [float(v) for v in np.geomspace(x / step, x * step, n)]


def fit_heal(trials: Sequence[HealTrial], base_noticed_s: float, base_entry_s: float,
             base_thread_mb_s: float, base_core_mb_s: float = 0.0,
             base_concurrency: float = 0.0) -> Fitted:
    """Per-thread rate, per-core CPU cap, concurrency cost and entry cost on a coarse then a
    fine grid, the delay before heal at each point by least squares. The rate separates
    from the entry cost only with two shard sizes (else the base's is kept); the CPU cap
    and its concurrency cost from the thread rate only with two thread counts (else the
    base's are kept)."""
    y = np.array([t.duration_s for t in trials])
    base = (base_core_mb_s, base_entry_s, base_thread_mb_s)
    entries = np.concatenate([[0.0], np.geomspace(*HEAL_ENTRY_GRID_S, 24)])
    rates = ([base_thread_mb_s] if len({t.shard_bytes for t in trials}) < 2
             else list(np.geomspace(*HEAL_RATE_GRID_MB_S, 40)))
    per_daemon = {t.threads // max(1, t.daemons) for t in trials}
    two_counts = len(per_daemon) >= 2
    cores = ([base_core_mb_s] if not two_counts
             else [0.0, *np.geomspace(*HEAL_CORE_GRID_MB_S, 30)])
    kappas = (np.array([base_concurrency]) if not two_counts
              else np.concatenate([[0.0], np.geomspace(*HEAL_CONCURRENCY_GRID, 12)]))
    fine = _best(trials, y, rates, cores, entries, base, kappas, base_concurrency)
    # finer grids around the best point, each pass a third as wide (rate, cap, concurrency,
    # entry)
    for step in (1.4, 1.12, 1.04, 1.013):
        entry0 = max(fine.entry, HEAL_ENTRY_GRID_S[0])
        kappa0 = max(fine.concurrency, HEAL_CONCURRENCY_GRID[0])
        fine = _best(trials, y, _around(fine.rate, step) if len(rates) > 1 else rates,
                     _around(fine.core, step) if len(cores) > 1 else cores,
                     np.unique(np.concatenate([[0.0], _around(entry0, step * step)])), base,
                     (np.unique(np.concatenate([[0.0], _around(kappa0, step * step)]))
                      if len(kappas) > 1 else kappas), base_concurrency)
    rate, core = round(fine.rate, 3), round(fine.core, 3)
    entry, kappa = round(fine.entry, 3), round(fine.concurrency, 3)
    rest = y - np.array([drain_s(t, entry, rate, core, kappa) for t in trials])
    noticed = round(max(0.0, float(rest.mean())), 3)
    pred = tuple(noticed + drain_s(t, entry, rate, core, kappa) for t in trials)
    return Fitted({"heal_noticed_s": noticed, "heal_entry_s": entry,
                   "heal_thread_mb_s": rate, "heal_core_mb_s": core,
                   "heal_concurrency": kappa}, pred)
