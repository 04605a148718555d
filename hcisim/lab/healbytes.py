"""Bytes a returning brick really receives by heal, from its process's write counter.

The heal index gives only an estimate (:mod:`hcisim.lab.healinfo`: each pending entry's
allocated size on a source brick, while the entry is listed). It misses entries healed
between two polls and entries whose blame is not (yet) a data blame, which is how a run of
``lab-power-loss`` reported 0 bytes for volumes whose heal took 8.7 s. The kernel counts what
each brick process writes (``/proc/PID/io`` ``write_bytes``: bytes the process caused to be
sent to the storage layer, a page-cache write when the page is dirtied, ``O_DIRECT`` when
submitted; all threads of the process). During a heal episode the returning brick's counter
grows by what heal writes *plus* the foreground writes every data brick of the volume
receives; a data brick of the same volume that is up, not healing and the same process over
the same polls grows by the foreground writes alone. The difference is what heal wrote.

Caveats, measured or read: metadata (xattrs, the XFS log) is written by kernel threads and
not counted; a brick process restarted by the fault (power loss, crash) starts from 0 at
its start, so the baseline is then its first poll and the foreground the reference brick saw
between the process's start and that poll (at most one poll interval) is counted as heal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BrickIo:
    """One poll's reading of a brick process's write counter."""

    pid: int
    written: int  # /proc/PID/io write_bytes


# per brick of a volume: its counter at each poll (None: no process, or not readable)
IoSeries = Sequence[tuple[float, BrickIo | None]]
# one poll of every brick: (epoch, volume -> brick index -> counter)
IoSample = tuple[float, dict[str, dict[int, BrickIo]]]


# how often the brick write counters are read (cheap /proc reads): heal is measured from
# their values at the moment a brick comes back, so they must be read then
COUNTER_PERIOD_S = 0.2


def timed(read: Callable[[], dict[str, dict[int, BrickIo]]]) -> Callable[[], IoSample]:
    """``read`` with the time of each reading, for a poller."""
    return lambda: (time.time(), read())


def volume_series(samples: Sequence[IoSample], volume: str, bricks: int) -> list[IoSeries]:
    """Each brick's counter over the polls."""
    return [[(t, by_vol.get(volume, {}).get(i)) for t, by_vol in samples] for i in range(bricks)]


def read_brick_io(pid: int, brick_path: str, proc: Path = Path("/proc")) -> BrickIo | None:
    """The counter of ``pid`` if it is still the process serving ``brick_path`` (a pid file
    outlives its process, and the pid can be reused by anything)."""
    try:
        argv = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
        if brick_path.encode() not in argv:  # glusterfsd ... --brick-name PATH ...
            return None
        for line in (proc / str(pid) / "io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return BrickIo(pid, int(line.split()[1]))
    except (OSError, ValueError):
        return None
    return None


def _at(series: IoSeries, t: float) -> BrickIo | None:
    """The reading of the last poll at or before ``t``."""
    last: BrickIo | None = None
    for ts, io in series:
        if ts > t:
            break
        last = io
    return last


def _closing(series: IoSeries, t: float) -> BrickIo | None:
    """The first reading at or after ``t`` (the heal is over at ``t``, so it holds all of
    the heal's writes; under load the counter poller can lag the heal poll by a second, and
    the last reading before ``t`` then misses the last shards: 16 of 24 MiB once in a full
    test run), else the last one."""
    for ts, io in series:
        if ts >= t and io is not None:
            return io
    return _at(series, t)


def _run_start(series: IoSeries, end: float, pid: int) -> float:
    """When the process ``pid`` was first seen, in the run of polls that ends at ``end``."""
    first = end
    for ts, io in reversed([p for p in series if p[0] <= end]):
        if io is None:
            continue
        if io.pid != pid:
            break
        first = ts
    return first


def heal_received(series: Sequence[IoSeries], brick: int, references: Sequence[int],
                  back_at: float | None, end: float) -> float | None:
    """Bytes heal wrote to ``brick`` up to the poll at ``end``.

    ``back_at``: when the brick could receive writes again (the fault's repair; else the
    last time a client saw it down). Both counters are read from the last poll before it:
    the returning brick's cannot have moved before it (nothing reached it), the
    reference's moves from then on only by the foreground the returning brick gets too, so
    polls must be dense around it (COUNTER_PERIOD_S). ``references``: data bricks of the
    volume that were up and not healing over the episode. None when the counters cannot
    say (no reading at the end, or no reference brick with one process throughout).
    """
    last = _closing(series[brick], end)
    if last is None:
        return None
    first_seen = _run_start(series[brick], end, last.pid)
    if back_at is not None and first_seen <= back_at:
        base = _at(series[brick], back_at)
        if base is None or base.pid != last.pid:
            return None
        # still nothing reached it after the repair (the clients reconnect up to their 3 s
        # timer later; writes meanwhile go to the others and are healed): move on to the
        # last poll before its counter moves, so that gap's foreground is not subtracted
        base_t = max(t for t, io in series[brick]
                     if back_at <= t <= end and io is not None and io == base) \
            if any(back_at <= t <= end and io == base for t, io in series[brick]) else back_at
        base_written = base.written
    else:  # restarted by the fault: everything it wrote since its start
        base_t, base_written = first_seen, 0
    for ref in references:
        a, b = _at(series[ref], base_t), _closing(series[ref], end)
        if a is None or b is None or a.pid != b.pid or _run_start(series[ref], end, b.pid) > base_t:
            continue
        return max(0.0, float((last.written - base_written) - (b.written - a.written)))
    return None
