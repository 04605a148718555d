"""The pre-copy steps a migration runs ahead, compiled (numba).

Why: an availability year's migrations take ~4,500 steps of :class:`PreCopy` (a monitor
tick, the end of a pass or of a sync), run ahead in batches by
:func:`hcisim.model.compute.live._run_ahead`: ~3 us each in Python, ~8 % of a year. Here a
whole batch is one compiled call on the state packed into two arrays.

Why the state stays the same, bit for bit: :func:`run_steps` is
:meth:`PreCopy.step` (with ``_wait``, ``_send``, ``_end_of_pass``, ``_end_of_dead_time``,
``_monitor_tick``, ``_target``, ``allowed_ms``, ``_dirtied``, ``_left_ram``) statement for
statement: the same IEEE-754 double operations in the same order, compiled without
``fastmath``; Python's ``min`` and ``max`` are written out as they choose (the first
argument unless another is strictly better), float ``//`` as CPython computes it
(:func:`_floordiv`). The methods' calls of one another are tail calls, hence a loop here
(:func:`_end_of_pass`). ``tests/compute/test_precopy_kernel.py`` runs migrations both ways
and compares every attribute after every batch.

:mod:`hcisim.model.compute.migration` keeps the Python methods: ``migrate`` and the replays
of steps run ahead (a rate change in the middle of a batch) use them.
"""

# numpy types an element read as Any (or an array, for an int index): the compiled helpers
# return such elements as floats
# mypy: disable-error-code="no-any-return, return-value"
from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

# phases (hcisim.model.compute.migration.Phase), in this order
PHASES = ("setup", "copy", "sync", "stop_sync", "stop_copy", "post_copy", "done")
SETUP, COPY, SYNC, STOP_SYNC, STOP_COPY, POST_COPY, DONE = range(7)
POLICIES = ("minimal_downtime", "suspend_workload_if_needed", "post_copy")
SUSPEND, POST_COPY_POLICY = 1, 2
# how a batch ended the migration (0: it did not); PreCopy._finish is called with these
FINISHED = ("", "converged", "post_copy", "aborted_max_rounds", "aborted_max_time",
            "aborted_progress")

# the float state: PreCopy's float attributes of these names, in this order, then the
# three that may be None (a flag in the integer state says whether they are set), then the
# two of ``_pending``
PLAIN_FLOATS = ("t", "phase_end", "round_total", "round_ram", "round_sent", "t_sync",
                "sent_since_sync", "transferred", "throttle", "last_rate", "next_tick",
                "t_progress", "_pause_start", "_downtime", "_allowed_s", "_buffered")
FLOAT_STATE = (*PLAIN_FLOATS, "lowmark", "last_remaining", "t_steps", "pending_wire",
               "pending_ram")
(T, PHASE_END, ROUND_TOTAL, ROUND_RAM, ROUND_SENT, T_SYNC, SENT_SINCE_SYNC, TRANSFERRED,
 THROTTLE, LAST_RATE, NEXT_TICK, T_PROGRESS, PAUSE_START, DOWNTIME, ALLOWED_S, BUFFERED,
 LOWMARK, LAST_REMAINING, T_STEPS, PENDING_WIRE, PENDING_RAM) = range(len(FLOAT_STATE))
# the integer state: the phase, counters, whether the optional floats are set, the end
INT_STATE = ("phase", "rounds", "syncs", "_high", "has_lowmark", "has_last_remaining",
             "has_t_steps", "finished")
(PHASE, ROUNDS, SYNCS, HIGH, HAS_LOWMARK, HAS_LAST_REMAINING, HAS_T_STEPS,
 FINISH) = range(len(INT_STATE))
# the constants of one migration
CONSTS = ("t0", "ram_mb", "working_set_mb", "dirty_rate_mb_s", "max_bandwidth_mb_s",
          "monitor_interval_s", "progress_timeout_s", "send_buffer_mb", "switchover_ms",
          "wait_s", "sync_s", "max_time_s", "suspend_downtime_ms", "max_rounds", "policy")
