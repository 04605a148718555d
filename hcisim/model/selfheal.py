"""The self-heal daemons: when a heal starts, its flow, its progress and its end.

A data brick with pending shards is healed from a good data brick (up, nothing pending)
by one heal flow: source disk read, source NIC tx, target NIC rx, target disk write, with
``min(shd_max_threads x healers, shards left)`` shards in flight at ``heal_thread_mb_s``
each (healers: the daemons of the volume's bricks, the target's own included, each
sweeping its own brick's index, :meth:`SelfHeal.healers`), at most ``heal_core_mb_s`` per
CPU core of the healers' hosts (heal is CPU work: on the 2-core netns lab 8 threads heal
no faster than 1), and at most ``heal_share`` of any resource on its path.
When may it start?

- a self-heal daemon saw one of its brick connections come back (CHILD_UP,
  :mod:`hcisim.model.shd`; the brick's own host's daemon too, unless the brick was replaced
  empty): it starts after
  ``heal_noticed_s``; after a hang, or a cut shorter than both sides' keepalive, its
  connections never dropped and nothing wakes it;
- the operator runs ``gluster volume heal`` at the repair (``Fault.heal_after_repair``),
  if a daemon is connected to the brick then (else its CHILD_UP wakes it, above);
- otherwise at the next periodic crawl, every ``cluster.heal-timeout`` from the start.

A daemon whose sweep healed something sweeps again a second later, and keeps at it while
a sweep heals something (``afr_shd_index_healer``: ``do { sweep_all; sleep(1); } while
(ret > 0)``, afr-self-heald.c): what still missed the brick while it was being healed
(writes of a client not reconnected yet) is healed at the next sweep, :data:`RESWEEP_S`
after the heal ended, not at the crawl. Measured on the lab: a second heal of one shard
2.8-3.8 s after a NIC loss's repair, the first having ended at 1.8-2.4 s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from hcisim.model.elaborate import BrickModel, Cluster, VmDiskModel, VolumeModel, disk_cost
from hcisim.model.fluid import FlowNetwork
from hcisim.model.heal import POST_OP_DELAY_S, BrickHeal, WholeFileHeal
from hcisim.model.healrate import HEAL_BLOCK, heal_cpu_mb_s, heal_thread_mb_s
from hcisim.model.probes import WriteLedger
from hcisim.model.shd import ShdConnections, ShdKey
from hcisim.model.world import World
from hcisim.observations import Recorder
from hcisim.scenario import ModelParams

RESWEEP_S = 1.0  # afr_shd_index_healer's sleep(1) between sweeps
_NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Repair:
    """The most recent repair: when, and whether the operator triggers heal."""

    t: float
    operator_heal: bool


class SelfHeal:
    def __init__(self, cluster: Cluster, world: World, net: FlowNetwork, params: ModelParams,
                 rec: Recorder, ledger: WriteLedger,
                 schedule: Callable[[float, Callable[[], None]], None]) -> None:
        self.cluster = cluster
        self.world = world
        self.net = net
        self.params = params
        self.rec = rec
        self.ledger = ledger
        self.schedule = schedule
        self.bricks: dict[str, BrickHeal] = {
            b.key: self._books(v, b) for v in cluster.volumes.values() for b in v.data_bricks}
        self._flow_names = {k: f"heal:{k}" for k in self.bricks}
        # every data brick with its volume, heal books and flow name, in volume order: the
        # loops that run at every change (reconcile, set_flows) walk this once
        self._targets = [(v, b, self.bricks[b.key], self._flow_names[b.key])
                         for v in cluster.volumes.values() for b in v.data_bricks]
        self._cores = {h.name: h.cores for h in cluster.scenario.hosts}  # heal_core_mb_s
        # entries in flight per brick being healed (shd-max-threads x healers), as set_flows
        # last set them: next_milestone asks the same settle's figure, not a second count
        self._parallel: dict[str, int] = {}
        self.last_repair: Repair | None = None
        self._stale: dict[str, dict[str, float]] = {}
        self._kept: dict[str, float] = {}  # brick key -> a wake judged again (_rejudge)
        self._stale_at: dict[str, tuple[int, float | None]] = {}  # (dirty version, healed)
        self._blamed: dict[str, frozenset[str]] = {}  # VM disk key -> hosts of stale bricks
        self.blamed_version = 0  # bumped when the blamed bricks of any VM disk changed
        # whether the last snapshot found any brick's dirty counts or heal progress moved
        # since the one before (else the volume records have nothing new to look at)
        self.books_moved = True
        self._on_net: set[str] = set()  # the heal flows set_flows put on the network
        # the daemons' own brick connections (their CHILD_UP wakes heal); a random stream
        # of its own, so the other draws of a run stay as they were
        self.shd = ShdConnections(cluster, world, np.random.default_rng(
            np.random.SeedSequence(cluster.scenario.seed, spawn_key=(1,))), schedule,
            params.reconnect_delay_s, params.reconnect_timer_s, params.syn_linear_timeouts,
            rec)
        self._world: Hashable = None  # the world fingerprint _copying holds for
        self._copying: dict[tuple[str, str], bool] = {}  # (source, target) -> can copy
        # heal paths by (source brick, target brick, capacity version): usage and limits
        self._paths: dict[tuple[str, str, int], tuple[dict[str, float], tuple[float, ...]]] = {}
        # per target brick, what the heal asked of the world and of its volume's books at
        # the last settle, and the answer: a heal milestone moves neither the world nor the
        # daemons' connections, and only the progress of the bricks being healed
        self._healers_of: dict[str, tuple[int, float]] = {}  # (healers, their cores)
        self._healers_for: tuple[Hashable, int] | None = None  # (world, shd.version)
        self._sources: dict[str, tuple[Hashable, tuple[tuple[int, float | None], ...],
                                       BrickModel | None]] = {}

    def _books(self, vol: VolumeModel, b: BrickModel) -> BrickHeal:
        """Sharded volumes heal shards; an unsharded one (``shard: false``) whole images."""
        if vol.spec.options.shard:
            return BrickHeal(b, float(vol.shard_bytes))
        sizes = {d.key: d.size_bytes for d in self.cluster.disks if d.volume == vol.name}
        return WholeFileHeal(b, float(vol.shard_bytes), sizes=sizes,
                             max_threads=vol.spec.options.shd_max_threads)

    def of(self, brick: BrickModel) -> BrickHeal:
        return self.bricks[brick.key]

    def snapshot(self) -> None:
        """Freeze which VM disks each brick misses, for the decisions of one settle (reads,
        arbiter blame, unavailable data): one pass per brick instead of one per question,
        and only for bricks whose dirty counts or heal progress moved since the last one."""
        changed = False  # whether any brick now misses another set of disks
        moved = False
        for k, h in self.bricks.items():
            ep = h.episode
            key = (h.dirty_version, None if ep is None else ep.healed_bytes)
            if self._stale_at.get(k) != key:
                self._stale_at[k] = key
                moved = True
                old = self._stale.get(k)
                new = self._stale[k] = h.stale_map()
                changed = changed or old is None or old.keys() != new.keys()
        self.books_moved = moved
        if not changed:
            return  # the same disks blamed on the same bricks
        by_disk: dict[str, set[str]] = {}
        for k, stale in self._stale.items():
            host = self.bricks[k].brick.host
            for disk in stale:
                by_disk.setdefault(disk, set()).add(host)
        blamed = {disk: frozenset(hosts) for disk, hosts in by_disk.items()}
        if blamed != self._blamed:
            self.blamed_version += 1
        self._blamed = blamed

    def blamed(self, disk: str) -> frozenset[str]:
        """Hosts of the data bricks that miss writes of VM disk ``disk`` (as of the last
        snapshot): not readable for it, and blamed by the arbiter."""
        return self._blamed.get(disk, _NONE)

    def stale_shards(self, brick: BrickModel) -> dict[str, float]:
        return self._stale.get(brick.key, {})

    def pending_bytes(self, brick: BrickModel) -> float:
        h = self.bricks.get(brick.key)
        return 0.0 if h is None else h.pending_bytes()

    def active(self) -> bool:
        return any([h.episode is not None for h in self.bricks.values()])

    def brick_back(self, brick: BrickModel, t: float) -> None:
        """The clients see ``brick`` again at ``t``: a reconnect after the repair itself
        (``reconnect_delay_s``) judges the wake again (the daemons' CHILD_UP, the crawl)."""
        rep = self.last_repair
        if rep is not None and t > rep.t + 1e-9:
            for b in self.cluster.volumes[brick.volume].data_bricks:
                h = self.bricks[b.key]
                if h.episode is None:
                    self._rejudge(h)

    def _rejudge(self, h: BrickHeal) -> None:
        """Judge ``h``'s wake again at the next reconcile. A sweep a daemon already has
        coming (woken by an earlier CHILD_UP) still comes: a later reconnect or CHILD_UP
        can only bring it earlier (kept until then, :meth:`_reconcile_brick`)."""
        if h.ready_at is not None:
            self._kept[h.brick.key] = h.ready_at
        h.ready_at = None

    # --- advance ------------------------------------------------------------------------
    def advance(self, dt: float) -> None:
        rates = self.net.rates
        for _, _, h, flow in self._targets:
            if h.episode is not None:
                h.progress(rates.get(flow, 0.0) * dt * 1e6)

    # --- start / stop -------------------------------------------------------------------
    def _flow(self, h: BrickHeal) -> str:
        """The name of ``h``'s heal flow on the network (formatted once per brick)."""
        return self._flow_names[h.brick.key]

    def _source(self, vol: VolumeModel, target: BrickModel) -> BrickModel | None:
        """A data brick to heal ``target`` from: serving, reachable, and missing nothing of
        what ``target`` misses (AFR chooses its sources per file: a brick pending heal of
        other files is a good source for these)."""
        usable = [b for b in vol.data_bricks
                  if b.host != target.host and self.world.brick_serving(b)
                  and self.world.link(b.host, target.host)]
        for b in usable:  # one in sync first
            if self.bricks[b.key].pending_shards() <= 0:
                return b
        wanted = set(self.bricks[target.key].stale_map()) if usable else set()
        for b in usable:
            if wanted.isdisjoint(self.bricks[b.key].stale_map()):
                return b
        return None

    def _source_now(self, vol: VolumeModel, target: BrickModel,
                    h: BrickHeal) -> BrickModel | None:
        """:meth:`_source` if ``target`` serves, else None; kept while the world and the
        volume's data bricks' books (dirty counts' version, heal progress: all that
        ``_source`` reads of them) are as they were. Only for sharded volumes, whose
        ``unblamed`` marks change with the dirty counts' version; not without the world's
        fingerprint (a caller of :meth:`reconcile` that gave none)."""
        world = self._world
        if world is None or type(h) is not BrickHeal:
            return self._source(vol, target) if self.world.brick_serving(target) else None
        bricks = self.bricks
        books = tuple([(x.dirty_version, None if x.episode is None else x.episode.healed_bytes)
                       for x in [bricks[b.key] for b in vol.data_bricks]])
        hit = self._sources.get(target.key)
        if hit is not None and hit[0] is world and hit[1] == books:
            return hit[2]
        source = self._source(vol, target) if self.world.brick_serving(target) else None
        self._sources[target.key] = (world, books, source)
        return source

    def writes_interrupted(self, disk: VmDiskModel, write_mb_s: float, t: float) -> None:
        """``disk``'s writer, writing ``write_mb_s``, died (its host lost power) or lost its
        client quorum: what it wrote in the last :data:`POST_OP_DELAY_S` is dirty on every
        brick, healed from the volume's last data brick into the others (measured in every
        power loss and partition of the validation matrix's kept daemon logs:
        ``sources=[2] sinks=0 1`` for all 16 shards of the faulted host's VM disk; the
        arbiter volume's ``sources=[1] sinks=0 2``: its last data brick, host2)."""
        vol = self.cluster.volumes[disk.volume]
        data = vol.data_bricks
        if write_mb_s <= 0 or len(data) < 2:
            return
        written = write_mb_s * 1e6 * POST_OP_DELAY_S
        writes = written / disk.block_bytes
        random = disk.profile is None or disk.profile.random
        for b in data[:-1]:
            self.bricks[b.key].interrupted(disk.key, disk.hot_shards, written, writes, random)
        self.rec.event(t, "writes_interrupted", f"{vol.name}/{disk.vm}",
                       f"{disk.key}: its last {POST_OP_DELAY_S:g} s of writes dirty on every "
                       f"brick; healed from {data[-1].host} into "
                       + ", ".join(b.host for b in data[:-1]))

    def _wake_time(self, vol: VolumeModel, target: BrickModel, t: float) -> float:
        period = vol.spec.options.heal_timeout_s
        crawl = (math.floor(t / period + 1e-9) + 1) * period
        options = [crawl]
        rep = self.last_repair
        if (rep is not None and abs(rep.t - t) < 1e-9 and rep.operator_heal
                and self._operator_heal(vol, target, t)):
            options.append(t)
        own = (target.host, vol.name, target.host)
        if self.shd.woke_at(vol.name, t, target.host) or (
                self._own_index(target) and self.shd.saw_childup(vol.name, target.host, t)
                and self._heals(vol, own)):  # its own daemon, once it reaches its brick too
            options.append(t + self.params.heal_noticed_s)
        h = self.bricks[target.key]
        if h.resweep_at is not None and t <= h.resweep_at + 1e-9:
            options.append(h.resweep_at)
        return min(options)

    def reconcile(self, t: float, world: Hashable = None) -> None:
        """Start, end or keep every brick's heal. ``world``: the world's fingerprint, if
        the caller has it (then what depends only on the world is asked once per world)."""
        if world is None or world != self._world:
            self._copying.clear()
            self._world = world
            self.shd.reconcile(t)
        if self.shd.woken:  # a daemon saw a CHILD_UP now: judge those volumes' wake again
            woken = set(self.shd.woken)
            self.shd.woken.clear()
            for name in woken:
                for b in self.cluster.volumes[name].data_bricks:
                    h = self.bricks[b.key]
                    if h.episode is None:
                        self._rejudge(h)
        for vol, target, h, _ in self._targets:
            if h.episode is None and not h.dirty:  # in sync (most bricks at most changes)
                h.ready_at = None
                continue
            self._reconcile_brick(vol, target, t)

    def _reconcile_brick(self, vol: VolumeModel, target: BrickModel, t: float) -> None:
        h = self.bricks[target.key]
        ep = h.episode
        if ep is None and not h.dirty:  # in sync (most bricks at most changes)
            h.ready_at = None
            return
        if ep is not None:
            src = vol.brick(ep.source)
            if h.remaining_shards() <= 0:
                self._end(vol, h, t, complete=True)
            elif not self._can_copy(src, target):
                self._end(vol, h, t, complete=False)
            else:
                return
        if h.resweep_at is not None and t > h.resweep_at + 1e-9:
            h.resweep_at = None  # that sweep found nothing for it: the loop ended
        if h.pending_shards() <= 0:
            h.ready_at = None
            return
        source = self._source_now(vol, target, h)
        if source is None:
            h.ready_at = None
            return
        if h.ready_at is None:
            h.ready_at = self._wake_time(vol, target, t)
            kept = self._kept.pop(target.key, None)
            if kept is not None and t - 1e-9 <= kept < h.ready_at:
                h.ready_at = kept
            if h.ready_at > t:
                self.schedule(h.ready_at - t, lambda: None)
        if t >= h.ready_at - 1e-9:
            h.ready_at = h.resweep_at = None
            ep = h.begin(t, source.host)
            self.rec.event(t, "heal_start", target.key,
                           f"{ep.shards} {'shards' if type(h) is BrickHeal else 'images'} "
                           f"({h.episode_bytes() / 1e9:.2f} GB) "
                           f"from {source.host}")

    def _can_copy(self, src: BrickModel, target: BrickModel) -> bool:
        """Both bricks serve and the link between them passes (memoised per world)."""
        key = (src.key, target.key)
        ok = self._copying.get(key)
        if ok is None:
            ok = self._copying[key] = (self.world.brick_serving(target)
                                       and self.world.brick_serving(src)
                                       and self.world.link(src.host, target.host))
        return ok

    def _end(self, vol: VolumeModel, h: BrickHeal, t: float, complete: bool) -> None:
        done_bytes = h.episode_bytes() if complete else h.done_so_far()[1]
        ep, done, clean = h.finish(complete)
        if complete:  # that sweep healed something: the daemon sweeps again
            h.resweep_at = t + RESWEEP_S
            if h.index_lost:  # healed whole: its own index tracks it again
                h.index_lost = False
                self._healers_of.pop(h.brick.key, None)
        self.net.remove_flow(self._flow(h))
        self._on_net.discard(self._flow(h))
        self.rec.add("heal", vol.name, h.brick.host, ep.start_s, t, done_bytes, done)
        for disk in clean:
            self.ledger.brick_in_sync(disk, h.brick.host)
        what = "complete" if complete else f"interrupted after {done} of {ep.shards} shards"
        self.rec.event(t, "heal_done", h.brick.key, what)

    def close(self, t: float) -> None:
        """End of run: record episodes still running, with the whole shards copied so far."""
        for h in self.bricks.values():
            ep = h.episode
            if ep is not None:
                done, done_bytes = h.done_so_far()
                self.rec.add("heal", h.brick.volume, h.brick.host, ep.start_s, t,
                             done_bytes, done)

    # --- flows --------------------------------------------------------------------------
    def healers(self, vol: VolumeModel, target: BrickModel) -> int:
        """Self-heal daemons healing ``target`` at once: one per brick of the volume (data
        or arbiter) whose host's daemon runs and is connected to ``target``, ``target``'s
        own host's daemon included unless its brick was replaced empty. Each daemon sweeps
        its own brick's index (afr-self-heald.c ``ASSERT_LOCAL``), with up to
        ``shd-max-threads`` entries in flight (an entry in two indices is healed once: the
        heal holds the file's lock, the second daemon finds it healed). Measured on the lab
        (the daemons' logs, calibration part 5 and the validation matrix of session 14):
        the daemons of host1 and host3 heal host2's shards side by side, and so does
        host2's own: 13-43 % of the entries after a brick crash, hang, partition or power
        loss, all 51 in a trial where it was the only one connected; none after a disk
        failure (the new brick's index is empty). At least one: the heal flow runs only
        while the source serves it."""
        return self._healers_and_cores(vol, target)[0]

    def _healers_and_cores(self, vol: VolumeModel, target: BrickModel) -> tuple[int, float]:
        """:meth:`healers`, and the CPU cores of the hosts whose daemons heal ``target``
        (none connected: the fewest of the other hosts', as the heal flow runs with one);
        one pass over the daemons for both (set_flows asks both at every change); at most
        ``heal_cpu_pool_cores`` where the hosts share one machine's (the netns lab: three
        daemons heal no faster in all than one alone, calibration part 5b)."""
        cores = [self._cores[key[0]] for key in self._daemons(vol, target)
                 if self._heals(vol, key)]
        pool = self.params.heal_cpu_pool_cores or math.inf  # hosts sharing one machine
        if cores:
            return len(cores), min(float(sum(cores)), pool)
        return 1, min(float(min((self._cores[b.host] for b in vol.bricks
                                 if b.host != target.host), default=1)), pool)

    def _own_index(self, target: BrickModel) -> bool:
        """Whether ``target``'s own daemon can heal it: its brick kept its index."""
        return not self.bricks[target.key].index_lost

    def _daemons(self, vol: VolumeModel, target: BrickModel) -> list[ShdKey]:
        """The connections to ``target`` of the running daemons that may heal it: those of
        its volume's other hosts, and its own host's while its brick kept its index."""
        own = self._own_index(target)
        return [(b.host, vol.name, target.host) for b in vol.bricks
                if (own or b.host != target.host) and self.world.running(b.host)]

    def _heals(self, vol: VolumeModel, key: ShdKey) -> bool:
        """Whether the daemon of ``key`` can heal its target now: connected to it, and (the
        target's own daemon, whose sources are elsewhere) to another brick of the volume."""
        usable = self.shd.usable
        if not usable(key):
            return False
        host, name, target = key
        return host != target or any(usable((host, name, b.host)) for b in vol.bricks
                                     if b.host != target)

    def _operator_heal(self, vol: VolumeModel, target: BrickModel, t: float) -> bool:
        """``gluster volume heal`` at ``t`` sets every daemon sweeping, so each sends on
        its connection to ``target`` (one to a host that rebooted gets its RST now).
        Whether one can heal ``target`` at once: none at a repair whose reconnect timer
        has not fired, nor over a reset connection (AFR heals only to children that are
        up); heal then waits for the daemons' CHILD_UP."""
        daemons = self._daemons(vol, target)
        for key in daemons:
            self.shd.send(t, key)
        return any([self._heals(vol, key) for key in daemons])

    def set_flows(self) -> None:
        net, core_mb_s, on_net = self.net, self.params.heal_core_mb_s, self._on_net
        for vol, target, h, flow in self._targets:
            if h.episode is None:
                if flow in on_net:  # (a flow not on the network has no rate either)
                    net.remove_flow(flow)
                    on_net.discard(flow)
                continue
            usage, limits = self._heal_path(vol, vol.brick(h.episode.source), target)
            healers, cores = self._healers_now(vol, target)
            k = self._parallel[target.key] = vol.spec.options.shd_max_threads * healers
            if isinstance(h, WholeFileHeal):
                h.max_threads = k  # images in flight, as progress() shares the flow
            n = h.threads(k)
            demand = n * self.thread_mb_s(h.entry_bytes())
            if core_mb_s > 0:  # heal is CPU work
                demand = min(demand, heal_cpu_mb_s(cores, core_mb_s, n,
                                                   self.params.heal_concurrency))
            for limit in limits:
                demand = min(demand, limit)
            net.add_flow(flow, demand, usage, weight=max(1, n))
            on_net.add(flow)

    def _healers_now(self, vol: VolumeModel, target: BrickModel) -> tuple[int, float]:
        """:meth:`_healers_and_cores`, kept per target while the world (as of this settle's
        reconcile) and the daemons' connections (``shd.version``) are as they were: a heal
        milestone, the most common change, moves neither."""
        world, version = self._world, self.shd.version
        if world is None:  # reconcile was given no fingerprint: nothing to key on
            return self._healers_and_cores(vol, target)
        if self._healers_for is None or self._healers_for[0] is not world \
                or self._healers_for[1] != version:
            self._healers_of.clear()
            self._healers_for = (world, version)
        hc = self._healers_of.get(target.key)
        if hc is None:
            hc = self._healers_of[target.key] = self._healers_and_cores(vol, target)
        return hc

    def thread_mb_s(self, shard_bytes: float) -> float:
        """One heal thread's mean rate with the profile's ``heal_thread_mb_s`` and
        ``heal_entry_s`` (:func:`hcisim.model.healrate.heal_thread_mb_s`)."""
        return heal_thread_mb_s(shard_bytes, self.params.heal_thread_mb_s,
                                self.params.heal_entry_s)

    def _heal_path(self, vol: VolumeModel, src: BrickModel,
                   target: BrickModel) -> tuple[dict[str, float], tuple[float, ...]]:
        """A heal flow's resource use per MB/s (source disk read, source NIC tx, target NIC
        rx, target disk write) and the most MB/s ``heal_share`` of each resource allows, in
        that order (memoised per capacity set; the usage mapping is shared, not copied)."""
        key = (src.key, target.key, self.net.capacity_version)
        hit = self._paths.get(key)
        if hit is None:
            usage = {src.disk_resource: disk_cost(src.disk, HEAL_BLOCK),
                     self.cluster.tx(src.host): 1.0, self.cluster.rx(target.host): 1.0}
            usage[target.disk_resource] = (usage.get(target.disk_resource, 0.0)
                                           + disk_cost(target.disk, HEAL_BLOCK))
            limits = tuple(self.params.heal_share * self.net.capacity(res) / a
                           for res, a in usage.items())
            hit = self._paths[key] = (usage, limits)
        return hit

    def next_milestone(self) -> float:
        """Seconds until some heal's parallelism changes or it completes (inf: none)."""
        best = math.inf
        rates = self.net.rates
        for _, target, h, flow in self._targets:
            if h.episode is None:
                continue
            rate = rates.get(flow, 0.0)
            if rate > 0:  # the parallelism set_flows gave the flow at this settle
                best = min(best, h.next_milestone_bytes(self._parallel[target.key])
                           / (rate * 1e6))
        return best

