"""Turn the model's state at each change into observation rows (vm_io, volume_state,
exposure) and events. Behaviour never reads these records back. (vm_state is the compute
model's: :mod:`hcisim.model.compute.vmstate`.)"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd

from hcisim.model.clients import ClientViews
from hcisim.model.elaborate import BrickModel, Cluster, VolumeModel
from hcisim.model.fluid import FlowNetwork
from hcisim.model.gluster import has_client_quorum
from hcisim.model.heal import BrickHeal
from hcisim.model.io import DiskPlan, LatencyModel, closed_loop_latency
from hcisim.model.probes import IntervalLog, Values
from hcisim.model.selfheal import SelfHeal
from hcisim.model.world import World
from hcisim.observations import Recorder
from hcisim.observations.record import Column

_STATUS_RANK = {"error": 3, "stalled": 2, "ok": 1, "stopped": 0}
# What a run records of its VM disks' I/O:
# - "full": a vm_io row per (VM, volume) whenever its demand, rates, IOPS, latency or
#   status changed (latency moves with every rate on the disk's path, so most changes);
# - "intervals": a vm_io row per (VM, volume) only when its status changed (ok, stalled,
#   error, stopped), with NaN in every numeric column; for availability studies, which read
#   the status intervals only. Every other table is the same as with "full".
RecordLevel = Literal["full", "intervals"]
RECORD_LEVELS: tuple[RecordLevel, ...] = ("full", "intervals")
_STATUS_OF_RANK = {r: (s,) for s, r in _STATUS_RANK.items()}
# a vm_io group: its number (its vm_io log key), its VM, its volume, the plans of the VM's
# disks on that volume
Group = tuple[int, str, VolumeModel, tuple["DiskPlan", ...]]



def _mean_p99(lat_w: float, total_ios: float, p99: float) -> tuple[float, float]:
    """A vm_io row's mean latency (IO-weighted) and p99; NaN (no I/O) as the math.nan
    object, which equals itself in IntervalLog's change test."""
    if total_ios > 0:
        mean = lat_w / total_ios
    else:
        mean = p99 = math.nan
    if mean != mean:
        mean = math.nan
    if p99 != p99:
        p99 = math.nan
    return mean, p99

# per volume, what its volume_state records read at every settle: the volume, its name,
# its bricks' keys, its data bricks' heal books, each brick's heal books (None: the
# arbiter), each brick's (host, role), its data bricks with their places among its bricks
_VolumeBooks = tuple[VolumeModel, str, tuple[str, ...], tuple[BrickHeal, ...],
                     tuple[BrickHeal | None, ...], tuple[tuple[str, str], ...],
                     tuple[tuple[int, BrickModel], ...]]


def _volume_books(vol: VolumeModel, heal: SelfHeal) -> _VolumeBooks:
    return (vol, vol.name, tuple(b.key for b in vol.bricks),
            tuple(heal.of(b) for b in vol.data_bricks),
            tuple(heal.bricks.get(b.key) for b in vol.bricks),
            tuple((b.host, b.role) for b in vol.bricks),
            tuple((i, b) for i, b in enumerate(vol.bricks) if b.role == "data"))


def _hosts_up(vol: VolumeModel, up: tuple[bool, ...]) -> list[str]:
    """The hosts of ``vol``'s bricks that are ``up`` (a flag per brick, in order)."""
    return [b.host for b, u in zip(vol.bricks, up, strict=True) if u]


