"""Pre-copy live migration by mechanism: what qemu sends, what vdsm watches.

What decides a migration is what qemu puts on the wire (docs/compute.md cites the code):

- **setup** (``migration_thread`` -> ``qemu_savevm_state_setup`` -> ``ram_save_setup``):
  dirty bitmaps for all of RAM, the first ``migration_bitmap_sync``; nothing sent yet.
- **first pass** (``ram_find_and_save_block``): every page of guest RAM. A page the guest
  has written goes whole (``save_normal_page``: 8-byte header + 4096 bytes); a zero page
  goes as its header and one byte (``save_zero_page``: 9 bytes). So the first pass is the
  guest's *touched* RAM plus almost nothing, not its working set.
- **bitmap sync** at the end of every pass (``migration_bitmap_sync``): the pages dirtied
  since the last sync become the next pass. The guest re-dirties its working set at its
  dirty rate, so a pass of ``d`` seconds leaves ``min(working set, rate x d)``. The sync
  itself takes time (``sync_ms_per_gib`` of guest RAM) and sends nothing.
- **convergence** (``migration_iteration_run``): ``pending_size < threshold_size`` with
  threshold = bandwidth x ``downtime-limit`` (``migration_update_counters``, bandwidth as
  measured over the last 100 ms: the current rate here). Then ``migration_completion``
  stops the VM (``vm_stop_force_state``: vCPUs paused, disks drained and flushed), lifts
  the rate limit, syncs once more and sends the rest and the device state at the link's
  rate: downtime = ``switchover_ms`` + sync + pending / link rate.
- **vdsm** (``lib/vdsm/virt/migration.py``): bandwidth cap ``migration_max_bandwidth``;
  ``DowntimeThread``: the initial limit is the first of ``exponential_downtime`` (101 ms of
  500 in 5 steps); once the monitor sees the first new iteration (remaining grew between
  two samples) the thread sets the next step at once and each further one after
  ``min(migration_downtime_delay x RAM GiB / steps, 60 s)``; ``MonitorThread`` samples the
  remaining data every ``migration_monitor_interval`` (10 s) and aborts when it has not
  reached a new low for ``migration_progress_timeout`` or the migration is older than
  ``migration_max_time_per_gib_mem`` x RAM GiB.
- **auto-converge** (policy *suspend workload if needed*; qemu ``migration_trigger_throttle``):
  a pass that dirtied more than 50 % of what it sent, twice, throttles the guest 20 %, then
  10 % more each time (max 99 %); after the downtime steps vdsm allows
  ``suspend_downtime_ms``. **Post-copy**: switch after the first pass (downtime = the first
  step); the rest is pulled by the destination.

Units: MB (10^6 bytes) and MB/s; the bandwidth is capped at ``max_bandwidth_mb_s``.
- **early sync** (qemu 7.2 ``ram_save_pending``: ``if (remaining_size < max_size) {
  migration_bitmap_sync_precopy(rs); }``): a pass ends as soon as its rest (pages, zero
  pages counted whole) is below the threshold; the rest joins the next pass. qemu checks
  between chunks of one 100 ms rate-limit window, so the rest is taken as half a chunk
  below the threshold (the last pass of a converging migration carries it).

Left out: qemu's bandwidth estimate falling while it scans zero pages (the model uses the
rate), the order of pages, compression, XBZRLE, multifd, the CPU cost of finding zero
pages.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Literal, Protocol

from hcisim.placement.inventory import GIB_MB
from hcisim.scenario.compute import Migration

# running: still under way when the run ended (its row stops at the run's end)
Outcome = Literal["converged", "post_copy", "aborted", "running"]
Phase = Literal["setup", "copy", "sync", "stop_sync", "stop_copy", "post_copy", "done"]
DEAD_TIME: frozenset[Phase] = frozenset({"setup", "sync", "stop_sync"})  # nothing is sent
STOPPED: frozenset[Phase] = frozenset({"stop_sync", "stop_copy"})  # the VM is paused
_EPS = 1e-9
PAGE = 4096
PAGE_HEADER = 8  # save_page_header: be64 offset | flags (the block name only on a change)
WIRE_PER_PAGE_BYTE = (PAGE + PAGE_HEADER) / PAGE  # a normal page on the wire, per RAM byte
ZERO_PAGE_WIRE = PAGE_HEADER + 1  # save_zero_page: header + one byte
THROTTLE_TRIGGER = 0.5
THROTTLE_INITIAL = 0.2
THROTTLE_INCREMENT = 0.1
THROTTLE_MAX = 0.99
WAIT_STEP_LIMIT_S = 60.0  # vdsm DowntimeThread._WAIT_STEP_LIMIT
BUFFER_DELAY_S = 0.1  # migration.c BUFFER_DELAY: the rate limit's window


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
class GuestMemory:
    """What a guest's RAM looks like to a migration (MB)."""

    ram_mb: float
    touched_mb: float  # non-zero pages: sent whole in the first pass
    working_set_mb: float  # pages the guest keeps re-dirtying
    dirty_rate_mb_s: float

    @classmethod
    def of(cls, ram_gib: float, dirty_rate_mb_s: float, working_set_gib: float | None = None,
           touched_ram_gib: float | None = None) -> GuestMemory:
        """From a scenario VM's fields (touched None: all of RAM; working set None: all of
        the touched RAM). The working set is written, so it is touched; neither exceeds RAM."""
        ram = ram_gib * GIB_MB
        touched = min(ram, touched_ram_gib * GIB_MB) if touched_ram_gib is not None else ram
        ws = min(ram, working_set_gib * GIB_MB) if working_set_gib is not None else touched
        return cls(ram, max(touched, ws), ws, dirty_rate_mb_s)

    @property
    def first_pass_mb(self) -> float:
        """Bytes on the wire for one pass over all of RAM."""
        zero_pages = (self.ram_mb - self.touched_mb) * 1e6 / PAGE
        return self.touched_mb * WIRE_PER_PAGE_BYTE + zero_pages * ZERO_PAGE_WIRE / 1e6


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
    syncs: int = 0  # dirty-bitmap syncs, the setup's included (qemu's dirty-sync-count)
    downtime_mb: float = 0.0  # sent while the VM was stopped (qemu's ram downtime-bytes)

    @property
    def total_s(self) -> float:
        return self.t_end_s - self.t_start_s

    @property
    def moved(self) -> bool:
        """The VM runs on the destination afterwards."""
        return self.outcome in ("converged", "post_copy")


