"""Pre-copy live migration as a fluid algorithm over an available bandwidth.

A migration copies the VM's working set, then in rounds the pages dirtied meanwhile, until
what is left fits the allowed downtime at the bandwidth measured over the last round; then
the VM pauses and the rest is copied (stop-and-copy). Sources checked:
- vdsm ``virt/migration.py`` ``exponential_downtime``: the allowed downtime climbs through
  ``downtime_steps`` values offset + base^i, offset = max/steps, base = (max - offset)^(1/(steps-1))
  (500 ms in 5 steps: 101, 104, 120, 189, 500 ms). vdsm raises it when a migration stalls; we
  raise it once per round, which is the same when every round stalls.
- vdsm ``MonitorThread``: a migration whose remaining data has not reached a new low within
  ``migration_progress_timeout`` (240 s) is aborted. Here "remaining" is the dirty set at the
  start of each round; during the first (full) pass and the final pass data flows
  continuously, which counts as progress while the bandwidth is above zero.
- QEMU ``migration/options.c`` auto-converge defaults (throttle-trigger-threshold 50,
  cpu-throttle-initial 20, cpu-throttle-increment 10, max-cpu-throttle 99) and
  ``migration/ram.c`` ``migration_trigger_throttle``: when a round dirties more than 50 % of
  what it sent, twice, the guest is throttled 20 %, then 10 % more each further time.
  Throttling lowers the dirty rate by the same share.
- ovirt-site migration-enhancements.md: policies *Minimal downtime* (pre-copy, downtime
  steps), *Suspend workload if needed* (auto-converge; downtime allowed to grow to 5 s after
  the steps), *Post-copy* (switch to post-copy when pre-copy does not converge; the VM then
  runs on the destination and pulls the rest: bounded total time, short downtime).
Post-copy here switches after the first round; its downtime is the first downtime step.

Units: MB (10^6 bytes) and MB/s; the bandwidth is capped at ``max_bandwidth_mb_s``.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Literal, Protocol

from hcisim.scenario.compute import Migration

Outcome = Literal["converged", "post_copy", "aborted"]
_EPS = 1e-9
THROTTLE_TRIGGER = 0.5
THROTTLE_INITIAL = 0.2
THROTTLE_INCREMENT = 0.1
THROTTLE_MAX = 0.99


class Bandwidth(Protocol):
    """Bandwidth available to one migration flow, piecewise constant in time."""

    def rate(self, t: float) -> float:
        """MB/s available at time ``t`` (from ``t`` until :meth:`next_change`)."""
        ...

    def next_change(self, t: float) -> float:
        """The first time after ``t`` at which the rate changes (inf: never)."""
        ...


@dataclass(frozen=True)
class ConstantBandwidth:
    mb_s: float

    def rate(self, t: float) -> float:
        return self.mb_s

    def next_change(self, t: float) -> float:
        return math.inf


@dataclass(frozen=True)
class PiecewiseBandwidth:
    """``rates[i]`` from ``times[i]`` on (``rates[0]`` also before ``times[0]``)."""

    times: tuple[float, ...]
    rates: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.times) != len(self.rates) or not self.times:
            raise ValueError("times and rates: same non-zero length")
        if list(self.times) != sorted(self.times):
            raise ValueError("times must be ascending")

    def rate(self, t: float) -> float:
        i = bisect.bisect_right(self.times, t + _EPS) - 1
        return self.rates[max(i, 0)]

    def next_change(self, t: float) -> float:
        i = bisect.bisect_right(self.times, t + _EPS)
        return self.times[i] if i < len(self.times) else math.inf


@dataclass(frozen=True)
class MigrationResult:
    outcome: Outcome
    t_start_s: float
    t_end_s: float
    downtime_s: float
    rounds: int  # copy passes, the final stop-and-copy or post-copy pass included
    transferred_mb: float
    allowed_downtime_s: float  # the limit in force when it converged (0 if it did not)
    reason: str

    @property
    def total_s(self) -> float:
        return self.t_end_s - self.t_start_s

    @property
    def moved(self) -> bool:
        """The VM runs on the destination afterwards."""
        return self.outcome != "aborted"


def downtime_schedule_ms(max_ms: float, steps: int) -> tuple[float, ...]:
    """vdsm's ``exponential_downtime``: allowed downtime per step, ending at ``max_ms``."""
    if steps <= 1:
        return (max_ms,)
    offset = max_ms / steps
    base = (max_ms - offset) ** (1.0 / (steps - 1))
    # The last step is exactly max_ms (offset + base**(steps-1) only equals it up to rounding).
    return (*(offset + base**i for i in range(steps - 1)), max_ms)


