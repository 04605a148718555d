"""The write history: what the writer saw (acks, errors, stalls) and what the bricks hold.

Record first, judge later (Jepsen): the writer only logs; this module turns its log into
exact stall and error intervals, and the checker reads every data brick after heal to
prove each acknowledged record is there, byte for byte.

A disk may be written by several boots one after the other (a VM restarted by HA, a writer
restarted): each record names its boot (:func:`hcisim.lab.history_writer.record`) and each
log says which boot its attempts belong to (``B`` lines). A newer boot starts at seq 0
again, so its records supersede the older boot's at the same offsets. The checker then also
proves that the VM never ran twice (:func:`time_overlaps`, :func:`check`): the boots never
wrote at the same time, and no older boot's record lies over a newer boot's acknowledged one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hcisim.lab.history_writer import record


@dataclass(frozen=True)
class Attempt:
    """One write+fsync of record ``seq`` in boot ``boot``; ``t_end`` None: it never returned."""

    seq: int
    t_issue: float
    t_end: float | None
    ok: bool
    error: str = ""
    boot: str = ""


@dataclass
class History:
    name: str
    attempts: list[Attempt] = field(default_factory=list)
    boot_marks: dict[str, float] = field(default_factory=dict)  # boot -> its ``B`` line's time

    @property
    def acked(self) -> list[Attempt]:
        return [a for a in self.attempts if a.ok]

    @property
    def errors(self) -> list[Attempt]:
        return [a for a in self.attempts if not a.ok and a.t_end is not None]


def parse_history(text: str, name: str) -> History:
    """Parse a writer log (or several, concatenated: each starts with its ``B`` line).

    An ``I`` line without its outcome before the next boot or the end is an open attempt; a
    ``B`` line of the boot already current (a migration destination's log after its
    source's) continues it, and the destination may answer the source's last ``I``.
    """
    h = History(name)
    boot = ""
    open_issue: tuple[int, float] | None = None

    def close_open() -> None:
        nonlocal open_issue
        if open_issue is not None:
            h.attempts.append(Attempt(open_issue[0], open_issue[1], None, False, boot=boot))
            open_issue = None

    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            if parts[0] == "B" and len(parts) == 3:
                t_boot = float(parts[2])
                new = "" if parts[1] == "-" else parts[1]  # "-": a writer without boot id
                if new != boot:
                    close_open()
                    boot = new
                h.boot_marks.setdefault(boot, t_boot)
            elif parts[0] == "I" and len(parts) == 3:
                open_issue = (int(parts[1]), float(parts[2]))
            elif parts[0] == "A" and len(parts) == 4:
                h.attempts.append(Attempt(int(parts[1]), float(parts[2]), float(parts[3]), True,
                                          boot=boot))
                open_issue = None
            elif parts[0] == "E" and len(parts) == 5:
                h.attempts.append(Attempt(int(parts[1]), float(parts[2]), float(parts[3]),
                                          False, parts[4], boot=boot))
                open_issue = None
        except ValueError:
            continue  # a torn last line of a killed writer
    close_open()
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
class BootSpan:
    """One boot's writes on the disk, in the harness's times (see :func:`boot_spans`)."""

    boot: str
    first_issue: float  # the earliest attempt of the boot (acknowledged or not)
    first_seq: int  # that attempt's seq
    first_ack: float | None  # None: nothing of this boot was acknowledged
    last_ack: float | None
    last_seq: int | None  # the seq acknowledged last
    acked: int

    @property
    def order_key(self) -> float:
        """Boots are ordered by their first acknowledged write; a boot with none by its
        first attempt."""
        return self.first_ack if self.first_ack is not None else self.first_issue


def boot_spans(h: History) -> list[BootSpan]:
    """Every boot with at least one attempt, oldest first (by :attr:`BootSpan.order_key`)."""
    by_boot: dict[str, list[Attempt]] = {}
    for a in h.attempts:
        by_boot.setdefault(a.boot, []).append(a)
    spans = []
    for boot, atts in by_boot.items():
        first = min(atts, key=lambda a: a.t_issue)
        acks = [a for a in atts if a.ok and a.t_end is not None]
        last = max(acks, key=lambda a: a.t_end or 0.0) if acks else None
        spans.append(BootSpan(boot, first.t_issue, first.seq,
                              min((a.t_end or 0.0) for a in acks) if acks else None,
                              last.t_end if last else None, last.seq if last else None,
                              len(acks)))
    return sorted(spans, key=lambda b: (b.order_key, b.boot))


@dataclass(frozen=True)
class BootOverlap:
    """A finding: two boots of one VM wrote its disk at the same time (the VM ran twice).

    ``kind`` ``acked_while_newer_ran``: boot ``older`` acknowledged record ``seq_older`` at
    ``t_older``, after boot ``newer`` had issued its first write (``seq_newer`` at
    ``t_newer``); ``count`` of the older boot's acknowledgements came that late.
    ``stale_record``: a brick (``where``) holds boot ``older``'s record ``seq_older`` where
    boot ``newer`` had acknowledged record ``seq_newer`` (the same offset) at ``t_newer``:
    the older writer wrote after the newer one's acknowledgement (``t_older`` NaN: the
    brick does not say when); ``count`` offsets so in that place.
    """

    vm: str
    disk: str
    kind: str  # acked_while_newer_ran | stale_record
    older: str
    newer: str
    seq_older: int
    t_older: float
    seq_newer: int
    t_newer: float
    count: int = 1
    where: str = ""

    def describe(self, t0: float = 0.0) -> str:
        if self.kind == "acked_while_newer_ran":
            return (f"{self.vm} ran twice on disk {self.disk}: boot {self.older} acknowledged "
                    f"record {self.seq_older} at {self.t_older - t0:.3f} s, after boot "
                    f"{self.newer} issued record {self.seq_newer} at {self.t_newer - t0:.3f} s "
                    f"({self.count} acknowledgements of {self.older} that late; harness "
                    f"clock)")
        return (f"{self.vm} ran twice on disk {self.disk}: {self.where} holds boot "
                f"{self.older}'s record {self.seq_older} over boot {self.newer}'s record "
                f"{self.seq_newer}, acknowledged at {self.t_newer - t0:.3f} s ({self.count} "
                "records so)")


def time_overlaps(h: History, disk: str, spans: list[BootSpan] | None = None
                  ) -> list[BootOverlap]:
    """Boots whose writes overlap in time: an older boot acknowledged a record after a
    newer boot (ordered by first acknowledged write) issued its first write.

    The times are the harness's: a guest agent's lines are stamped on arrival
    (:mod:`hcisim.lab.guests.agentlink`), so an acknowledgement's stamp is at or after the
    record was durable and an issue's stamp at or after the guest announced the write, on
    one clock for every host of the lab (namespaces share the machine's clock). The guest's
    own clock cannot order two boots: each boot's clock starts anew (and stops while the VM
    is paused). Only a delivery delay of the older boot's last line longer than the gap
    between the boots could flag two boots that did not overlap (sub-millisecond here,
    against the seconds a restart takes).
    """
    spans = boot_spans(h) if spans is None else spans
    out = []
    for i, old in enumerate(spans):
        if old.last_ack is None:
            continue
        for new in spans[i + 1:]:
            if old.last_ack > new.first_issue:
                late = [a for a in h.attempts if a.boot == old.boot and a.ok
                        and a.t_end is not None and a.t_end > new.first_issue]
                assert old.last_seq is not None
                out.append(BootOverlap(h.name, disk, "acked_while_newer_ran", old.boot,
                                       new.boot, old.last_seq, old.last_ack, new.first_seq,
                                       new.first_issue, len(late)))
    return out


def parse_record(data: bytes, name: str, size: int) -> tuple[int, str] | None:
    """(seq, boot) of a whole, intact record of writer ``name``; None for anything else."""
    prefix = f"{name}:".encode()
    if len(data) != size or not data.startswith(prefix):
        return None
    fields = data[len(prefix):].split(b":", 2)
    try:
        seq = int(fields[0])
    except ValueError:
        return None
    boot = fields[1].decode(errors="replace") if len(fields) == 3 else ""
    try:
        ok = record(name, seq, size, boot) == data
    except ValueError:
        return None
    return (seq, boot) if ok else None


@dataclass(frozen=True)
class Expected:
    """What may lie at one offset: the newest boot's acknowledged record, or what a boot
    newer still wrote there unacknowledged: its own record, or (a writer of whole blocks)
    the zeros past its last record in a block it wrote."""

    newest: str  # the boot whose acknowledged record is the newest at this offset
    t_ack: float  # when it was acknowledged
    accepted: frozenset[str]  # boots whose record counts as a good copy here
    zeros_ok: bool = False  # a newer boot wrote this record's block


def expected_records(h: History, spans: list[BootSpan], per_block: int = 1
                     ) -> dict[int, Expected]:
    """Per acknowledged offset, what counts as a good copy; ``per_block`` records share one
    write (the guest agent writes its 512-byte sector whole: the records before the
    current one, and zeros after it)."""
    rank = {b.boot: i for i, b in enumerate(spans)}
    newest: dict[int, Attempt] = {}
    for a in h.acked:
        cur = newest.get(a.seq)
        if cur is None or rank[a.boot] > rank[cur.boot]:
            newest[a.seq] = a
    tried: dict[int, set[str]] = {}
    in_block: dict[int, set[str]] = {}
    for a in h.attempts:
        tried.setdefault(a.seq, set()).add(a.boot)
        in_block.setdefault(a.seq // per_block, set()).add(a.boot)
    out = {}
    for seq, a in newest.items():
        later = {b for b in tried[seq] if rank[b] > rank[a.boot]}
        over = any(rank[b] > rank[a.boot] for b in in_block[seq // per_block])
        out[seq] = Expected(a.boot, a.t_end or 0.0, frozenset({a.boot, *later}), over)
    return out


@dataclass(frozen=True)
class CheckResult:
    """Per acknowledged record: on how many data bricks it is intact, readable by a client.

    Keyed by seq (an offset of the disk): a record of an older boot that a newer boot
    rewrote counts by the newer boot's record there (superseded, not lost). ``overlaps``
    are the "ran twice" findings (:class:`BootOverlap`), empty when the boots wrote one
    after the other.
    """

    name: str
    size: int
    acked: list[Attempt]
    copies: dict[int, int]
    readable: dict[int, bool] | None  # None: the client mount could not be read at all
    boots: list[BootSpan] = field(default_factory=list)
    overlaps: list[BootOverlap] = field(default_factory=list)

    def lost(self, seq: int) -> bool:
        if self.copies.get(seq, 0) == 0:
            return True
        return self.readable is not None and not self.readable.get(seq, False)

    @property
    def lost_count(self) -> int:
        """Acknowledged offsets whose newest record is on no brick (or unreadable)."""
        return len({a.seq for a in self.acked if self.lost(a.seq)})

    @property
    def ran_twice(self) -> bool:
        return bool(self.overlaps)


def ran_twice_events(result: CheckResult, t0: float) -> list[tuple[float, str]]:
    """(time since ``t0``, detail) of each "ran twice" finding, for a ``vm_ran_twice``
    event: when the newer boot began writing, or acknowledged the record found overwritten."""
    return [(o.t_newer - t0, o.describe(t0)) for o in result.overlaps]


def history_summary(result: CheckResult, t0: float) -> dict[str, object]:
    """The run's history summary of one disk (``meta['history']``)."""
    return {"acked": len(result.acked), "lost": result.lost_count,
            "min_copies": min(result.copies.values(), default=None),
            "boots": [{"boot": b.boot, "acked": b.acked,
                       "first_write_s": round(b.first_issue - t0, 3),
                       "last_ack_s": None if b.last_ack is None else round(b.last_ack - t0, 3)}
                      for b in result.boots],
            "ran_twice": [o.describe(t0) for o in result.overlaps]}


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
          mount: Path | None, block: int = 0,
          since: Callable[[], History] | None = None) -> CheckResult:
    """Read ``relname.*`` on each data brick (and through ``mount``) and count good copies;
    find the boots that wrote at the same time (in the log, and on the bricks). ``block``:
    the bytes of one write when the writer writes whole blocks of records (the guest
    agent: its sector), else 0 (one record per write, the history writer).

    ``since``: for a disk whose writer still runs, the log read again *after* the bricks:
    its attempts (not its acknowledgements) may have overwritten what the first read's
    acknowledged, and count as writes of a newer boot there (a boot it alone knows is
    the newest)."""
    spans = boot_spans(h)
    rank = {b.boot: i for i, b in enumerate(spans)}
    per_block = max(block // size, 1)
    want = expected_records(h, spans, per_block)
    seqs = sorted(want)
    raw = [(str(b), _read_segments(b, relname, per_file, size, seqs) or {}) for b in data_bricks]
    got_m = _read_segments(mount, relname, per_file, size, seqs) if mount is not None else None
    if since is not None:
        want = _with_later_attempts(want, since().attempts, rank, per_block)
    zeros = b"\0" * size
    copies = dict.fromkeys(seqs, 0)
    stale: dict[tuple[str, str, str], list[tuple[int, float]]] = {}

    def judge(where: str, got: dict[int, bytes]) -> dict[int, bool]:
        good = {}
        for seq in seqs:
            data = got.get(seq)
            found = parse_record(data, h.name, size) if data is not None else None
            exp = want[seq]
            good[seq] = (found is not None and found[0] == seq and found[1] in exp.accepted
                         ) or (exp.zeros_ok and data == zeros)
            if found is not None and found[0] == seq and not good[seq] and \
                    rank.get(found[1], -1) < rank[exp.newest]:
                stale.setdefault((found[1], exp.newest, where), []).append((seq, exp.t_ack))
        return good

    for where, got in raw:
        for seq, ok in judge(where, got).items():
            copies[seq] += ok
    client = f"{mount} (client)"
    readable = judge(client, got_m) if got_m is not None else None
    overlaps = time_overlaps(h, relname, spans)
    overlaps += _stale_findings(h.name, relname, stale, rank, client if readable is not None
                                else None, len(data_bricks))
    return CheckResult(h.name, size, h.acked, copies, readable, spans, overlaps)


def _with_later_attempts(want: dict[int, Expected], later: list[Attempt],
                         rank: dict[str, int], per_block: int) -> dict[int, Expected]:
    """``want`` widened by attempts logged after the first read: a boot newer than an
    offset's newest (unknown boots are newest) that tried the offset, or its block."""
    newest = len(rank)
    tried: dict[int, set[str]] = {}
    in_block: dict[int, set[str]] = {}
    for a in later:
        tried.setdefault(a.seq, set()).add(a.boot)
        in_block.setdefault(a.seq // per_block, set()).add(a.boot)
    out = {}
    for seq, exp in want.items():
        k = rank[exp.newest]
        more = {b for b in tried.get(seq, set()) if rank.get(b, newest) > k}
        over = any(rank.get(b, newest) > k for b in in_block.get(seq // per_block, set()))
        out[seq] = Expected(exp.newest, exp.t_ack, exp.accepted | more, exp.zeros_ok or over)
    return out


def _stale_findings(vm: str, disk: str,
                    stale: dict[tuple[str, str, str], list[tuple[int, float]]],
                    rank: dict[str, int], client: str | None, n_bricks: int
                    ) -> list[BootOverlap]:
    """Older boots' records over newer boots' acknowledged ones, where the volume answers
    with them: as the client reads the disk, or (no client read) on at least half the data
    bricks. A record on a lone brick that missed the newer writes while it was cut off is
    a brick waiting for heal (fewer copies), not a second writer: a writer's record goes to
    every brick it reaches, and the volume's answer is what the VM would read."""
    by_pair: dict[tuple[str, str], dict[str, list[tuple[int, float]]]] = {}
    for (older, newer, where), hits in stale.items():
        by_pair.setdefault((older, newer), {})[where] = hits
    out = []
    for (older, newer), at in sorted(by_pair.items()):
        if client is not None:
            hits = at.get(client, [])
            where = client
        else:
            hits = [hit for place in at.values() for hit in place]
            where = ", ".join(sorted(at))
            if 2 * len(at) < n_bricks:
                hits = []
        if not hits:
            continue
        seq, t_ack = min(hits)
        out.append(BootOverlap(vm, disk, "stale_record",
                               older if older in rank else f"{older} (no log)", newer,
                               seq, math.nan, seq, t_ack, len({s for s, _ in hits}), where))
    return out


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