(T0, RAM_MB, WS_MB, DIRTY_RATE, MAX_BW, MONITOR_S, PROGRESS_S, SEND_BUFFER, SWITCHOVER_MS,
 WAIT_S, SYNC_S, MAX_TIME_S, SUSPEND_MS, MAX_ROUNDS, POLICY) = range(len(CONSTS))

# the same constants as hcisim.model.compute.migration (imported from there by the tests)
_EPS = 1e-9
WIRE_PER_PAGE_BYTE = (4096 + 8) / 4096
THROTTLE_TRIGGER = 0.5
THROTTLE_INITIAL = 0.2
THROTTLE_INCREMENT = 0.1
THROTTLE_MAX = 0.99
BUFFER_DELAY_S = 0.1

# what a tail call asks for next (the loop in _end_of_pass)
_NOTHING, _PASS_ENDS, _DEAD_TIME_ENDS = 0, 1, 2


@njit(cache=True)
def _min(a: float, b: float) -> float:  # pragma: no cover (compiled)
    """Python's ``min(a, b)``: ``a`` unless ``b`` is strictly smaller."""
    return b if b < a else a


@njit(cache=True)
def _max(a: float, b: float) -> float:  # pragma: no cover (compiled)
    """Python's ``max(a, b)``: ``a`` unless ``b`` is strictly larger."""
    return b if b > a else a


@njit(cache=True)
def _floordiv(vx: float, wx: float) -> float:  # pragma: no cover (compiled)
    """CPython's float ``vx // wx`` (``float_floor_div`` in Objects/floatobject.c), for
    ``wx != 0``."""
    mod = np.fmod(vx, wx)  # exact (C fmod), as CPython's
    div = (vx - mod) / wx
    if mod and (wx < 0) != (mod < 0):
        div -= 1.0
    if div:
        floordiv = math.floor(div)
        if div - floordiv > 0.5:
            floordiv += 1.0
    else:
        floordiv = math.copysign(0.0, vx / wx)
    return floordiv


@njit(cache=True)
def _allowed_ms(f: Floats, i: Ints, c: Floats, schedule: Floats,
                t: float) -> float:  # pragma: no cover (compiled)
    if i[HAS_T_STEPS] == 0:
        return schedule[0]
    n = schedule.shape[0]
    step = 1 + int(_floordiv(t - f[T_STEPS] + _EPS, c[WAIT_S])) if c[WAIT_S] > 0 else n
    if step < n:
        return schedule[step]
    if int(c[POLICY]) == SUSPEND:
        return c[SUSPEND_MS]
    return schedule[n - 1]


@njit(cache=True)
def _target(f: Floats, i: Ints, c: Floats, schedule: Floats,
            r: float) -> float:  # pragma: no cover (compiled)
    if i[PHASE] != COPY or f[ROUND_RAM] <= 0 or f[ROUND_TOTAL] <= 0:
        return f[ROUND_TOTAL]
    per_wire = f[ROUND_RAM] / f[ROUND_TOTAL]
    threshold = r * _allowed_ms(f, i, c, schedule, f[T]) / 1000.0
    land = _max(0.0, threshold - 0.5 * r * BUFFER_DELAY_S * per_wire)
    return _max(0.0, f[ROUND_TOTAL] - land / per_wire)


@njit(cache=True)
def _dirtied(f: Floats, c: Floats, t: float) -> float:  # pragma: no cover (compiled)
    return _min(c[WS_MB], c[DIRTY_RATE] * (1.0 - f[THROTTLE]) * _max(0.0, t - f[T_SYNC]))


@njit(cache=True)
def _left_ram(f: Floats) -> float:  # pragma: no cover (compiled)
    if f[ROUND_TOTAL] <= 0:
        return 0.0
    return f[ROUND_RAM] * _max(0.0, f[ROUND_TOTAL] - f[ROUND_SENT]) / f[ROUND_TOTAL]


@njit(cache=True)
def _start_pass(f: Floats, i: Ints, wire: float, ram: float) -> None:  # pragma: no cover
    i[ROUNDS] += 1
    f[ROUND_TOTAL] = wire
    f[ROUND_RAM] = ram
    f[ROUND_SENT] = 0.0


@njit(cache=True)
def _finish(i: Ints, how: int) -> None:  # pragma: no cover (compiled)
    i[PHASE] = DONE
    i[FINISH] = how


