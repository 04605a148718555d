"""Recording, kept outside the model's behaviour: piecewise-constant interval rows that are
extended while nothing changes, and the ledger that finds acknowledged writes whose every
copy was lost."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hcisim.model.io import DiskPlan
from hcisim.observations import Recorder

Values = tuple[Any, ...]
_NO_HOLDERS: frozenset[str] = frozenset()


@functools.cache
def _holders(write_bricks: tuple[str, ...]) -> frozenset[str]:
    return frozenset(write_bricks)


class WriteGroup:
    """A ledger group while its plans last (:meth:`WriteLedger.group`): (VM, volume), the
    plans of the VM's disks on it, who holds its acknowledged writes if any (copies, data
    bricks: what the first plan's status and write bricks say, worked out once, not at
    every change), and for a one-disk group the row it added bytes to at its last change,
    with that row's number and the disk's entries list, while the ledger's lists are
    those it saw then (``seen``): the next change extends that row directly."""

    __slots__ = ("copies", "entries", "holders", "index", "key", "plans", "row", "seen")

    def __init__(self, key: tuple[str, str], plans: list[DiskPlan], copies: int,
                 holders: frozenset[str]) -> None:
        self.key, self.plans, self.copies, self.holders = key, plans, copies, holders
        self.row: WriteRow | None = None
        self.index = -1
        self.entries: list[tuple[int, float]] = []
        self.seen = -1


class IntervalLog:
    """Open one interval per key; a new value closes it and opens the next.

    Keys are the integers ``0 .. size - 1`` (a run numbers what it logs once: its VM
    groups, its volumes), so the open intervals are list slots, not a dict. Finished rows
    are kept in :attr:`rows` as ``(key, t_start, t_end, values)`` in the order they were
    finished; the caller turns them into table columns once, at the end of the run,
    instead of building every row as it goes (the model's vm_io has a row per VM group at
    most changes). Values are compared with
    ``==``: a NaN in them must be the ``math.nan`` object (tuples compare items by identity
    first, so it then equals itself; a NaN computed elsewhere would open a new interval
    each time).
    """

    def __init__(self, size: int) -> None:
        self._start = [0.0] * size
        self._values: list[Values | None] = [None] * size
        # when each open interval was opened (a count): :meth:`close_all` closes them in
        # that order, oldest first
        self._opened_at = [0] * size
        self._opened = 0
        self.rows: list[tuple[int, float, float, Values]] = []

    def set(self, key: int, t: float, values: Values | None) -> None:
        """From ``t`` on, ``key`` has ``values`` (None: no row until the next value)."""
        cur = self._values[key]
        if cur is not None:
            if values is not None and cur == values:
                return
            t0 = self._start[key]
            if t > t0:
                self.rows.append((key, t0, t, cur))
        self._values[key] = values
        if values is not None:
            self._start[key] = t
            self._opened_at[key] = self._opened
            self._opened += 1

    def close_all(self, t: float) -> None:
        """Close every open interval at ``t``, in the order they were opened."""
        values, opened_at = self._values, self._opened_at
        for key in sorted([k for k, v in enumerate(values) if v is not None],
                          key=opened_at.__getitem__):
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
        self._regrouped = 0  # bumped when brick_lost_data / brick_in_sync move entries lists

    @staticmethod
    def group(key: tuple[str, str], plans: list[DiskPlan]) -> WriteGroup:
        """The ledger group of a VM's disks on a volume (``key``: VM, volume), for
        :meth:`accept_all` while these plans last: an ``ok`` first plan's writes are held
        by its write bricks, any other's by none."""
        first = plans[0]
        if first.status == "ok":
            return WriteGroup(key, plans, len(first.write_bricks), _holders(first.write_bricks))
        return WriteGroup(key, plans, 0, _NO_HOLDERS)

    def accept_all(self, t: float, groups: Sequence[WriteGroup]) -> None:
        """Take the writes of every group (:meth:`group`), acknowledged since its plans'
        ``since`` until ``t``, and start the plans' next interval at ``t``. A group's
        writes are held by the data bricks its plans write to (none: nothing acknowledged
        or not ``ok``); they extend the group's open row if nothing but time changed, else
        open a new row. One call per change for all groups: this runs for every writing VM
        at every change.

        A one-disk group that added bytes to a row at its last change and has bytes again
        extends that row directly: the same plans hold the same copies, quorum and bricks,
        and the row ends where this interval starts (its plan's ``since``), so the checks
        below would pass; the same additions are made."""
        open_, rows, by_holders, regrouped = self._open, self.rows, self._groups, self._regrouped
        for grp in groups:
            plans = grp.plans
            first = plans[0]
            t0 = first.since
            if t <= t0:
                continue
            items: Iterable[tuple[str, float]]
            if len(plans) == 1:  # most VMs have one disk on a volume
                b = first.acked_bytes
                acked = b > 0
                row_ = grp.row
                if acked and row_ is not None and grp.seen == regrouped:
                    first.since, first.acked_bytes = t, 0.0
                    row_.t_end_s = t
                    got = row_.by_disk
                    disk = first.disk.key
                    got[disk] = got[disk] + b
                    entries = grp.entries
                    entries[-1] = (grp.index, entries[-1][1] + b)
                    continue
                grp.row = None
                items = ((first.disk.key, b),)
            else:
                by_disk = {p.disk.key: p.acked_bytes for p in plans}
                acked = sum(by_disk.values()) > 0  # bytes are never negative
                items = by_disk.items()
            key = grp.key
            copies, holders = (grp.copies, grp.holders) if acked else (0, _NO_HOLDERS)
            quorum = first.quorum
            for p in plans:
                p.since, p.acked_bytes = t, 0.0
            opened = open_.get(key)
            # a row's acked bytes are positive iff it holds a disk (only positive bytes are
            # kept)
            if opened is not None:
                i, row = opened
                if (row.copies != copies or row.quorum != quorum or row.holders != holders
                        or abs(row.t_end_s - t0) > 1e-9 or bool(row.by_disk) != acked):
                    opened = None
            if opened is None:
                row = WriteRow(key[0], key[1], t0, t, copies, quorum, holders)
                rows.append(row)
                i = len(rows) - 1
                open_[key] = (i, row)
            row.t_end_s = t
            if not acked:
                continue  # nothing positive to add
            got = row.by_disk
            for disk, b in items:
                if b <= 0:
                    continue
                got[disk] = got.get(disk, 0.0) + b
                of_disk = by_holders.get(disk)
                if of_disk is None:
                    of_disk = by_holders[disk] = {}
                held = of_disk.get(holders)
                if held is None:
                    held = of_disk[holders] = [(i, b)]
                elif held and held[-1][0] == i:
                    held[-1] = (i, held[-1][1] + b)
                else:
                    held.append((i, b))
                if len(plans) == 1:
                    grp.row, grp.index, grp.entries, grp.seen = row, i, held, regrouped

    def brick_lost_data(self, disk: str, brick: str) -> float:
        """``brick`` lost its copy of ``disk``; returns bytes that now have no copy."""
        self._regrouped += 1
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
        self._regrouped += 1
        groups = self._groups.get(disk, {})
        merged: dict[frozenset[str], list[tuple[int, float]]] = {}
        for holders, entries in groups.items():
            merged.setdefault(holders | {brick}, []).extend(entries)
        self._groups[disk] = merged

    def emit(self, rec: Recorder) -> None:
        for r in self.rows:
            rec.add("writes", r.vm, r.volume, r.t_start_s, r.t_end_s, r.acked_bytes, r.copies,
                    r.quorum, r.lost_bytes)