class RunRecords:
    def __init__(self, cluster: Cluster, rec: Recorder, level: RecordLevel = "full") -> None:
        if level not in RECORD_LEVELS:
            raise ValueError(f"record level {level!r}: one of {', '.join(RECORD_LEVELS)}")
        self.cluster = cluster
        self.rec = rec
        self.level = level
        self.up: dict[str, bool] = {b.key: True for v in cluster.volumes.values()
                                    for b in v.bricks}
        self._up_moved = True  # an up flag changed since the last settle's volume records
        # hosts a fault (one that cuts or stops, not one that slows) is hitting now, and
        # when the last one on each host ended: whose clients' views count (volume_bricks)
        self.hit: dict[str, int] = dict.fromkeys(cluster.hosts, 0)
        self.hit_end: dict[str, float] = {}
        self.hit_version = 0
        self.quorum: dict[str, bool] = dict.fromkeys(cluster.volumes, True)
        self.unavailable: dict[str, float] = dict.fromkeys(cluster.volumes, 0.0)
        self._last_sample: dict[str, Values] = {}
        # per volume, when last recorded: its bricks' up flags, and per data brick its
        # dirty counts' version and heal progress
        self._recorded: dict[str, tuple[tuple[bool, ...],
                                        tuple[tuple[int, float | None], ...]]] = {}
        self._quorum_of: dict[tuple[str, tuple[bool, ...]], bool] = {}  # by bricks up
        self._samples: dict[str, list[Values]] = {}
        # vm_io groups: the disks of one VM on one volume, in the order of cluster.disks,
        # numbered in that order (their vm_io log keys)
        by_key: dict[tuple[str, str], list[str]] = {}
        for d in cluster.disks:
            by_key.setdefault((d.vm, d.volume), []).append(d.key)
        self._group_keys = list(by_key)
        self._disk_groups = [(g, key[0], cluster.volumes[key[1]], tuple(keys))
                             for g, (key, keys) in enumerate(by_key.items())]
        self.vm_io = IntervalLog(len(self._disk_groups))
        self._volume_names = list(cluster.volumes)
        self._volume_index = {v: i for i, v in enumerate(self._volume_names)}
        self.exposure = IntervalLog(len(self._volume_names))
        self._sizes = {d.key: d.size_bytes for d in cluster.disks}  # VM disk -> bytes
        # per set of plans (see _groups_of): the groups to record at its first settle, those
        # to record at later ones, the VMs with a disk in error; per group the plans it was
        # last recorded with
        self._grouped_for: dict[str, DiskPlan] | None = None
        self._live: list[Group] = []
        self._errors: set[str] = set()
        self._recorded_plans: dict[int, tuple[DiskPlan, ...]] = {}
        self._solve_recorded = -1  # the solve (FlowNetwork.solver_calls) disks last saw
        self._heals_of: SelfHeal | None = None  # the heal _volume_books holds books of
        self._volume_books: list[_VolumeBooks] = []

    # --- bricks and volumes -------------------------------------------------------------
    def fault_hit(self, host: str, delta: int, t: float) -> None:
        """A fault that cuts or stops something on ``host`` started (+1) or ended (-1)."""
        self.hit[host] += delta
        self.hit_version += 1
        if delta < 0:
            self.hit_end[host] = t

    def _seen(self, views: ClientViews, c: str, volume: str, brick: str) -> bool | None:
        """What client ``c`` says of ``brick``: True connected (a loss not detected yet
        included), False seen going down, None not known: a client (re)started and not
        attached to it yet, or one whose disconnect came while a fault hit its own host
        (that says nothing of the brick)."""
        st = views.state(c, volume, brick)
        if st != "down":
            return True
        down = views.down_at.get((c, volume, brick))
        if down is None or (c in self.hit_end and down <= self.hit_end[c] + 1e-9):
            return None
        return False

    def volume_bricks(self, t: float, views: ClientViews, world: World) -> list[BrickModel]:
        """Update which bricks the clients see; returns the bricks that came back.

        The lab's rule (hcisim/lab/timeline.py), so that both engines' ``brick_up`` and
        ``volume_state`` are the same quantity: the views of running clients on hosts no
        fault is hitting (all running clients if every one is hit), of those only clients
        that see a majority of the bricks (if none does, all of them); a brick is down as
        soon as one of them has seen it go down, up when one sees it and none has seen it
        go down. No client running: whether the brick serves."""
        running = [c for c in self.cluster.hosts if world.running(c)]
        ref = [c for c in running if not self.hit[c]] or running
        back: list[BrickModel] = []
        for vol in self.cluster.volumes.values():
            seen = [[self._seen(views, c, vol.name, b.host) for b in vol.bricks] for c in ref]
            n = len(vol.bricks)
            ready = [s for s in seen if 2 * sum(1 for x in s if x) > n] or seen
            for i, b in enumerate(vol.bricks):
                if ready:
                    up = (not any(s[i] is False for s in ready)
                          and any(s[i] for s in ready))
                else:
                    up = world.brick_serving(b)
                if up == self.up[b.key]:
                    continue
                self.up[b.key] = up
                self._up_moved = True
                self.rec.event(t, "brick_up" if up else "brick_down", b.key)
                if up:
                    back.append(b)
        return back

    def volumes(self, t: float, heal: SelfHeal, sample: bool = False) -> None:
        """Volume quorum (brick count rules; the arbiter's per-file blame is judged per VM
        disk), volume_state rows when something changed, and exposure windows. ``sample``:
        a periodic sample during heal (rows for healing volumes only; nothing else changed)."""
        if self._heals_of is not heal:
            self._heals_of = heal
            self._volume_books = [_volume_books(vol, heal)
                                  for vol in self.cluster.volumes.values()]
        if not sample:
            # every volume was recorded with its key at the last settle: with no up flag
            # and no brick's dirty counts or heal progress moved since (the heal's
            # snapshot of this settle compared them), every key is the same: nothing to do
            if not (self._up_moved or heal.books_moved):
                return
            self._up_moved = False
        is_up = self.up
        for vol, name, keys, books, brick_books, brick_roles, data_at in self._volume_books:
            up = tuple([is_up[k] for k in keys])
            marks = tuple([(h.dirty_version, None if h.episode is None
                            else h.episode.healed_bytes) for h in books])
            key = (up, marks)
            if key == self._recorded.get(name) and not (
                    sample and any(m[1] is not None for m in marks)):
                # recorded before with the same bricks up, dirty counts and heal progress:
                # the same quorum, pending bytes and exposure, so no row and no event
                continue
            if not sample:
                self._recorded[name] = key
            q = self._quorum_of.get((name, up))
            if q is None:
                q = self._quorum_of[(name, up)] = has_client_quorum(vol, _hosts_up(vol, up), ())
            if q != self.quorum[name]:
                self.quorum[name] = q
                self.rec.event(t, "quorum_regained" if q else "quorum_lost", name,
                               "bricks up: " + ", ".join(_hosts_up(vol, up)))
            if sample and not any([h.episode for h in books]):
                continue
            pending = [0.0 if h is None else h.pending_bytes()
                       for h in brick_books]  # as heal.pending_bytes(b)
            state: Values = (up, q, tuple([round(p) for p in pending]))
            if sample or state != self._last_sample.get(name):
                self._last_sample[name] = state
                rows = self._samples.setdefault(name, [])
                while rows and rows[-1][0] == t:  # one sample per instant: the last word
                    rows.pop()
                rows.extend([(t, name, host, role, u, p, q) for (host, role), u, p
                             in zip(brick_roles, up, pending, strict=True)])
            if not sample:
                self._exposure(t, vol, heal, pending, up, data_at)

    def _exposure(self, t: float, vol: VolumeModel, heal: SelfHeal, pending: list[float],
                  up: tuple[bool, ...], data_at: tuple[tuple[int, BrickModel], ...]) -> None:
        """``pending``: bytes to heal per brick of ``vol`` (none: in sync); ``up``: its
        bricks' up flags; ``data_at``: its data bricks and their places among its bricks."""
        good = 0
        for i, b in data_at:
            if up[i] and (pending[i] <= 0 or self._unblamed_only(heal, b)):
                good += 1
        unavailable = self._unavailable(vol, heal)
        promised = len(vol.data_bricks)
        self.exposure.set(self._volume_index[vol.name], t,
                          (good, round(unavailable)) if good < promised else None)
        if unavailable > 0 and self.unavailable[vol.name] <= 0:
            self.rec.event(t, "data_unavailable", vol.name,
                           f"{unavailable:.0f} bytes have no good copy on a brick that is up")
        self.unavailable[vol.name] = unavailable

    @staticmethod
    def _unblamed_only(heal: SelfHeal, b: BrickModel) -> bool:
        """All ``b`` has pending is an interrupted writer's (dirty everywhere, nobody
        accused): it holds every acknowledged write, a good copy."""
        h = heal.of(b)
        return bool(h.unblamed) and not h.stale_map()

    def _unavailable(self, vol: VolumeModel, heal: SelfHeal) -> float:
        """Bytes of VM disks whose good copies are all on bricks that are down, while some
        stale data brick is up (the volume answers, but not with these writes). With no data
        brick up at all the volume is simply down: that is quorum loss, not counted here."""
        up_data = [b for b in vol.data_bricks if self.up[b.key]]
        if not up_data:
            return 0.0
        maps = [heal.stale_shards(b) for b in up_data]
        if not all(maps):  # an up data brick misses nothing: no disk in common (the sums
            return 0  # below of nothing: 0, an int, as ``sum`` gives and ``0 * shard_bytes``)
        common = set(maps[0]).intersection(*maps[1:])
        if not vol.spec.options.shard:  # a pending image is unreadable as a whole
            return sum(self._sizes[d] for d in common)
        return sum(min(m[d] for m in maps) for d in common) * vol.shard_bytes

    # --- VM disks and VMs ---------------------------------------------------------------
    def disks(self, t: float, plans: dict[str, DiskPlan], net: FlowNetwork,
              latency: LatencyModel) -> set[str]:
        """vm_io rows from the plans; returns the VMs with a disk in error (ENOTCONN).

        Only the groups whose row can have changed are visited (:meth:`_groups_of`): a
        group none of whose disks is ``ok`` has a row that depends on its plans alone
        (demand and status; no rate, no latency), so with the plans it was last recorded
        with it would write nothing. The others' rows move with the rates and latencies,
        which change only with a solve (``net.solver_calls``): with the plans and the
        solve of the last call (a timer that changed nothing, ~20 % of a month's changes)
        no row can change, and with the solve of the last call only the groups whose
        plans changed are visited."""
        if self.level == "intervals":
            return self._statuses(t, plans)
        first = plans is not self._grouped_for
        moved = net.solver_calls != self._solve_recorded
        self._solve_recorded = net.solver_calls
        if not (first or moved):
            return self._errors
        groups = self._groups_of(plans, moved) if first else self._live
        rate, of, log, known = net.rates.get, latency.of, self.vm_io, latency.loaded()
        rank_of, closed_loop, nan = _STATUS_RANK, closed_loop_latency, math.nan
        rows: dict[tuple[object, ...], Values] = {}  # rows of single ok disks, this settle
        for g, _vm, vol, group in groups:
            if len(group) == 1:  # most VMs have one disk on a volume: the same sums, unrolled
                p = group[0]
                status = p.status
                if status != "ok":
                    log.set(g, t, (0.0 + p.demand, 0.0, 0.0, 0.0, 0.0, nan, nan, status))
                    continue
                d = p.disk
                x = rate(d.flow, 0.0)
                # the row follows from these alone (the latency from the shape, the closed
                # loop from the queue depth, block, demand and rate): disks cloned from one
                # template on one host share it within a settle
                shape = p.shape_key
                if shape is None:
                    shape = latency.shape_key(p)
                asked = p.demand + p.catch_up_mb_s  # its demand (+ a catch-up's pull)
                row_key = (shape, d.write_frac, x, asked, d.queue_depth)
                row = rows.get(row_key)
                if row is None:
                    rf, wf = d.read_frac, d.write_frac
                    ios = x * 1e6 / d.block_bytes
                    riops, wiops = 0.0 + ios * rf, 0.0 + ios * wf
                    if ios > 0:
                        lat = closed_loop(known.get(shape) or of(vol, p), p, x)
                        lat_w, p99 = 0.0 + lat.mean_ms * ios, lat.p99_ms
                    else:
                        lat_w, p99 = 0.0, nan
                    mean, p99 = _mean_p99(lat_w, riops + wiops, p99)
                    row = rows[row_key] = (0.0 + asked, 0.0 + x * rf, 0.0 + x * wf, riops,
                                           wiops, mean, p99, status)
                log.set(g, t, row)
                continue
            demand = read = write = riops = wiops = lat_w = 0.0
            p99 = nan
            status = "stopped"
            rank = 0
            for p in group:
                demand += p.demand + p.catch_up_mb_s
                r_ = rank_of[p.status]
                if r_ > rank:
                    status, rank = p.status, r_
                if r_ != 1:  # not ok
                    continue
                d = p.disk
                x = rate(d.flow, 0.0)
                rf, wf = d.read_frac, d.write_frac
                read, write = read + x * rf, write + x * wf
                ios = x * 1e6 / d.block_bytes
                riops += ios * rf
                wiops += ios * wf
                if ios > 0:
                    lat = closed_loop(known.get(latency.shape_key(p)) or of(vol, p), p, x)
                    lat_w += lat.mean_ms * ios
                    p99 = lat.p99_ms if p99 != p99 else max(p99, lat.p99_ms)
            mean, p99 = _mean_p99(lat_w, riops + wiops, p99)
            log.set(g, t, (demand, read, write, riops, wiops, mean, p99, status))
        return self._errors

    def _groups_of(self, plans: dict[str, DiskPlan], moved: bool = True) -> list[Group]:
        """The vm_io groups to record at the first settle with a new set of plans: those
        whose plans changed since they were last recorded (a plan object is kept while
        nothing it depends on changed, so ``is`` tells) and, if the rates ``moved`` since,
        those with a disk ``ok``, in the order of the groups; later settles with the same
        plans record only the groups with a disk ``ok`` (``_live``). At the "intervals"
        level no group is live (a status depends on the plans alone). Also the VMs with a
        disk in error (``_errors``)."""
        self._grouped_for = plans
        first: list[Group] = []
        live: list[Group] = []
        errors: set[str] = set()
        recorded, rates = self._recorded_plans, self.level == "full"
        for g, vm, vol, keys in self._disk_groups:
            last = recorded.get(g)
            if len(keys) == 1:  # most VMs have one disk on a volume
                p = plans[keys[0]]
                status = p.status
                if status == "error":
                    errors.add(vm)
                if rates and status == "ok":
                    same = last is not None and last[0] is p
                    entry = (g, vm, vol, last if last is not None and same else (p,))
                    live.append(entry)
                    if moved or not same:
                        first.append(entry)
                elif last is None or last[0] is not p:
                    entry = (g, vm, vol, (p,))
                    first.append(entry)
                else:
                    continue
                recorded[g] = entry[3]
                continue
            group = tuple([plans[k] for k in keys])
            statuses = [p.status for p in group]
            if "error" in statuses:
                errors.add(vm)
            recorded[g] = group
            changed = last is None or any(a is not b for a, b in zip(last, group, strict=True))
            if rates and "ok" in statuses:
                live.append((g, vm, vol, group))
            if changed or (moved and rates and "ok" in statuses):
                first.append((g, vm, vol, group))
        self._live, self._errors = live, errors
        return first

    def _statuses(self, t: float, plans: dict[str, DiskPlan]) -> set[str]:
        """:meth:`disks` at the "intervals" level: the status of each (VM, volume) only
        (the worst of its disks'), no rates or latency; only the groups whose plans changed
        (:meth:`_groups_of`); with the very plans of the last call, none."""
        if plans is self._grouped_for:
            return self._errors
        log, rank_of = self.vm_io, _STATUS_RANK
        for g, _vm, _vol, group in self._groups_of(plans):
            rank = (rank_of[group[0].status] if len(group) == 1
                    else max([rank_of[p.status] for p in group]))
            log.set(g, t, _STATUS_OF_RANK[rank])
        return self._errors

    def close(self, t: float, heal: SelfHeal) -> None:
        self._last_sample.clear()  # a final row for every volume
        self._recorded.clear()
        self._up_moved = True
        self.volumes(t, heal)
        for rows in self._samples.values():
            for row in rows:
                self.rec.add("volume_state", *row)
        self.vm_io.close_all(t)
        self.exposure.close_all(t)
        self._emit_vm_io()
        names = self._volume_names
        for key, t0, t1, v in self.exposure.rows:
            self.rec.add("exposure", names[key], t0, t1, v[0], v[1])

    def _emit_vm_io(self) -> None:
        """The vm_io table from the log's finished rows, column by column (at the
        "intervals" level a row's values are its status alone: NaN rates and latency)."""
        rows = self.vm_io.rows
        if not rows:
            return
        keys, t0, t1, values = zip(*rows, strict=True)
        # the names as string arrays of the groups', taken by group number (not a Python
        # string per row for pandas to convert)
        at = np.array(keys, dtype=np.intp)
        vms, volumes = (pd.array([k[i] for k in self._group_keys], dtype=pd.StringDtype())
                        .take(at) for i in (0, 1))
        columns: list[Column]
        if self.level == "full":
            columns = list(zip(*values, strict=True))
        else:
            nans = [math.nan] * len(rows)
            columns = [*([nans] * 7), [v[0] for v in values]]
        self.rec.add_columns("vm_io", [vms, volumes, t0, t1, *columns])