class PreCopy:
    """One migration's state, advanced segment by segment at a constant rate.

    :func:`migrate` drives it over a :class:`Bandwidth`; the SimPy layer drives it over a
    fluid flow whose rate changes whenever the network's sharing changes. Both use
    :meth:`horizon` (when the next thing happens at this rate) and :meth:`advance`.
    """

    def __init__(self, ram_mb: float, dirty_rate_mb_s: float, settings: Migration,
                 t0: float = 0.0) -> None:
        self.ram = ram_mb
        self.dirty = dirty_rate_mb_s
        self.s = settings
        self.schedule = downtime_schedule_ms(settings.downtime_ms, settings.downtime_steps)
        self.t0 = self.t = t0
        self.phase: Literal["copy", "stop_copy", "post_copy", "done"] = "copy"
        self.rounds = 1
        self.round_total = ram_mb
        self.round_sent = 0.0
        self.round_start = t0
        self.lowmark = ram_mb
        self.t_progress = t0
        self.transferred = 0.0
        self.throttle = 0.0
        self._high = 0
        self._pause_start = t0
        self._downtime = 0.0
        self._allowed_s = 0.0
        self.result: MigrationResult | None = None

    @property
    def done(self) -> bool:
        return self.result is not None

    def cap(self, rate: float) -> float:
        return max(0.0, min(rate, self.s.max_bandwidth_mb_s))

    def deadline(self) -> float:
        return self.t_progress + self.s.progress_timeout_s

    def horizon(self, rate: float) -> float:
        """Absolute time of the next milestone (end of a pass, or abort) at ``rate``."""
        if self.result is not None:
            return math.inf
        r = self.cap(rate)
        left = self.round_total - self.round_sent
        end = self.t + left / r if r > 0 else math.inf
        return min(end, self.deadline())

    def advance(self, t_new: float, rate: float) -> None:
        """Move to ``t_new`` (<= :meth:`horizon`) with ``rate`` MB/s available meanwhile."""
        if self.result is not None:
            return
        r = self.cap(rate)
        dt = max(0.0, t_new - self.t)
        left = self.round_total - self.round_sent
        # reaching horizon() ends the pass even when left / r is below the resolution of t
        # (months into a run, a few MB at line rate is < 1 ulp: dt = 0 would loop forever)
        sent = left if r > 0 and t_new >= self.t + left / r else min(r * dt, left)
        self.round_sent += sent
        self.transferred += sent
        if r > 0 and (self.phase != "copy" or self.rounds == 1):
            self.t_progress = t_new
        self.t = t_new
        if self.round_sent >= self.round_total - _EPS * max(1.0, self.round_total):
            self._end_of_pass()
        if self.result is None and self.t >= self.deadline() - _EPS:
            self._finish("aborted", "no progress within progress_timeout_s")

    def abort(self, reason: str) -> None:
        """Stop now (destination lost, operator...): the VM stays on the source."""
        if self.result is None:
            self._finish("aborted", reason)

    # --- internals -----------------------------------------------------------------------

    def _allowed_ms(self, completed: int) -> float:
        if self.s.policy == "suspend_workload_if_needed" and completed > len(self.schedule):
            return self.s.suspend_downtime_ms
        return self.schedule[min(completed, len(self.schedule)) - 1]

    def _start_pass(self, total: float) -> None:
        self.rounds += 1
        self.round_total = total
        self.round_sent = 0.0
        self.round_start = self.t

    def _end_of_pass(self) -> None:
        if self.phase == "stop_copy":
            self._downtime = self.t - self._pause_start
            self._finish("converged", "remaining data fitted the allowed downtime")
            return
        if self.phase == "post_copy":
            self._finish("post_copy", "switched to post-copy after the first round")
            return
        completed = self.rounds
        duration = self.t - self.round_start
        dirtied = min(self.ram, self.dirty * (1.0 - self.throttle) * duration)
        bw_est = self.round_total / duration if duration > 0 else math.inf
        allowed_ms = self._allowed_ms(completed)
        if dirtied <= bw_est * allowed_ms / 1000.0 + _EPS:
            self.phase = "stop_copy"
            self._pause_start = self.t
            self._allowed_s = allowed_ms / 1000.0
            self._start_pass(dirtied)
            if dirtied <= _EPS:
                self._end_of_pass()
            return
        if self.s.policy == "post_copy":
            self.phase = "post_copy"
            self._downtime = self.schedule[0] / 1000.0
            self._start_pass(dirtied)
            return
        if completed >= self.s.max_rounds:
            self._finish("aborted", f"not converged after max_rounds={self.s.max_rounds}")
            return
        if dirtied < self.lowmark - _EPS:
            self.lowmark = dirtied
            self.t_progress = self.t
        if self.s.policy == "suspend_workload_if_needed" \
                and dirtied > THROTTLE_TRIGGER * self.round_total:
            self._high += 1
            if self._high >= 2:
                self._high = 0
                self.throttle = THROTTLE_INITIAL if self.throttle == 0 else min(
                    THROTTLE_MAX, self.throttle + THROTTLE_INCREMENT)
        self._start_pass(dirtied)

    def _finish(self, outcome: Outcome, reason: str) -> None:
        self.phase = "done"
        self.result = MigrationResult(
            outcome=outcome, t_start_s=self.t0, t_end_s=self.t,
            downtime_s=self._downtime if outcome != "aborted" else 0.0,
            rounds=self.rounds, transferred_mb=self.transferred,
            allowed_downtime_s=self._allowed_s if outcome == "converged" else 0.0,
            reason=reason)


def migrate(ram_mb: float, dirty_rate_mb_s: float, settings: Migration,
            bandwidth: Bandwidth, t0: float = 0.0) -> MigrationResult:
    """The whole migration of a VM with ``ram_mb`` to copy, starting at ``t0``."""
    pc = PreCopy(ram_mb, dirty_rate_mb_s, settings, t0)
    while pc.result is None:
        rate = bandwidth.rate(pc.t)
        t_next = min(pc.horizon(rate), bandwidth.next_change(pc.t))
        pc.advance(t_next, rate)
    return pc.result
