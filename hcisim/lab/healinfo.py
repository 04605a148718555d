"""Pending heal per brick: glfsheal's listing, turned into bytes each brick must receive.

glfsheal lists, under each brick, the entries in that brick's heal index: files that brick
holds good data for while another brick missed writes (it is a *source*). The schema wants
the opposite side, bytes a brick still has to *receive*. So for each listed entry:

- the sinks are the bricks the source blames in its AFR changelog xattrs
  (``trusted.afr.VOL-client-N``: data, metadata, entry counters, 3 x big-endian 32 bit);
  if the xattrs cannot be read, the sinks are the volume's bricks that did not list it.
  An entry that blames nobody is a write in flight (only ``trusted.afr.dirty`` is set:
  every AFR transaction indexes its file for a moment) and has no sink;
- the bytes are what a full data heal copies: the entry's allocated size on the source brick
  (``min(st_size, st_blocks*512)``; data-self-heal-algorithm ``full`` copies each shard whole
  and skips holes), only if the data counter blames the sink, and never to an arbiter
  (it holds no data). Shards are separate entries (``/.shard/GFID.N``), each counted alone.

This is an estimate of heal traffic, not a measurement of it; it is exact for the files the
history writer and fio write (dense shards), and an upper bound for partly written shards.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BrickListing:
    name: str  # ADDR:/path as glusterd names it
    status: str
    entries: list[str] = field(default_factory=list)
    count: int | None = None

    @property
    def connected(self) -> bool:
        return self.status == "Connected"


@dataclass(frozen=True)
class BrickRef:
    index: int
    name: str
    path: Path
    arbiter: bool


@dataclass
class Pending:
    bytes: float = 0.0
    entries: int = 0


_SUFFIXES = (" - Possibly undergoing heal", " - Is in split-brain")


def parse_glfsheal(text: str) -> list[BrickListing]:
    """Parse the plain output of ``glfsheal VOL [glusterd-sock S]`` (heal info)."""
    bricks: list[BrickListing] = []
    cur: BrickListing | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if raw.startswith("Brick "):
            cur = BrickListing(name=raw[len("Brick "):].strip(), status="")
            bricks.append(cur)
        elif cur is None or not line:
            continue
        elif line.startswith("Status:"):
            cur.status = line[len("Status:"):].strip()
        elif line.startswith("Number of entries:"):
            value = line.rsplit(":", 1)[1].strip()
            cur.count = int(value) if value.isdigit() else None
        elif line.startswith(("/", "<gfid:")):
            for suffix in _SUFFIXES:
                if line.endswith(suffix):
                    line = line[: -len(suffix)]
            cur.entries.append(line.strip())
    return bricks


def entry_path(brick: Path, entry: str) -> Path:
    if entry.startswith("<gfid:") and entry.endswith(">"):
        gfid = entry[len("<gfid:"):-1]
        return brick / ".glusterfs" / gfid[:2] / gfid[2:4] / gfid
    return brick / entry.lstrip("/")


def data_bytes(path: Path) -> float:
    try:
        st = path.lstat()
    except OSError:
        return 0.0
    if not os.path.isfile(path):
        return 0.0
    return float(min(st.st_size, st.st_blocks * 512))


def blamed(path: Path, volume: str, n_bricks: int) -> dict[int, bool] | None:
    """Bricks blamed by this copy's changelog: index -> data pending.

    None when there is no changelog to read (no ``trusted.afr.*`` key at all, or xattrs
    unreadable); an empty dict when there is one and it blames nobody.
    """
    out: dict[int, bool] = {}
    seen = False
    keys = [(i, f"trusted.afr.{volume}-client-{i}") for i in range(n_bricks)]
    for i, key in [*keys, (-1, "trusted.afr.dirty")]:
        try:
            raw = os.getxattr(path, key, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (61, 95):  # ENODATA / ENOTSUP: this key not set
                continue
            return None
        seen = True
        if i >= 0 and len(raw) >= 12:
            data, meta, entry = struct.unpack(">III", raw[:12])
            if data or meta or entry:
                out[i] = data > 0
    return out if seen else None


def pending_by_brick(listing: list[BrickListing], bricks: list[BrickRef],
                     volume: str) -> dict[int, Pending]:
    """Bytes and entries each brick of ``volume`` must still receive (see module doc)."""
    by_name = {b.name: b for b in bricks}
    listed = [(by_name[bl.name], bl.entries) for bl in listing
              if bl.name in by_name and bl.connected]
    listed_on: dict[str, set[int]] = {}
    for src, names in listed:
        for entry in names:
            listed_on.setdefault(entry, set()).add(src.index)
    entries = []
    for src, names in listed:
        for entry in names:
            path = entry_path(src.path, entry)
            blame = blamed(path, volume, len(bricks))
            if blame is None:  # changelog unreadable: the bricks that did not list it
                blame = {b.index: True for b in bricks if b.index not in listed_on[entry]}
            entries.append((src.index, entry, data_bytes(path), blame))
    return owed({b.index: b.arbiter for b in bricks}, entries)


def owed(arbiter: dict[int, bool],
         entries: Iterable[tuple[int, str, float, dict[int, bool]]]) -> dict[int, Pending]:
    """Per brick index: what it must still receive, from (source index, entry, allocated
    bytes, blame) of each heal index entry. Each brick the blame names is a sink of the
    entry's bytes (an arbiter of none), once per sink (max over sources); an empty blame is
    a write in flight (only the dirty counter is set): no sink."""
    work: dict[str, dict[int, float]] = {}
    for src, entry, size, blame in entries:
        sinks = work.setdefault(entry, {})
        for idx, data_pending in blame.items():
            if idx == src or idx not in arbiter:
                continue
            nbytes = size if data_pending and not arbiter[idx] and not arbiter[src] else 0.0
            sinks[idx] = max(sinks.get(idx, 0.0), nbytes)
    result = {i: Pending() for i in arbiter}
    for sinks in work.values():
        for idx, nbytes in sinks.items():
            result[idx].bytes += nbytes
            result[idx].entries += 1
    return result
