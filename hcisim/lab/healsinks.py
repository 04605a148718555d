"""Heals into a brick that the heal index polls never attributed to it, from the daemons' log.

glfsheal's listing attributes an entry to the bricks its AFR changelog *blames*
(:mod:`hcisim.lab.healinfo`); an entry with only the ``dirty`` counter set blames nobody,
and the polls take it for a write in flight. That is also what a writer leaves behind when
it dies or loses its quorum in mid-transaction: AFR's pre-op set ``dirty`` on every brick it
writes to, eager-lock and the delayed post-op keep it set while the file is being written,
and nobody clears it. The self-heal daemons then heal such a file from one brick (chosen by
size and mtime: ``afr_selfheal_find_direction``) into *every other* brick, bricks that never
went away included (their log: ``Completed data selfheal on GFID. sources=[2] sinks=0 1``).
Read in the kept logs of the validation matrix (2026-11-30, 3 runs per case): every power
loss and partition of host2 healed all 16 shards of host2's VM disk that way, the NIC loss
(64 MiB shards) its 2 files; no brick crash, hang, disk failure or slowdown did (their
writers live on).

Two consequences for measuring: such a heal is an episode of its own on a brick that was up
throughout, and a brick a daemon healed into is no *reference* for the write-counter
method (:func:`hcisim.lab.healbytes.heal_received`: its counter grew by more than the
foreground writes; using it halved the arbiter case's bytes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from hcisim.lab.backend import Sample
from hcisim.lab.clientlog import HealLine
from hcisim.lab.healinfo import data_bytes, entry_path
from hcisim.lab.timeline import POLL_BRACKET_S, HealEpisode

# completions further apart than this are separate episodes (a daemon's sweep every
# second finds what is left at once; one heal's completions follow each other closely)
GAP_S = 5.0


def healed_into(logged: Sequence[HealLine], brick: int, set_size: int, lo: float,
                hi: float) -> list[HealLine]:
    """The data-heal completions into ``brick`` with ``lo < t <= hi``."""
    return [h for h in logged if h.done and h.kind == "data" and lo < h.t <= hi
            and brick in h.sink_bricks(set_size)]


def logged_episodes(logged: Sequence[HealLine], brick: int, set_size: int,
                    polled: Sequence[HealEpisode], since: float) -> list[HealEpisode]:
    """Heals into ``brick`` after ``since`` that no polled episode of it covers (within a
    second: the polls bracket a heal), grouped by ``GAP_S``; each runs from the first begin
    of one of its files to its last completion. ``bytes`` 0: the heal index never listed
    them (the caller measures them)."""
    done = sorted((h for h in healed_into(logged, brick, set_size, since, float("inf"))
                   if not any(e.start - POLL_BRACKET_S <= h.t <= e.end + POLL_BRACKET_S
                               for e in polled)),
                  key=lambda h: h.t)
    groups: list[list[HealLine]] = []
    for h in done:
        if groups and h.t - groups[-1][-1].t <= GAP_S:
            groups[-1].append(h)
        else:
            groups.append([h])
    out = []
    for g in groups:
        files = {h.gfid for h in g}
        lo = g[0].t - GAP_S
        begun = [h.t for h in logged if not h.done and h.gfid in files and lo <= h.t <= g[-1].t]
        out.append(HealEpisode(brick, min(begun, default=g[0].t), g[-1].t, 0.0, len(files)))
    return out


def logged_bytes(done: Sequence[HealLine], sizes: Mapping[str, float]) -> float | None:
    """What ``done`` copied: each file's allocated size on a source (a full data heal copies
    whole shards, holes skipped), once per completion. None if a size is unknown."""
    if not done or any(h.gfid not in sizes for h in done):
        return None
    return float(sum(sizes[h.gfid] for h in done))


def entry_sizes(samples: Sequence[Sample], bricks: Mapping[str, Sequence[Path]]
                ) -> dict[str, float]:
    """gfid -> allocated bytes, on the first data brick that has it, of every file a daemon
    completed a data heal of (``bricks``: each volume's data brick paths, readable here;
    a backend whose bricks are remote gives none and the sizes stay unknown). Read after
    the heal settled, while the lab is still up: every copy is the same again."""
    out: dict[str, float] = {}
    for s in samples:
        for _daemon, h in s.heals:
            if not h.done or h.kind != "data" or h.gfid in out:
                continue
            for brick in bricks.get(h.volume, ()):
                path = entry_path(brick, f"<gfid:{h.gfid}>")
                if path.exists():
                    out[h.gfid] = data_bytes(path)
                    break
    return out
