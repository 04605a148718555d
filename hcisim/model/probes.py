"""Recording, kept outside the model's behaviour: piecewise-constant interval rows that are
extended while nothing changes, and the ledger that finds acknowledged writes whose every
copy was lost."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from hcisim.observations import Recorder

Values = tuple[Any, ...]


class IntervalLog:
    """Open one interval per key; a new value closes it and opens the next.

    ``emit(key, t_start, t_end, values)`` writes the finished row, so one log serves every
    interval table whatever its column order. Values are compared with ``==``: a NaN in
    them must be the ``math.nan`` object (tuples compare items by identity first, so it
    then equals itself; a NaN computed elsewhere would open a new interval each time).
    """

    def __init__(self, emit: Callable[[Hashable, float, float, Values], None]) -> None:
        self._emit = emit
        self._open: dict[Hashable, tuple[float, Values]] = {}

    def set(self, key: Hashable, t: float, values: Values | None) -> None:
        """From ``t`` on, ``key`` has ``values`` (None: no row until the next value)."""
        cur = self._open.get(key)
        if cur is not None:
            if values is not None and cur[1] == values:
                return
            if t > cur[0]:
                self._emit(key, cur[0], t, cur[1])
            del self._open[key]
        if values is not None:
            self._open[key] = (t, values)

    def close_all(self, t: float) -> None:
        for key in list(self._open):
            self.set(key, t, None)


@dataclass
class WriteRow:
    vm: str
    volume: str
    t_start_s: float
    t_end_s: float
    copies: int
    quorum: bool
    holders: frozenset[str]
    by_disk: dict[str, float] = field(default_factory=dict)  # VM disk key -> acked bytes
    lost_bytes: float = 0.0

    @property
    def acked_bytes(self) -> float:
        return sum(self.by_disk.values())


class WriteLedger:
    """Acknowledged writes, and which data bricks still hold them.

    Rows are grouped per VM disk by the set of bricks holding them. A disk failure removes
    its brick from every group (a group left empty is lost); a brick that heals a disk fully
    joins every group of that disk. The groups are few (subsets of three bricks), so the
    cost does not grow with the number of rows except when a group is lost.
    """

    def __init__(self) -> None:
        self.rows: list[WriteRow] = []
        self._open: dict[tuple[str, str], tuple[int, WriteRow]] = {}  # (index, row)
        self._groups: dict[str, dict[frozenset[str], list[tuple[int, float]]]] = {}

    def accept(self, vm: str, volume: str, t0: float, t1: float, by_disk: dict[str, float],
               copies: int, quorum: bool, holders: frozenset[str], acked: bool) -> None:
        """Writes of a VM's disks on ``volume`` acknowledged in [t0, t1) on the data bricks
        ``holders`` (``by_disk``: bytes per VM disk; ``acked``: any of them > 0). Extends
        the open row if nothing but time changed."""
        key = (vm, volume)
        open_ = self._open.get(key)
        # a row's acked bytes are positive iff it holds a disk (only positive bytes are kept)
        if open_ is not None:
            i, row = open_
            if (row.copies != copies or row.quorum != quorum or row.holders != holders
                    or abs(row.t_end_s - t0) > 1e-9 or bool(row.by_disk) != acked):
                open_ = None
        if open_ is None:
            row = WriteRow(vm, volume, t0, t1, copies, quorum, holders)
            self.rows.append(row)
            i = len(self.rows) - 1
            self._open[key] = (i, row)
        row.t_end_s = t1
        if not acked:
            return  # nothing positive to add
        got, groups = row.by_disk, self._groups
        for disk, b in by_disk.items():
            if b <= 0:
                continue
            got[disk] = got.get(disk, 0.0) + b
            of_disk = groups.get(disk)
            if of_disk is None:
                of_disk = groups[disk] = {}
            entries = of_disk.get(holders)
            if entries is None:
                of_disk[holders] = [(i, b)]
            elif entries and entries[-1][0] == i:
                entries[-1] = (i, entries[-1][1] + b)
            else:
                entries.append((i, b))

    def brick_lost_data(self, disk: str, brick: str) -> float:
        """``brick`` lost its copy of ``disk``; returns bytes that now have no copy."""
        groups = self._groups.get(disk, {})
        lost = 0.0
        for holders in [h for h in groups if brick in h]:
            entries = groups.pop(holders)
            rest = holders - {brick}
            if rest:
                groups.setdefault(rest, []).extend(entries)
                continue
            for i, b in entries:
                self.rows[i].lost_bytes += b
                lost += b
        return lost

    def brick_in_sync(self, disk: str, brick: str) -> None:
        """``brick`` now holds every acknowledged write of ``disk``."""
        groups = self._groups.get(disk, {})
        merged: dict[frozenset[str], list[tuple[int, float]]] = {}
        for holders, entries in groups.items():
            merged.setdefault(holders | {brick}, []).extend(entries)
        self._groups[disk] = merged

    def emit(self, rec: Recorder) -> None:
        for r in self.rows:
            rec.add("writes", r.vm, r.volume, r.t_start_s, r.t_end_s, r.acked_bytes, r.copies,
                    r.quorum, r.lost_bytes)