@njit(cache=True)
def _pass_ends(f: Floats, i: Ints, c: Floats) -> int:  # pragma: no cover (compiled)
    """PreCopy._end_of_pass; returns the tail call it makes."""
    phase = i[PHASE]
    if phase == STOP_COPY:
        f[DOWNTIME] = f[T] - f[PAUSE_START]
        f[TRANSFERRED] -= f[BUFFERED]
        f[ROUND_SENT] -= f[BUFFERED]
        _finish(i, 1)
        return _NOTHING
    if phase == POST_COPY:
        _finish(i, 2)
        return _NOTHING
    i[PHASE] = SYNC
    f[PHASE_END] = f[T] + c[SYNC_S]
    if c[SYNC_S] <= 0:
        return _DEAD_TIME_ENDS
    return _NOTHING


@njit(cache=True)
def _dead_time_ends(f: Floats, i: Ints, c: Floats,
                    schedule: Floats) -> int:  # pragma: no cover (compiled)
    """PreCopy._end_of_dead_time; returns the tail call it makes."""
    phase = i[PHASE]
    if phase == SETUP:
        i[PHASE] = COPY
        _start_pass(f, i, f[ROUND_TOTAL], f[ROUND_RAM])
        return _NOTHING
    if phase == STOP_SYNC:
        i[PHASE] = STOP_COPY
        link_bound = f[LAST_RATE] < c[MAX_BW] * (1.0 - 1e-9)
        f[BUFFERED] = c[SEND_BUFFER] if link_bound else 0.0
        wire, ram = f[PENDING_WIRE], f[PENDING_RAM]
        _start_pass(f, i, wire + f[BUFFERED], ram)
        if wire + f[BUFFERED] <= _EPS:
            return _PASS_ENDS
        return _NOTHING
    i[SYNCS] += 1
    t = f[T]
    dirtied = _dirtied(f, c, t)
    left_wire = _max(0.0, f[ROUND_TOTAL] - f[ROUND_SENT])
    left_ram = _left_ram(f)
    pending_ram = _min(c[RAM_MB], left_ram + dirtied)
    pending_wire = left_wire + (pending_ram - left_ram) * WIRE_PER_PAGE_BYTE
    sent = f[SENT_SINCE_SYNC]
    f[SENT_SINCE_SYNC] = 0.0
    f[T_SYNC] = t
    allowed_ms = _allowed_ms(f, i, c, schedule, t)
    threshold = f[LAST_RATE] * allowed_ms / 1000.0
    if pending_ram <= _EPS or pending_ram < threshold:
        i[PHASE] = STOP_SYNC
        f[PHASE_END] = t + c[SYNC_S] + c[SWITCHOVER_MS] / 1000.0
        f[PAUSE_START] = t
        f[ALLOWED_S] = allowed_ms / 1000.0
        f[PENDING_WIRE] = pending_wire
        f[PENDING_RAM] = pending_ram
        i[SYNCS] += 1
        if f[PHASE_END] <= t:
            return _DEAD_TIME_ENDS
        return _NOTHING
    policy = int(c[POLICY])
    if policy == POST_COPY_POLICY:
        i[PHASE] = POST_COPY
        f[DOWNTIME] = schedule[0] / 1000.0
        i[HAS_LOWMARK] = 0
        f[LOWMARK] = 0.0
        _start_pass(f, i, pending_wire, pending_ram)
        return _NOTHING
    if i[ROUNDS] >= int(c[MAX_ROUNDS]):
        _finish(i, 3)
        return _NOTHING
    if policy == SUSPEND and dirtied > THROTTLE_TRIGGER * sent:
        i[HIGH] += 1
        if i[HIGH] >= 2:
            i[HIGH] = 0
            f[THROTTLE] = THROTTLE_INITIAL if f[THROTTLE] == 0 else _min(
                THROTTLE_MAX, f[THROTTLE] + THROTTLE_INCREMENT)
    i[PHASE] = COPY
    _start_pass(f, i, pending_wire, pending_ram)
    return _NOTHING


