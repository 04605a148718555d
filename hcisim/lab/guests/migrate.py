"""Live migration of a guest between two hosts' namespaces, over the lab's network.

The destination qemu is the same guest started with ``-incoming tcp:ADDR:PORT`` in the
target host's namespace (ADDR is that host's address on the network the stream should
use), its disk the same image file through the target host's own FUSE mount. The source
then gets vdsm's knobs (``migrate-set-parameters``: ``max-bandwidth``, ``downtime-limit``)
and ``migrate``; the harness polls ``query-migrate`` until it ends and keeps qemu's own
counters: total time, downtime, setup time, RAM transferred, dirty-sync rounds.

vdsm's policy is played as vdsm plays it (``lib/vdsm/virt/migration.py``) and as the model
does (``hcisim.model.compute.migration.PreCopy``): its ``MonitorThread`` samples qemu's
RAM remaining every ``monitor_interval_s``; the first limit of the downtime schedule is
set at the start, the ``DowntimeThread`` starts stepping when a sample first sees the
remaining data grow (a new iteration: ``iterationCount == 1``), sets the next limit at
once and each further one ``step_wait_s`` later; a migration whose remaining data has not
reached a new low for ``progress_timeout_s`` at a sample, or that is older than
``max_time_s`` at a sample, is cancelled (``abortJob``): the VM keeps running on the source.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from hcisim.lab.errors import LabError
from hcisim.lab.guests.qemu import Guest

MIB = 1 << 20
ENDED = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class MigrationPolicy:
    """vdsm's migration settings: bandwidth cap, downtime steps, when to give up."""

    max_bandwidth_mib_s: float = 52.0  # vdsm's migration_max_bandwidth default
    downtime_limits_ms: tuple[int, ...] = (500,)  # vdsm's exponential_downtime values
    step_wait_s: float = 0.0  # DowntimeThread: between steps after the first new iteration
    progress_timeout_s: float = 150.0  # vdsm's migration_progress_timeout
    max_time_s: float = 600.0  # migration_max_time_per_gib_mem x RAM GiB
    monitor_interval_s: float = 0.2  # vdsm's migration_monitor_interval (vdsm: 10 s)
    poll_s: float = 0.2  # how often the harness asks qemu (end of the migration)

    def __post_init__(self) -> None:
        if not self.downtime_limits_ms or min(self.downtime_limits_ms) <= 0:
            raise LabError("configure migration", "downtime_limits_ms: one or more limits > 0")
        if self.max_bandwidth_mib_s <= 0:
            raise LabError("configure migration", "max_bandwidth_mib_s must be > 0")
        if self.monitor_interval_s <= 0 or self.poll_s <= 0 or self.step_wait_s < 0:
            raise LabError("configure migration",
                           "monitor_interval_s and poll_s > 0, step_wait_s >= 0")


@dataclass
class MigrationResult:
    """One migration as qemu counted it (times in seconds, bytes in bytes)."""

    outcome: str  # completed | failed | cancelled
    reason: str
    t_start: float
    t_end: float
    total_time_s: float | None = None
    downtime_s: float | None = None
    setup_time_s: float | None = None
    ram_transferred_bytes: int | None = None
    ram_total_bytes: int | None = None
    dirty_sync_count: int | None = None
    downtime_limits_ms: list[tuple[float, int]] = field(default_factory=list)  # (after s, ms)
    samples: int = 0  # vdsm monitor samples taken
    last_query: dict[str, Any] = field(default_factory=dict)


def _counters(result: MigrationResult, info: dict[str, Any]) -> None:
    ram = info.get("ram") or {}
    result.last_query = info
    if "total-time" in info:
        result.total_time_s = info["total-time"] / 1000
    if "downtime" in info:
        result.downtime_s = info["downtime"] / 1000
    if "setup-time" in info:
        result.setup_time_s = info["setup-time"] / 1000
    if "transferred" in ram:
        result.ram_transferred_bytes = int(ram["transferred"])
        result.ram_total_bytes = int(ram.get("total", 0))
        result.dirty_sync_count = int(ram.get("dirty-sync-count", 0))