def downtime_schedule_ms(max_ms: float, steps: int) -> tuple[float, ...]:
    """vdsm's ``exponential_downtime``: allowed downtime per step, ending at ``max_ms``."""
    if steps <= 1:
        return (max_ms,)
    offset = max_ms / steps
    base = (max_ms - offset) ** (1.0 / (steps - 1))
    # The last step is exactly max_ms (offset + base**(steps-1) only equals it up to rounding).
    return (*(offset + base**i for i in range(steps - 1)), max_ms)


def step_wait_s(settings: Migration, ram_gib: float) -> float:
    """vdsm DowntimeThread's wait between steps: delay per GiB x RAM / steps, at most 60 s."""
    return min(settings.downtime_delay_per_gib_s * ram_gib / settings.downtime_steps,
               WAIT_STEP_LIMIT_S)


class PreCopy:
    """One migration's state, advanced segment by segment at a constant rate.

    :func:`migrate` drives it over a :class:`Bandwidth`; the SimPy layer drives it over a
    fluid flow whose rate changes whenever the network's sharing changes. Both use
    :meth:`horizon` (when the next thing happens at this rate) and :meth:`advance`.
    """

    def __init__(self, memory: GuestMemory, settings: Migration, t0: float = 0.0) -> None:
        self.mem = memory
        self.s = settings
        self.schedule = downtime_schedule_ms(settings.downtime_ms, settings.downtime_steps)
        self.wait_s = step_wait_s(settings, memory.ram_mb / GIB_MB)
        self.sync_s = settings.sync_ms_per_gib * memory.ram_mb / GIB_MB / 1000.0
        self.t0 = self.t = t0
        self.phase: Phase = "setup"
        self.phase_end = t0 + settings.setup_ms / 1000.0  # dead-time phases end here
        self.rounds = 0
        self.syncs = 1  # the setup's
        self.round_total = memory.first_pass_mb  # wire MB of this pass
        self.round_ram = memory.ram_mb  # RAM MB of its pages (what qemu counts as remaining)
        self.round_sent = 0.0
        self.t_sync = t0  # last dirty-bitmap sync: dirtying counts from here
        self.sent_since_sync = 0.0
        self.transferred = 0.0
        self.throttle = 0.0
        self.last_rate = 0.0
        self._high = 0
        self._pending = (0.0, 0.0)  # (wire, RAM) MB found dirty at the last sync
        # vdsm's monitor
        self.next_tick = t0 + settings.monitor_interval_s
        self.lowmark: float | None = None
        self.last_remaining: float | None = None
        self.t_progress = t0
        self.t_steps: float | None = None  # when the DowntimeThread started stepping
        self.max_time_s = settings.max_time_per_gib_s * memory.ram_mb / GIB_MB
        self._pause_start = t0
        self._downtime = 0.0
        self._allowed_s = 0.0
        self._buffered = 0.0  # send-buffer MB still to cross the link after the stop
        self.result: MigrationResult | None = None

    @property
    def done(self) -> bool:
        return self.result is not None

    def cap(self, rate: float) -> float:
        """The rate qemu may use: capped while the VM runs, the whole link once it is
        stopped (``migration_completion``: ``qemu_file_set_rate_limit(s->to_dst_file,
        INT64_MAX)`` before ``qemu_savevm_state_complete_precopy``)."""
        if self.phase in STOPPED:
            return max(0.0, rate)
        return max(0.0, min(rate, self.s.max_bandwidth_mb_s))

    @property
    def rate_limited(self) -> bool:
        """False while the VM is stopped for the last pages: the flow may take the link."""
        return self.phase not in STOPPED

    def remaining_mb(self) -> float:
        """What vdsm's monitor reads as data remaining (RAM MB of dirty pages): the rest of
        this pass, and during a sync the pages about to be found dirty too."""
        left = self._left_ram()
        return left + self._dirtied(self.t) if self.phase == "sync" else left

    def _left_ram(self) -> float:
        if self.round_total <= 0:
            return 0.0
        return self.round_ram * max(0.0, self.round_total - self.round_sent) / self.round_total

    def _target(self, r: float) -> float:
        """Wire MB of this pass to send before it ends. A copy pass ends early, once its
        remaining pages are below the threshold (``ram_save_pending``: ``remaining_size <
        max_size`` syncs at once). qemu checks between chunks of one rate-limit window
        (``BUFFER_DELAY``), so the rest lands up to a chunk below the threshold: half a
        chunk below, here. Every other pass is sent whole."""
        if self.phase != "copy" or self.round_ram <= 0 or self.round_total <= 0:
            return self.round_total
        per_wire = self.round_ram / self.round_total  # RAM MB per wire MB in this pass
        threshold = r * self.allowed_ms(self.t) / 1000.0
        land = max(0.0, threshold - 0.5 * r * BUFFER_DELAY_S * per_wire)
        return max(0.0, self.round_total - land / per_wire)

    def allowed_ms(self, t: float) -> float:
        """The downtime limit in force at ``t`` (vdsm's DowntimeThread)."""
        if self.t_steps is None:
            return self.schedule[0]
        step = 1 + int((t - self.t_steps + _EPS) // self.wait_s) if self.wait_s > 0 \
            else len(self.schedule)
        if step < len(self.schedule):
            return self.schedule[step]
        if self.s.policy == "suspend_workload_if_needed":  # the thread has run its course
            return self.s.suspend_downtime_ms
        return self.schedule[-1]

    def horizon(self, rate: float) -> float:
        """Absolute time of the next milestone (end of a phase, a monitor tick) at ``rate``."""
        if self.result is not None:
            return math.inf
        if self.phase in DEAD_TIME:
            return min(self.phase_end, self.next_tick)
        r = self.cap(rate)
        return self._end(r, self._target(r))

    def _end(self, r: float, target: float) -> float:
        """:meth:`horizon` of a phase that sends, at the capped rate ``r`` towards the
        pass's ``target``."""
        left = max(0.0, target - self.round_sent)
        end = self.t + left / r if r > 0 else (self.t if left <= 0 else math.inf)
        return min(end, self.next_tick)

    def advance(self, t_new: float, rate: float) -> None:
        """Move to ``t_new`` (<= :meth:`horizon`) with ``rate`` MB/s available meanwhile."""
        if self.result is not None:
            return
        if self.phase in DEAD_TIME:
            self._wait(t_new)
        else:
            r = self.cap(rate)
            self._send(t_new, r, self._target(r))

    def step(self, t: float, rate: float, land_from: float | None) -> tuple[float, float] | None:
        """One step at ``rate`` from ``t`` (the state's time): ``advance`` to ``t + max(0,
        horizon(rate) - t)``, which is where a process sleeping ``horizon - t`` wakes,
        with the cap and the pass's target computed once for both (a migration takes ~80
        steps). With ``land_from``: only if a timeout set at that instant lands on the
        step exactly, else None and the state as it was. Returns (the step's time, the
        wait)."""
        if self.phase in DEAD_TIME:
            r = target = 0.0
            end = min(self.phase_end, self.next_tick)
        else:
            r = self.cap(rate)
            target = self._target(r)
            end = self._end(r, target)
        wait = max(0.0, end - t)
        t_next = t + wait
        if land_from is not None and land_from + (t_next - land_from) != t_next:
            return None
        if self.phase in DEAD_TIME:
            self._wait(t_next)
        else:
            self._send(t_next, r, target)
        return t_next, wait

    def _wait(self, t_new: float) -> None:
        """:meth:`advance` in a phase that sends nothing (setup, a sync)."""
        self.t = max(self.t, t_new)
        if self.t >= self.phase_end - _EPS:
            self._end_of_dead_time()
        if self.result is None and self.t >= self.next_tick - _EPS:
            self._monitor_tick()

    def _send(self, t_new: float, r: float, target: float) -> None:
        """:meth:`advance` in a phase that sends, at the capped rate ``r`` towards the
        pass's ``target`` (both as :meth:`_target` gives them for the state at ``self.t``)."""
        dt = max(0.0, t_new - self.t)
        left = max(0.0, target - self.round_sent)
        # reaching horizon() ends the pass even when left / r is below the resolution of
        # t (months into a run, a few MB at line rate is < 1 ulp: dt = 0 loops forever)
        sent = left if r > 0 and t_new >= self.t + left / r else min(r * dt, left)
        self.round_sent += sent
        self.transferred += sent
        self.sent_since_sync += sent
        if r > 0:
            self.last_rate = r
        self.t = t_new
        if self.round_sent >= target - _EPS * max(1.0, self.round_total):
            self._end_of_pass()
        if self.result is None and self.t >= self.next_tick - _EPS:
            self._monitor_tick()

    def abort(self, reason: str) -> None:
        """Stop now (destination lost, operator...): the VM stays on the source."""
        if self.result is None:
            self._finish("aborted", reason)

    def so_far(self) -> MigrationResult:
        """Where a migration still under way stands (the run ends at ``self.t``): what it
        sent and the passes it began; downtime is the guest's stop so far, if it is
        stopped for the last pages now. Leaves the migration as it is."""
        stopped = self.phase in STOPPED
        return MigrationResult(
            outcome="running", t_start_s=self.t0, t_end_s=self.t,
            downtime_s=self.t - self._pause_start if stopped else 0.0,
            rounds=self.rounds, transferred_mb=self.transferred, allowed_downtime_s=0.0,
            reason=f"still under way ({self.phase}) when the run ended", syncs=self.syncs)

    # --- internals -----------------------------------------------------------------------

    def _dirtied(self, t: float) -> float:
        """RAM MB dirty at ``t`` since the last sync: the working set bounds it."""
        return min(self.mem.working_set_mb,
                   self.mem.dirty_rate_mb_s * (1.0 - self.throttle) * max(0.0, t - self.t_sync))

    def _start_pass(self, wire: float, ram: float) -> None:
        self.rounds += 1
        self.round_total, self.round_ram = wire, ram
        self.round_sent = 0.0

    def _end_of_pass(self) -> None:
        if self.phase == "stop_copy":
            self._downtime = self.t - self._pause_start
            self.transferred -= self._buffered
            self.round_sent -= self._buffered
            self._finish("converged", "remaining data fitted the allowed downtime")
            return
        if self.phase == "post_copy":
            self._finish("post_copy", "switched to post-copy after the first pass")
            return
        self.phase, self.phase_end = "sync", self.t + self.sync_s
        if self.sync_s <= 0:
            self._end_of_dead_time()

    def _end_of_dead_time(self) -> None:
        if self.phase == "setup":
            self.phase = "copy"
            self._start_pass(self.round_total, self.round_ram)
            return
        if self.phase == "stop_sync":  # the VM is stopped and synced: send the rest
            self.phase = "stop_copy"
            # behind what the socket still holds: full when the link held the stream below
            # the cap (qemu counted those bytes as sent already)
            link_bound = self.last_rate < self.s.max_bandwidth_mb_s * (1.0 - 1e-9)
            self._buffered = self.s.send_buffer_mb if link_bound else 0.0
            wire, ram = self._pending
            self._start_pass(wire + self._buffered, ram)
            if wire + self._buffered <= _EPS:
                self._end_of_pass()
            return
        # a sync: what this pass left unsent and the pages dirtied since the last sync are
        # the pending data
        self.syncs += 1
        dirtied = self._dirtied(self.t)
        left_wire = max(0.0, self.round_total - self.round_sent)
        left_ram = self._left_ram()
        pending_ram = min(self.mem.ram_mb, left_ram + dirtied)
        pending = (left_wire + (pending_ram - left_ram) * WIRE_PER_PAGE_BYTE, pending_ram)
        sent, self.sent_since_sync, self.t_sync = self.sent_since_sync, 0.0, self.t
        allowed_ms = self.allowed_ms(self.t)
        threshold = self.last_rate * allowed_ms / 1000.0
        if pending_ram <= _EPS or pending_ram < threshold:
            # migration_completion: stop the VM (flush its disks), sync once more, send the
            # rest with the device state
            self.phase = "stop_sync"
            self.phase_end = self.t + self.sync_s + self.s.switchover_ms / 1000.0
            self._pause_start = self.t
            self._allowed_s = allowed_ms / 1000.0
            self._pending = pending
            self.syncs += 1
            if self.phase_end <= self.t:
                self._end_of_dead_time()
            return
        if self.s.policy == "post_copy":
            # vdsm steers post-copy by the engine's schedule, without its max-time rule;
            # only a post-copy stream that stops flowing counts as stuck here
            self.phase = "post_copy"
            self._downtime = self.schedule[0] / 1000.0
            self.lowmark = None
            self._start_pass(*pending)
            return
        if self.rounds >= self.s.max_rounds:
            self._finish("aborted", f"not converged after max_rounds={self.s.max_rounds}")
            return
        if self.s.policy == "suspend_workload_if_needed" and dirtied > THROTTLE_TRIGGER * sent:
            self._high += 1
            if self._high >= 2:
                self._high = 0
                self.throttle = THROTTLE_INITIAL if self.throttle == 0 else min(
                    THROTTLE_MAX, self.throttle + THROTTLE_INCREMENT)
        self.phase = "copy"
        self._start_pass(*pending)

    def _monitor_tick(self) -> None:
        """vdsm MonitorThread.monitor_migration, one sample."""
        now = self.t
        self.next_tick += self.s.monitor_interval_s
        remaining = self.remaining_mb()
        if self.phase != "post_copy" and 0 < self.max_time_s < now - self.t0:
            self._finish("aborted", f"longer than max_time_per_gib_s x RAM = "
                         f"{self.max_time_s:.0f} s")
            return
        if self.lowmark is None or remaining < self.lowmark - _EPS:
            self.lowmark, self.t_progress = remaining, now
        if self.last_remaining is not None and self.last_remaining < remaining \
                and self.t_steps is None:
            self.t_steps = now  # first new iteration: the downtime thread starts stepping
        self.last_remaining = remaining
        if now - self.t_progress > self.s.progress_timeout_s + _EPS:
            self._finish("aborted", "no progress within progress_timeout_s")

    def _finish(self, outcome: Outcome, reason: str) -> None:
        self.phase = "done"
        self.result = MigrationResult(
            outcome=outcome, t_start_s=self.t0, t_end_s=self.t,
            downtime_s=self._downtime if outcome != "aborted" else 0.0,
            rounds=self.rounds, transferred_mb=self.transferred,
            allowed_downtime_s=self._allowed_s if outcome == "converged" else 0.0,
            reason=reason, syncs=self.syncs,
            downtime_mb=self.round_sent if outcome == "converged" else 0.0)


def migrate(memory: GuestMemory, settings: Migration, bandwidth: Bandwidth,
            t0: float = 0.0) -> MigrationResult:
    """The whole migration of a guest with ``memory``, starting at ``t0``."""
    pc = PreCopy(memory, settings, t0)
    while pc.result is None:
        rate = bandwidth.rate(pc.t)
        t_next = min(pc.horizon(rate), bandwidth.next_change(pc.t))
        pc.advance(t_next, rate)
    return pc.result
