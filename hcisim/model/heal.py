"""Dirty shards while a brick is away, and self-heal episodes that copy them back.

Dirty shards (fluid coupon collector). A VM disk whose writes land on ``N`` shards (its
hot set: ``write_hot_pct`` of the disk, all of it by default) receives ``k`` write I/Os
while a brick is away. If writes land on uniformly random offsets, each one misses a given
shard with probability ``1 - 1/N``, so the expected number of distinct shards written is
``N (1 - (1 - 1/N)^k)``. Starting from ``d`` already dirty shards (an earlier absence not yet
healed) the clean ones shrink by the same factor: ``d' = N - (N - d)(1 - 1/N)^k``. Sequential
writers fill shards one after another: ``d' = min(N, d + bytes / shard_size)``. Writes are
counted per change interval (rate × duration), never per I/O.

Heal. ``data-self-heal-algorithm full`` copies each dirty shard whole, so a heal episode
that finishes copies exactly ``shards × shard_size`` bytes. An episode starts with the
brick's dirty counts rounded up to whole shards (one write dirties a whole shard); it heals
them in a fixed order with up to ``shd_max_threads`` shards in flight. An interrupted
episode keeps only whole shards: the shard being copied starts again next time, as a full
heal of that file would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hcisim.model.elaborate import BrickModel

_EPS = 1e-9
# AFR's pre-op sets the ``dirty`` counter on every brick a write goes to; under eager-lock its
# post-op, which clears it, waits ``cluster.post-op-delay-secs`` (default 1: afr.c) after
# the last write to that file, and a write within it keeps it set (afr-transaction.c,
# afr_changelog_post_op). A writer that dies or loses its quorum leaves it set on every
# brick for each file (shard) it wrote in that last second: see BrickHeal.interrupted.
POST_OP_DELAY_S = 1.0


def dirty_after_random(dirty: float, shards: int, writes: float) -> float:
    """Expected dirty shards after ``writes`` random writes spread over ``shards`` shards
    (the file's hot set). ``dirty`` may exceed ``shards`` (a failed disk made the whole file
    dirty): dirty shards are counted inside the hot set first, so only its clean part can
    still be dirtied."""
    if writes <= 0:
        return dirty
    keep = math.exp(writes * math.log1p(-1.0 / shards)) if shards > 1 else 0.0
    clean = max(0.0, shards - dirty)
    return dirty + clean * (1.0 - keep)


def dirty_after_sequential(dirty: float, shards: int, written: float, shard_bytes: float) -> float:
    """A sequential writer fills the ``shards`` of its hot set one after another."""
    return min(max(float(shards), dirty), dirty + written / shard_bytes)


@dataclass
class HealEpisode:
    start_s: float
    source: str  # host of the good data brick the shards are read from
    plan: tuple[tuple[str, int], ...]  # (VM disk key, whole shards) in heal order
    healed_bytes: float = 0.0
    shards: int = field(init=False)  # whole shards in the plan (asked at every change)

    def __post_init__(self) -> None:
        self.shards = sum(n for _, n in self.plan)


@dataclass
class BrickHeal:
    """Heal bookkeeping of one data brick: what it misses, and the episode healing it."""

    brick: BrickModel
    shard_bytes: float
    dirty: dict[str, float] = field(default_factory=dict)  # VM disk key -> shards
    episode: HealEpisode | None = None
    ready_at: float | None = None  # when the self-heal daemon will pick it up
    # the daemon's next index sweep after a sweep that healed something (None: its loop
    # ended): what is pending then is healed then, not at the next crawl
    resweep_at: float | None = None
    # sum of ``dirty`` (None: to be summed again) and a count of its changes: every method
    # that changes ``dirty`` forgets the one and bumps the other, so that it is summed (and
    # the stale map derived) once per change of the dirty counts, not per question
    _dirty_sum: float | None = field(default=None, repr=False, compare=False)
    dirty_version: int = field(default=0, repr=False, compare=False)
    # shards written afresh, by clients that miss this brick, since the episode began: a
    # shard healed under such a writer is marked pending again by its next write (AFR's
    # post-op), so the episode cannot leave it in sync (calibration part 3b: a client back
    # late kept one VM disk's shards in the daemons' sweeps until it reconnected)
    rewritten: dict[str, float] = field(default_factory=dict, repr=False, compare=False)
    # VM disks pending here only because a writer was interrupted (dirty on every brick,
    # nobody accused): healed like the rest, but not stale (stale_map): AFR still reads
    # them here, the arbiter blames nobody for them, and the copy counts as good
    unblamed: set[str] = field(default_factory=set, repr=False, compare=False)
    # the brick's filesystem was lost (a failed disk replaced by an empty one): its own
    # index lost with it, so its own self-heal daemon has nothing to heal into it until
    # the daemons of the other bricks have healed it whole (:meth:`SelfHeal.healers`)
    index_lost: bool = field(default=False, repr=False, compare=False)

    # --- what is missing --------------------------------------------------------------
    def _done_by_disk(self) -> dict[str, float]:
        if self.episode is None:
            return {}
        left = self.episode.healed_bytes / self.shard_bytes
        done: dict[str, float] = {}
        for disk, n in self.episode.plan:
            take = min(float(n), left)
            done[disk] = take
            left -= take
        return done

    def pending_shards(self) -> float:
        total = self._dirty_sum
        if total is None:
            total = self._dirty_sum = sum(self.dirty.values())
        healed = 0.0 if self.episode is None else self.episode.healed_bytes / self.shard_bytes
        return max(0.0, total - healed)

    def pending_bytes(self) -> float:
        return self.pending_shards() * self.shard_bytes

    def stale_map(self) -> dict[str, float]:
        """Shards each VM disk still misses on this brick (only disks that miss some; not
        the ``unblamed``: their copy here is as good as any, only AFR's flag is set)."""
        done = self._done_by_disk()
        out = {}
        for disk, d in self.dirty.items():
            left = d - done.get(disk, 0.0)
            if left > _EPS and disk not in self.unblamed:
                out[disk] = left
        return out

    # --- accumulation while away --------------------------------------------------------
    def interrupted(self, disk: str, shards: int, written_bytes: float, writes: float,
                    random: bool) -> None:
        """A writer of ``disk`` died or lost its quorum with its last writes' post-op not
        done (:data:`POST_OP_DELAY_S`): the files (shards) those writes went to stay dirty
        on every brick and nobody is accused, so the self-heal daemon picks one source
        (AFR's tie-break among equal copies: the last data brick, as measured) and copies
        them into every other data brick, this one included (``sources=[2] sinks=0 1``)."""
        fresh = self.dirty.get(disk, 0.0) <= _EPS or disk in self.unblamed
        self.missed_writes(disk, shards, written_bytes, writes, random)
        if fresh:
            self.unblamed.add(disk)

    def missed_writes(self, disk: str, shards: int, written_bytes: float, writes: float,
                      random: bool) -> None:
        if self.unblamed:
            self.unblamed.discard(disk)  # a write it missed: accused from now on
        d = self.dirty.get(disk, 0.0)
        self._dirty_sum = None
        self.dirty_version += 1
        if random:
            self.dirty[disk] = dirty_after_random(d, shards, writes)
        else:
            self.dirty[disk] = dirty_after_sequential(d, shards, written_bytes, self.shard_bytes)
        if self.episode is not None:
            # only a write to a shard the episode has copied already dirties it again
            # (one not reached yet is copied with that write in it); the episode copies
            # the disks in plan order, so it is the disk's share healed so far
            planned = dict(self.episode.plan).get(disk, 0)
            healed = self._done_by_disk().get(disk, 0.0) if planned else 0.0
            if healed > _EPS:
                share = healed / planned
                r = self.rewritten.get(disk, 0.0)
                again = (dirty_after_random(r, shards, writes * share) if random else
                         dirty_after_sequential(r, shards, written_bytes * share,
                                                self.shard_bytes))
                self.rewritten[disk] = min(healed, again)

    def lose_everything(self, disk_shards: dict[str, int]) -> None:
        """The brick's filesystem failed: after repair every shard must be copied again."""
        self.episode = None
        self.index_lost = True
        self.unblamed.clear()
        self.dirty = {k: float(n) for k, n in disk_shards.items()}
        self._dirty_sum = None
        self.dirty_version += 1

    # --- episodes -----------------------------------------------------------------------
    def begin(self, t: float, source: str) -> HealEpisode:
        self.dirty = {k: float(math.ceil(v - _EPS)) for k, v in self.dirty.items()
                      if v > _EPS}
        self._dirty_sum = None
        self.dirty_version += 1
        plan = tuple((k, int(v)) for k, v in sorted(self.dirty.items()))
        self.episode = HealEpisode(t, source, plan)
        return self.episode

    def remaining_shards(self) -> float:
        if self.episode is None:
            return 0.0
        left = self.episode.shards - self.episode.healed_bytes / self.shard_bytes
        nearest = round(left)
        # Snap float noise so a milestone lands exactly on a shard boundary.
        return float(nearest) if abs(left - nearest) < 1e-7 else max(0.0, left)

    def threads(self, max_threads: int) -> int:
        """Shards copied in parallel: one per thread, fewer when fewer shards are left."""
        return min(max_threads, math.ceil(self.remaining_shards() - _EPS))

    def next_milestone_bytes(self, max_threads: int) -> float:
        """Bytes until the parallelism changes (a shard finishes below max threads) or done."""
        left = self.remaining_shards()
        target = math.ceil(left - _EPS) - 1.0 if left <= max_threads else float(max_threads)
        return max(0.0, (left - max(target, 0.0)) * self.shard_bytes)

    # --- what selfheal asks of an episode (whole-file heal overrides these) --------------
    def progress(self, copied_bytes: float) -> None:
        """The heal flow copied ``copied_bytes`` more (its shards in flight share them)."""
        ep = self.episode
        assert ep is not None
        ep.healed_bytes = min(ep.shards * self.shard_bytes, ep.healed_bytes + copied_bytes)

    def episode_bytes(self) -> float:
        ep = self.episode
        return 0.0 if ep is None else ep.shards * self.shard_bytes

    def entry_bytes(self) -> float:
        """Size of one entry a heal thread copies (a shard)."""
        return self.shard_bytes

    def done_so_far(self) -> tuple[int, float]:
        """Whole entries healed so far in the episode, and their bytes."""
        ep = self.episode
        assert ep is not None
        done = min(ep.shards, math.floor(ep.healed_bytes / self.shard_bytes + 1e-7))
        return done, done * self.shard_bytes

    def finish(self, complete: bool) -> tuple[HealEpisode, int, list[str]]:
        """End the episode: (episode, whole shards healed, VM disks now in sync)."""
        ep = self.episode
        assert ep is not None
        done = ep.shards if complete else math.floor(ep.healed_bytes / self.shard_bytes
                                                         + 1e-7)
        done = min(done, ep.shards)
        self._dirty_sum = None
        self.dirty_version += 1
        left = done
        clean: list[str] = []
        for disk, n in ep.plan:
            take = min(n, left)
            left -= take
            rest = max(self.dirty.get(disk, 0.0) - take, self.rewritten.get(disk, 0.0))
            if rest <= _EPS:
                self.dirty.pop(disk, None)
                self.unblamed.discard(disk)
                clean.append(disk)
            else:
                self.dirty[disk] = rest
        self.rewritten.clear()
        self.episode = None
        return ep, done, clean


@dataclass
class WholeFileHeal(BrickHeal):
    """Heal bookkeeping of a data brick of an unsharded volume (``features.shard off``): each
    VM disk is ONE file, so any write it missed makes the whole image pending, and a heal
    copies whole images (data-self-heal-algorithm full: ``afr_selfheal_data_do`` reads and
    writes every 128 KiB block of the file, afr-self-heal-data.c), one file per heal thread,
    up to ``max_threads`` files at once; a file interrupted half way starts again.

    ``dirty`` holds 1.0 per pending image; progress per image is in ``copied`` (bytes). The
    images in flight (the first ``max_threads`` unfinished ones of the plan) share the heal
    flow's rate equally: one thread each at the same speed.
    """

    sizes: dict[str, float] = field(default_factory=dict)  # VM disk key -> image bytes
    max_threads: int = 1
    copied: dict[str, float] = field(default_factory=dict)

    def _left(self, disk: str) -> float:
        return self.sizes[disk] - self.copied.get(disk, 0.0)

    def _unfinished(self) -> list[str]:
        if self.episode is None:
            return []
        return [d for d, _ in self.episode.plan if self._left(d) > _EPS * self.sizes[d]]

    def _in_flight(self) -> list[str]:
        return self._unfinished()[:self.max_threads]

    def pending_shards(self) -> float:
        done = sum(1 for d in self.dirty if self._left(d) <= _EPS * self.sizes[d])
        return float(len(self.dirty) - done)

    def pending_bytes(self) -> float:
        return sum(max(0.0, self._left(d)) for d in self.dirty)

    def stale_map(self) -> dict[str, float]:
        return {d: 1.0 for d in self.dirty
                if self._left(d) > _EPS * self.sizes[d] and d not in self.unblamed}

    def missed_writes(self, disk: str, shards: int, written_bytes: float, writes: float,
                      random: bool) -> None:
        if self.unblamed:
            self.unblamed.discard(disk)
        if written_bytes > 0 and self.episode is not None:
            self.rewritten[disk] = 1.0  # written while healed: pending again after it
        if written_bytes > 0 and self.dirty.get(disk) != 1.0:
            self.dirty[disk] = 1.0  # AFR marks the file: the whole image is pending
            self.copied.pop(disk, None)
            self._dirty_sum = None
            self.dirty_version += 1

    def lose_everything(self, disk_shards: dict[str, int]) -> None:
        super().lose_everything({d: 1 for d in disk_shards})
        self.copied = {}

    def begin(self, t: float, source: str) -> HealEpisode:
        self.copied = {}
        return super().begin(t, source)

    def remaining_shards(self) -> float:
        return float(len(self._unfinished()))

    def threads(self, max_threads: int) -> int:
        return min(max_threads, len(self._unfinished()))

    def progress(self, copied_bytes: float) -> None:
        ep = self.episode
        assert ep is not None
        flying = self._in_flight()
        for d in flying:
            self.copied[d] = min(self.sizes[d],
                                 self.copied.get(d, 0.0) + copied_bytes / len(flying))
        ep.healed_bytes = sum(self.copied.values())

    def episode_bytes(self) -> float:
        ep = self.episode
        return 0.0 if ep is None else sum(self.sizes[d] for d, _ in ep.plan)

    def entry_bytes(self) -> float:
        """Mean size of the images in flight (a per-entry cost spreads over an image)."""
        flying = self._in_flight()
        return sum(self.sizes[d] for d in flying) / len(flying) if flying else 1.0

    def next_milestone_bytes(self, max_threads: int) -> float:
        """Flow bytes until the first image in flight is done (the set in flight changes)."""
        flying = self._in_flight()
        return min(self._left(d) for d in flying) * len(flying) if flying else 0.0

    def done_so_far(self) -> tuple[int, float]:
        ep = self.episode
        assert ep is not None
        done = [d for d, _ in ep.plan if self._left(d) <= _EPS * self.sizes[d]]
        return len(done), sum(self.sizes[d] for d in done)

    def finish(self, complete: bool) -> tuple[HealEpisode, int, list[str]]:
        ep = self.episode
        assert ep is not None
        clean = [d for d, _ in ep.plan
                 if (complete or self._left(d) <= _EPS * self.sizes[d])
                 and d not in self.rewritten]
        for d in clean:
            self.dirty.pop(d, None)
            self.unblamed.discard(d)
        self.rewritten.clear()
        self.copied = {}  # a file interrupted half way is healed again from its start
        self._dirty_sum = None
        self.dirty_version += 1
        self.episode = None
        return ep, len(clean), clean
