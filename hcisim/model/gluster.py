"""Gluster rules as pure functions: client quorum, arbiter blame, read hashing, server
quorum (semantics.md, lab-notes.md). When a silent loss is noticed is the ping timer's:
:mod:`hcisim.model.pingtimer`."""

from __future__ import annotations

import zlib
from collections.abc import Collection, Sequence

from hcisim.model.elaborate import VolumeModel


def has_client_quorum(vol: VolumeModel, up: Collection[str], blamed: Collection[str]) -> bool:
    """Whether a client that sees bricks ``up`` (host names) may read and write a file.

    ``blamed`` are data bricks the arbiter blames for this file (they missed writes).
    quorum-type auto (afr_has_quorum): more than half of the bricks up, or exactly half
    including the first brick. fixed: at least quorum-count up. none: any brick.
    Arbiter (arbiter.t): with only the arbiter and one data brick up, a blamed data brick
    means ENOTCONN; with no data brick up there is nothing to read or write.
    """
    opts = vol.spec.options
    n = len(vol.bricks)
    k = len(up)
    if opts.quorum_type == "auto":
        ok = 2 * k > n or (2 * k == n and vol.bricks[0].host in up)
    elif opts.quorum_type == "fixed":
        assert opts.quorum_count is not None
        ok = k >= opts.quorum_count
    else:
        ok = k >= 1
    data_up = [b.host for b in vol.data_bricks if b.host in up]
    if not data_up:
        return False
    arbiter = vol.arbiter
    if ok and arbiter is not None and arbiter.host in up and len(data_up) == 1:
        ok = data_up[0] not in blamed
    return ok


def read_brick(vm: str, volume: str, candidates: Sequence[str]) -> str | None:
    """The data brick a client reads this file from: a hash of the file over the bricks
    that are up and good (read-hash-mode 1 hashes the GFID; choose-local is off in the virt
    group, so the local brick gets no preference). crc32 is stable across runs, unlike
    Python's ``hash``."""
    if not candidates:
        return None
    return candidates[zlib.crc32(f"{volume}:{vm}".encode()) % len(candidates)]


def server_quorum_met(active: int, total: int, ratio_pct: float) -> bool:
    """glusterd server quorum: active peers (self included) are at least ratio of all."""
    return active * 100.0 >= ratio_pct * total