@njit(cache=True)
def _end_of(first: int, f: Floats, i: Ints, c: Floats,
            schedule: Floats) -> None:  # pragma: no cover (compiled)
    """``_end_of_pass`` (``first`` = _PASS_ENDS) or ``_end_of_dead_time`` and the tail
    calls they make of each other."""
    call = first
    while call != _NOTHING:
        call = _pass_ends(f, i, c) if call == _PASS_ENDS else _dead_time_ends(f, i, c,
                                                                               schedule)


@njit(cache=True)
def _monitor_tick(f: Floats, i: Ints, c: Floats) -> None:  # pragma: no cover (compiled)
    now = f[T]
    f[NEXT_TICK] += c[MONITOR_S]
    left = _left_ram(f)
    remaining = left + _dirtied(f, c, f[T]) if i[PHASE] == SYNC else left
    if i[PHASE] != POST_COPY and c[MAX_TIME_S] > 0 and c[MAX_TIME_S] < now - c[T0]:
        _finish(i, 4)
        return
    if i[HAS_LOWMARK] == 0 or remaining < f[LOWMARK] - _EPS:
        f[LOWMARK] = remaining
        i[HAS_LOWMARK] = 1
        f[T_PROGRESS] = now
    if i[HAS_LAST_REMAINING] != 0 and f[LAST_REMAINING] < remaining and i[HAS_T_STEPS] == 0:
        f[T_STEPS] = now
        i[HAS_T_STEPS] = 1
    f[LAST_REMAINING] = remaining
    i[HAS_LAST_REMAINING] = 1
    if now - f[T_PROGRESS] > c[PROGRESS_S] + _EPS:
        _finish(i, 5)


@njit(cache=True)
def run_steps(f: Floats, i: Ints, c: Floats, schedule: Floats, now: float, rate: float,
              limit: int, steps: Floats) -> tuple[int, float]:  # pragma: no cover
    """:func:`hcisim.model.compute.live._run_ahead`'s loop of :meth:`PreCopy.step` on the
    packed state ``f`` / ``i`` (changed in place): up to ``limit`` steps from ``now`` at
    ``rate``, each after the first only if a timeout set at ``now`` lands on it; stops
    after the migration ends or the VM stops or resumes. Writes the steps' times into
    ``steps``; returns how many and the first one's wait."""
    limited = i[PHASE] != STOP_SYNC and i[PHASE] != STOP_COPY
    t = now
    n = 0
    first_wait = 0.0
    while True:
        phase = i[PHASE]
        dead = phase in (SETUP, SYNC, STOP_SYNC)
        if dead:
            r = target = 0.0
            end = _min(f[PHASE_END], f[NEXT_TICK])
        else:
            r = _max(0.0, rate) if phase in (STOP_SYNC, STOP_COPY) else _max(
                0.0, _min(rate, c[MAX_BW]))
            target = _target(f, i, c, schedule, r)
            left = _max(0.0, target - f[ROUND_SENT])
            end = f[T] + left / r if r > 0 else (f[T] if left <= 0 else math.inf)
            end = _min(end, f[NEXT_TICK])
        wait = _max(0.0, end - t)
        t_next = t + wait
        if n > 0 and now + (t_next - now) != t_next:
            break
        if dead:
            f[T] = _max(f[T], t_next)
            if f[T] >= f[PHASE_END] - _EPS:
                _end_of(_DEAD_TIME_ENDS, f, i, c, schedule)
            if i[FINISH] == 0 and f[T] >= f[NEXT_TICK] - _EPS:
                _monitor_tick(f, i, c)
        else:
            dt = _max(0.0, t_next - f[T])
            left = _max(0.0, target - f[ROUND_SENT])
            sent = left if r > 0 and t_next >= f[T] + left / r else _min(r * dt, left)
            f[ROUND_SENT] += sent
            f[TRANSFERRED] += sent
            f[SENT_SINCE_SYNC] += sent
            if r > 0:
                f[LAST_RATE] = r
            f[T] = t_next
            if f[ROUND_SENT] >= target - _EPS * _max(1.0, f[ROUND_TOTAL]):
                _end_of(_PASS_ENDS, f, i, c, schedule)
            if i[FINISH] == 0 and f[T] >= f[NEXT_TICK] - _EPS:
                _monitor_tick(f, i, c)
        if n == 0:
            first_wait = wait
        steps[n] = t_next
        n += 1
        t = t_next
        still_limited = i[PHASE] != STOP_SYNC and i[PHASE] != STOP_COPY
        if i[FINISH] != 0 or still_limited != limited or n >= limit:
            break
    return n, first_wait


