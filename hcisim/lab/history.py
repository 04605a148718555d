"""The write history: what the writer saw (acks, errors, stalls) and what the bricks hold.

Record first, judge later (Jepsen): the writer only logs; this module turns its log into
exact stall and error intervals, and the checker reads every data brick after heal to
prove each acknowledged record is there, byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hcisim.lab.history_writer import record


@dataclass(frozen=True)
class Attempt:
    """One write+fsync of record ``seq``; ``t_end`` None: it never returned."""

    seq: int
    t_issue: float
    t_end: float | None
    ok: bool
    error: str = ""


@dataclass
class History:
    name: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def acked(self) -> list[Attempt]:
        return [a for a in self.attempts if a.ok]

    @property
    def errors(self) -> list[Attempt]:
        return [a for a in self.attempts if not a.ok and a.t_end is not None]


def parse_history(text: str, name: str) -> History:
    """Parse a writer log; a trailing ``I`` line without its outcome is an open attempt."""
    h = History(name)
    open_issue: tuple[int, float] | None = None
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            if parts[0] == "I" and len(parts) == 3:
                open_issue = (int(parts[1]), float(parts[2]))
            elif parts[0] == "A" and len(parts) == 4:
                h.attempts.append(Attempt(int(parts[1]), float(parts[2]), float(parts[3]), True))
                open_issue = None
            elif parts[0] == "E" and len(parts) == 5:
                h.attempts.append(Attempt(int(parts[1]), float(parts[2]), float(parts[3]),
                                          False, parts[4]))
                open_issue = None
        except ValueError:
            continue  # a torn last line of a killed writer
    if open_issue is not None:
        h.attempts.append(Attempt(open_issue[0], open_issue[1], None, False))
    return h


def read_history(path: Path, name: str) -> History:
    try:
        return parse_history(path.read_text(), name)
    except OSError:
        return History(name)


@dataclass(frozen=True)
class Interval:
    start: float
    end: float
    status: str  # stalled | error


def bad_intervals(h: History, stall_threshold_s: float, end_of_run: float) -> list[Interval]:
    """Exact stall and error windows of one writer.

    - an attempt that took longer than ``stall_threshold_s`` is stalled from its issue to its
      return (an attempt that never returned: until ``end_of_run``);
    - after a failed attempt the disk is in error until the next attempt that succeeds is
      issued (retries are part of the error window).
    """
    out: list[Interval] = []
    err_start: float | None = None
    for a in h.attempts:
        end = a.t_end if a.t_end is not None else end_of_run
        if a.ok and err_start is not None:
            out.append(Interval(err_start, a.t_issue, "error"))
            err_start = None
        if end - a.t_issue > stall_threshold_s:
            out.append(Interval(a.t_issue, end, "stalled"))
            if not a.ok and a.t_end is not None:
                err_start = end
        elif not a.ok and a.t_end is not None and err_start is None:
            err_start = a.t_issue
    if err_start is not None:
        out.append(Interval(err_start, end_of_run, "error"))
    return _disjoint(out)


def _disjoint(intervals: list[Interval]) -> list[Interval]:
    """Sort and clip so no two windows overlap (a later window starts where one ends)."""
    out: list[Interval] = []
    for iv in sorted(intervals, key=lambda i: (i.start, i.end)):
        start = max(iv.start, out[-1].end) if out else iv.start
        if iv.end > start:
            out.append(Interval(start, iv.end, iv.status))
    return out


@dataclass(frozen=True)
class CheckResult:
    """Per acknowledged record: on how many data bricks it is intact, readable by a client."""

    name: str
    size: int
    acked: list[Attempt]
    copies: dict[int, int]
    readable: dict[int, bool] | None  # None: the client mount could not be read at all

    def lost(self, seq: int) -> bool:
        if self.copies.get(seq, 0) == 0:
            return True
        return self.readable is not None and not self.readable.get(seq, False)

    @property
    def lost_count(self) -> int:
        return sum(1 for a in self.acked if self.lost(a.seq))


def _read_segments(base: Path, relname: str, per_file: int, size: int,
                   seqs: list[int]) -> dict[int, bytes] | None:
    """Record bytes by seq from segment files under ``base``; None if unreadable at all."""
    out: dict[int, bytes] = {}
    cache: dict[int, bytes | None] = {}
    failures = 0
    for seq in seqs:
        seg = seq // per_file
        if seg not in cache:
            try:
                cache[seg] = (base / f"{relname}.{seg}").read_bytes()
            except FileNotFoundError:
                cache[seg] = b""
            except OSError:
                cache[seg] = None
                failures += 1
        data = cache[seg]
        if data is None:
            continue
        off = (seq % per_file) * size
        out[seq] = data[off:off + size]
    if failures and failures == len(cache):
        return None
    return out


def check(h: History, relname: str, size: int, per_file: int, data_bricks: list[Path],
          mount: Path | None) -> CheckResult:
    """Read ``relname.*`` on each data brick (and through ``mount``) and count good copies."""
    acked = h.acked
    seqs = [a.seq for a in acked]
    copies = dict.fromkeys(seqs, 0)
    for brick in data_bricks:
        got = _read_segments(brick, relname, per_file, size, seqs) or {}
        for seq in seqs:
            if got.get(seq) == record(h.name, seq, size):
                copies[seq] += 1
    readable: dict[int, bool] | None = None
    if mount is not None:
        got_m = _read_segments(mount, relname, per_file, size, seqs)
        if got_m is not None:
            readable = {seq: got_m.get(seq) == record(h.name, seq, size) for seq in seqs}
    return CheckResult(h.name, size, acked, copies, readable)


def per_second(result: CheckResult, t0: float, duration_s: float,
               quorum: Callable[[float], bool] | None = None, bin_s: float = 1.0,
               ) -> list[tuple[float, float, float, int, float, bool]]:
    """(t_start, t_end, acked_bytes, min copies, lost_bytes, quorum) per bin with acks.

    ``quorum(t)`` says whether the volume had client quorum at epoch ``t``; a bin's flag is
    True only if every record in it was acknowledged while quorum held.
    """
    bins: dict[int, list[Attempt]] = {}
    last = max(int(duration_s / bin_s) - 1, 0)
    for a in result.acked:
        assert a.t_end is not None
        k = math.floor((a.t_end - t0) / bin_s)
        bins.setdefault(min(max(k, 0), last), []).append(a)
    rows = []
    for k in sorted(bins):
        recs = bins[k]
        ok = quorum is None or all(quorum(a.t_end) for a in recs if a.t_end is not None)
        rows.append((k * bin_s, (k + 1) * bin_s, float(len(recs) * result.size),
                     min(result.copies.get(a.seq, 0) for a in recs),
                     float(sum(result.size for a in recs if result.lost(a.seq))), ok))
    return rows
