"""Live migration of a guest between two hosts' namespaces, over the lab's network.

The destination qemu is the same guest started with ``-incoming tcp:ADDR:PORT`` in the
target host's namespace (ADDR is that host's address on the network the stream should
use), its disk the same image file through the target host's own FUSE mount. The source
then gets vdsm's knobs (``migrate-set-parameters``: ``max-bandwidth``, ``downtime-limit``,
raised step by step on a schedule as vdsm's downtime thread does) and ``migrate``; the
harness polls ``query-migrate`` until it ends and keeps qemu's own counters: total time,
downtime, setup time, RAM transferred, dirty-sync rounds. A migration that makes no
progress for ``progress_timeout_s`` (RAM remaining not shrinking, vdsm's progress
timeout) or outlives ``max_time_s`` is cancelled: the VM keeps running on the source.
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
    downtime_steps_ms: tuple[tuple[float, int], ...] = ((0.0, 500),)  # (after s, limit ms)
    progress_timeout_s: float = 150.0  # vdsm's migration_progress_timeout
    max_time_s: float = 600.0
    poll_s: float = 0.2

    def __post_init__(self) -> None:
        if not self.downtime_steps_ms or self.downtime_steps_ms[0][0] != 0:
            raise LabError("configure migration", "the downtime schedule must start at 0 s")
        if self.max_bandwidth_mib_s <= 0:
            raise LabError("configure migration", "max_bandwidth_mib_s must be > 0")


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
    downtime_limits_ms: list[tuple[float, int]] = field(default_factory=list)
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
    steps = list(pol.downtime_steps_ms)
    source.qmp.execute("migrate-set-parameters", {
        "max-bandwidth": int(pol.max_bandwidth_mib_s * MIB),
        "downtime-limit": steps[0][1]})
    t_start = time.time()
    result = MigrationResult("active", "", t_start, t_start,
                             downtime_limits_ms=[(0.0, steps[0][1])])
    steps.pop(0)
    source.qmp.execute("migrate", {"uri": uri})
    best_remaining: int | None = None
    t_progress = t_start
    cancelled = False
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
            return result
        if steps and now - t_start >= steps[0][0]:
            _, limit = steps.pop(0)
            source.qmp.execute("migrate-set-parameters", {"downtime-limit": limit})
            result.downtime_limits_ms.append((now - t_start, limit))
        remaining = (info.get("ram") or {}).get("remaining")
        if isinstance(remaining, int) and (best_remaining is None or remaining < best_remaining):
            best_remaining, t_progress = remaining, now
        reason = (f"no progress for {now - t_progress:.0f} s"
                  if now - t_progress > pol.progress_timeout_s else
                  f"longer than {pol.max_time_s:.0f} s"
                  if now - t_start > pol.max_time_s else "")
        if reason and not cancelled:
            source.qmp.execute("migrate_cancel")
            result.reason, cancelled = reason, True