# --- the Python side: pack a PreCopy's state, run a batch, unpack it -----------------------

_PHASE_CODE = {p: k for k, p in enumerate(PHASES)}
_plain = operator.itemgetter(*PLAIN_FLOATS)


def constants(pc: Any, limit: int) -> tuple[Floats, Floats, Floats]:
    """A migration's constants for :func:`run_steps` (computed once per migration), its
    downtime schedule and room for ``limit`` steps."""
    s, mem = pc.s, pc.mem
    c = np.array([pc.t0, mem.ram_mb, mem.working_set_mb, mem.dirty_rate_mb_s,
                  s.max_bandwidth_mb_s, s.monitor_interval_s, s.progress_timeout_s,
                  s.send_buffer_mb, s.switchover_ms, pc.wait_s, pc.sync_s, pc.max_time_s,
                  s.suspend_downtime_ms, s.max_rounds, POLICIES.index(s.policy)], dtype=float)
    return c, np.array(pc.schedule, dtype=float), np.empty(limit)


def compiles(pc: Any, rate: float) -> bool:
    """Whether :func:`run_ahead` gives ``pc`` exactly the state the Python steps would: its
    floats are Python floats (an int start time or rate, which the Python steps would carry
    as ints in places, is left to them)."""
    return type(pc.t0) is float and type(rate) is float


def run_ahead(pc: Any, consts: tuple[Floats, Floats, Floats], now: float, rate: float,
              limit: int) -> tuple[list[float], float]:
    """:func:`run_steps` on ``pc``'s state (if :func:`compiles`): afterwards ``pc`` has the
    attributes the Python steps would have given it (the same floats, bit for bit; a
    migration that ended has its result). Returns the steps' times and the first one's
    wait."""
    v = vars(pc)
    lowmark, last_remaining, t_steps = v["lowmark"], v["last_remaining"], v["t_steps"]
    f = np.array([*_plain(v), 0.0 if lowmark is None else lowmark,
                  0.0 if last_remaining is None else last_remaining,
                  0.0 if t_steps is None else t_steps, *v["_pending"]], dtype=float)
    i = np.array([_PHASE_CODE[v["phase"]], v["rounds"], v["syncs"], v["_high"],
                  lowmark is not None, last_remaining is not None, t_steps is not None, 0],
                 dtype=np.int64)
    c, schedule, steps = consts
    n, first_wait = run_steps(f, i, c, schedule, now, rate, limit, steps)
    y = f.tolist()
    v.update(zip(PLAIN_FLOATS, y, strict=False))  # zip stops at the plain floats
    phase, rounds, syncs, high, has_lowmark, has_last, has_t_steps, how = i.tolist()
    v["lowmark"] = y[LOWMARK] if has_lowmark else None
    v["last_remaining"] = y[LAST_REMAINING] if has_last else None
    v["t_steps"] = y[T_STEPS] if has_t_steps else None
    v["_pending"] = (y[PENDING_WIRE], y[PENDING_RAM])
    v["phase"], v["rounds"], v["syncs"], v["_high"] = PHASES[phase], rounds, syncs, high
    if how:
        pc._finish(*_finished(pc, how))
    return steps[:n].tolist(), first_wait


def _finished(pc: Any, how: int) -> tuple[str, str]:
    """The outcome and reason :class:`PreCopy` gives the ending ``how`` (a FINISHED code)."""
    if how == 1:
        return "converged", "remaining data fitted the allowed downtime"
    if how == 2:
        return "post_copy", "switched to post-copy after the first pass"
    if how == 3:
        return "aborted", f"not converged after max_rounds={pc.s.max_rounds}"
    if how == 4:
        return "aborted", f"longer than max_time_per_gib_s x RAM = {pc.max_time_s:.0f} s"
    return "aborted", "no progress within progress_timeout_s"