def _settle(source: Guest, result: MigrationResult, timeout_s: float = 3.0) -> None:
    """Re-read the counters until qemu has filled them in.

    qemu 7.2 sets the status to ``completed`` before it computes total time and downtime
    (migration_completion, then migration_calculate_complete): a query in between reads
    both as 0 (seen here once in two runs).
    """
    deadline = time.monotonic() + timeout_s
    while not result.total_time_s and time.monotonic() < deadline:
        time.sleep(0.05)
        _counters(result, source.qmp.execute("query-migrate"))


def enable_events(guest: Guest) -> None:
    """MIGRATION events are sent only with the ``events`` capability on."""
    guest.qmp.execute("migrate-set-capabilities",
                      {"capabilities": [{"capability": "events", "state": True}]})


def migrate(source: Guest, destination: Guest, uri: str,
            policy: MigrationPolicy | None = None) -> MigrationResult:
    """Migrate ``source`` to the waiting ``destination`` (launched with ``incoming=uri``).

    On success the source is left in ``postmigrate`` (the caller stops it); on failure or
    cancel the source still runs and the destination is the caller's to stop.
    """
    pol = policy or MigrationPolicy()
    if destination.spec.incoming != uri:
        raise LabError("start migration", f"destination waits on {destination.spec.incoming}, "
                       f"not {uri}")
    enable_events(destination)
    enable_events(source)
    limits = list(pol.downtime_limits_ms)
    source.qmp.execute("migrate-set-parameters", {
        "max-bandwidth": int(pol.max_bandwidth_mib_s * MIB),
        "downtime-limit": limits[0]})
    t_start = time.time()
    result = MigrationResult("active", "", t_start, t_start,
                             downtime_limits_ms=[(0.0, limits[0])])
    source.qmp.execute("migrate", {"uri": uri})
    monitor = _Monitor(pol, t_start)
    while True:
        time.sleep(pol.poll_s)
        info = source.qmp.execute("query-migrate")
        status = str(info.get("status", ""))
        _counters(result, info)
        now = time.time()
        if status in ENDED:
            result.outcome, result.t_end = status, now
            if status == "completed":
                _settle(source, result)
            if status == "failed":
                result.reason = str(info.get("error-desc", ""))
            result.samples = monitor.samples
            return result
        remaining = (info.get("ram") or {}).get("remaining")
        reason = monitor.sample(now, remaining if isinstance(remaining, int) else None)
        if reason and not result.reason:
            source.qmp.execute("migrate_cancel")
            result.reason = reason
        for limit in monitor.due_limits(now, limits):
            source.qmp.execute("migrate-set-parameters", {"downtime-limit": limit})
            result.downtime_limits_ms.append((now - t_start, limit))


class _Monitor:
    """vdsm's MonitorThread and DowntimeThread on the harness's clock (the model's
    ``PreCopy._monitor_tick`` and ``allowed_ms``, step for step)."""

    def __init__(self, pol: MigrationPolicy, t_start: float) -> None:
        self.pol = pol
        self.t_start = t_start
        self.next_sample = t_start + pol.monitor_interval_s
        self.lowmark: int | None = None
        self.t_progress = t_start
        self.last: int | None = None
        self.t_steps: float | None = None  # the first new iteration seen
        self.next_limit = 1
        self.samples = 0

    def due_limits(self, now: float, limits: list[int]) -> list[int]:
        """Downtime limits whose time has come: the second at ``t_steps``, then one every
        ``step_wait_s``."""
        due = []
        while self.t_steps is not None and self.next_limit < len(limits) and \
                now >= self.t_steps + (self.next_limit - 1) * self.pol.step_wait_s:
            due.append(limits[self.next_limit])
            self.next_limit += 1
        return due

    def sample(self, now: float, remaining: int | None) -> str:
        """One ``monitor_migration`` sample if one is due: why to abort ("" : go on)."""
        if now < self.next_sample or remaining is None:
            return ""
        while self.next_sample <= now:
            self.next_sample += self.pol.monitor_interval_s
        self.samples += 1
        if now - self.t_start > self.pol.max_time_s:
            return f"longer than {self.pol.max_time_s:.0f} s"
        if self.lowmark is None or remaining < self.lowmark:
            self.lowmark, self.t_progress = remaining, now
        if self.last is not None and self.last < remaining and self.t_steps is None:
            self.t_steps = now
        self.last = remaining
        if now - self.t_progress > self.pol.progress_timeout_s:
            return f"no progress for {now - self.t_progress:.0f} s"
        return ""
