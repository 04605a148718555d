"""Turn the model's state at each change into observation rows (vm_io, volume_state,
exposure) and events. Behaviour never reads these records back. (vm_state is the compute
model's: :mod:`hcisim.model.compute.vmstate`.)"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Literal

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
_NO_RATES = (math.nan,) * 7  # demand, read, write, read/write IOPS, latency, p99


class RunRecords:
    def __init__(self, cluster: Cluster, rec: Recorder, level: RecordLevel = "full") -> None:
        if level not in RECORD_LEVELS:
            raise ValueError(f"record level {level!r}: one of {', '.join(RECORD_LEVELS)}")
        self.cluster = cluster
        self.rec = rec
        self.level = level
        self.up: dict[str, bool] = {b.key: True for v in cluster.volumes.values()
                                    for b in v.bricks}
        self.quorum: dict[str, bool] = dict.fromkeys(cluster.volumes, True)
        self.unavailable: dict[str, float] = dict.fromkeys(cluster.volumes, 0.0)
        self._last_sample: dict[str, Values] = {}
        # per volume, when last recorded: its bricks' up flags, and per data brick its
        # dirty counts' version and heal progress
        self._recorded: dict[str, tuple[tuple[bool, ...],
                                        tuple[tuple[int, float | None], ...]]] = {}
        self._quorum_of: dict[tuple[str, tuple[bool, ...]], bool] = {}  # by bricks up
        self._samples: dict[str, list[Values]] = {}
        self.vm_io = IntervalLog(self._emit_vm_io if level == "full" else self._emit_vm_status)
        # vm_io groups: the disks of one VM on one volume, in the order of cluster.disks
        by_key: dict[tuple[str, str], list[str]] = {}
        for d in cluster.disks:
            by_key.setdefault((d.vm, d.volume), []).append(d.key)
        self._disk_groups = [(key, cluster.volumes[key[1]], tuple(keys))
                             for key, keys in by_key.items()]
        self.exposure = IntervalLog(self._emit_exposure)
        self._sizes = {d.key: d.size_bytes for d in cluster.disks}  # VM disk -> bytes
        self._grouped_for: dict[str, DiskPlan] | None = None
        self._grouped: list[tuple[tuple[str, str], VolumeModel, tuple[DiskPlan, ...]]] = []
        self._heals_of: SelfHeal | None = None  # the heal _volume_books holds books of
        self._volume_books: list[tuple[VolumeModel, str, tuple[str, ...],
                                       tuple[BrickHeal, ...]]] = []

    # --- emitters -----------------------------------------------------------------------
    def _emit_vm_io(self, key: Hashable, t0: float, t1: float, v: Values) -> None:
        assert isinstance(key, tuple)
        self.rec.add("vm_io", key[0], key[1], t0, t1, *v)

    def _emit_vm_status(self, key: Hashable, t0: float, t1: float, v: Values) -> None:
        assert isinstance(key, tuple)
        self.rec.add("vm_io", key[0], key[1], t0, t1, *_NO_RATES, v[0])

    def _emit_exposure(self, key: Hashable, t0: float, t1: float, v: Values) -> None:
        self.rec.add("exposure", key, t0, t1, v[0], v[1])

    # --- bricks and volumes -------------------------------------------------------------
    def volume_bricks(self, t: float, views: ClientViews, world: World) -> list[BrickModel]:
        """Update which bricks the clients see (a brick is up while any running client
        still has it connected, detected or not); returns the bricks that came back."""
        running = [c for c in self.cluster.hosts if world.running(c)]
        back: list[BrickModel] = []
        for vol in self.cluster.volumes.values():
            for b in vol.bricks:
                if running:
                    up = any(views.state(c, vol.name, b.host) != "down" for c in running)
                else:
                    up = world.brick_serving(b)
                if up == self.up[b.key]:
                    continue
                self.up[b.key] = up
                self.rec.event(t, "brick_up" if up else "brick_down", b.key)
                if up:
                    back.append(b)
        return back

    def volumes(self, t: float, heal: SelfHeal, sample: bool = False) -> None:
        """Volume quorum (brick count rules; the arbiter's per-file blame is judged per VM
        disk), volume_state rows when something changed, and exposure windows. ``sample``:
        a periodic sample during heal (rows for healing volumes only; nothing else changed)."""
        if self._heals_of is not heal:  # per volume: its brick keys, its heal books
            self._heals_of = heal
            self._volume_books = [(vol, vol.name, tuple(b.key for b in vol.bricks),
                                   tuple(heal.of(b) for b in vol.data_bricks))
                                  for vol in self.cluster.volumes.values()]
        is_up = self.up
        for vol, name, keys, books in self._volume_books:
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
            ups = [b.host for b, u in zip(vol.bricks, up, strict=True) if u]
            q = self._quorum_of.get((name, up))
            if q is None:
                q = self._quorum_of[(name, up)] = has_client_quorum(vol, ups, ())
            if q != self.quorum[name]:
                self.quorum[name] = q
                self.rec.event(t, "quorum_regained" if q else "quorum_lost", name,
                               "bricks up: " + ", ".join(ups))
            if sample and not any(heal.of(b).episode for b in vol.data_bricks):
                continue
            pending = [heal.pending_bytes(b) for b in vol.bricks]
            state: Values = (up, q, tuple(round(p) for p in pending))
            if sample or state != self._last_sample.get(name):
                self._last_sample[name] = state
                rows = self._samples.setdefault(name, [])
                while rows and rows[-1][0] == t:  # one sample per instant: the last word
                    rows.pop()
                rows.extend((t, name, b.host, b.role, self.up[b.key], p, q)
                            for b, p in zip(vol.bricks, pending, strict=True))
            if not sample:
                self._exposure(t, vol, heal, pending)

    def _exposure(self, t: float, vol: VolumeModel, heal: SelfHeal,
                  pending: list[float]) -> None:
        """``pending``: bytes to heal per brick of ``vol`` (none: in sync)."""
        good = sum(1 for b, p in zip(vol.bricks, pending, strict=True)
                   if b.role == "data" and self.up[b.key] and p <= 0)
        unavailable = self._unavailable(vol, heal)
        promised = len(vol.data_bricks)
        self.exposure.set(vol.name, t, (good, round(unavailable)) if good < promised else None)
        if unavailable > 0 and self.unavailable[vol.name] <= 0:
            self.rec.event(t, "data_unavailable", vol.name,
                           f"{unavailable:.0f} bytes have no good copy on a brick that is up")
        self.unavailable[vol.name] = unavailable

    def _unavailable(self, vol: VolumeModel, heal: SelfHeal) -> float:
        """Bytes of VM disks whose good copies are all on bricks that are down, while some
        stale data brick is up (the volume answers, but not with these writes). With no data
        brick up at all the volume is simply down: that is quorum loss, not counted here."""
        up_data = [b for b in vol.data_bricks if self.up[b.key]]
        if not up_data:
            return 0.0
        maps = [heal.stale_shards(b) for b in up_data]
        common = set(maps[0]).intersection(*maps[1:])
        if not vol.spec.options.shard:  # a pending image is unreadable as a whole
            return sum(self._sizes[d] for d in common)
        return sum(min(m[d] for m in maps) for d in common) * vol.shard_bytes

    # --- VM disks and VMs ---------------------------------------------------------------
    def disks(self, t: float, plans: dict[str, DiskPlan], net: FlowNetwork,
              latency: LatencyModel) -> set[str]:
        """vm_io rows from the plans; returns the VMs with a disk in error (ENOTCONN)."""
        if self.level == "intervals":
            return self._statuses(t, plans)
        errors: set[str] = set()
        rate, of, log, known = net.rate, latency.of, self.vm_io, latency.loaded()
        rank_of, closed_loop = _STATUS_RANK, closed_loop_latency
        for key, vol, group in self._groups_of(plans):
            demand = read = write = riops = wiops = lat_w = 0.0
            p99 = math.nan
            status = "stopped"
            rank = 0
            for p in group:
                demand += p.demand
                r_ = rank_of[p.status]
                if r_ > rank:
                    status, rank = p.status, r_
                if r_ != 1:  # not ok
                    continue
                d = p.disk
                x = rate(d.flow)
                rf, wf = d.read_frac, d.write_frac
                read, write = read + x * rf, write + x * wf
                ios = x * 1e6 / d.block_bytes
                riops += ios * rf
                wiops += ios * wf
                if ios > 0:
                    lat = closed_loop(known.get(p.shape_key or p.shape) or of(vol, p), p, x)
                    lat_w += lat.mean_ms * ios
                    p99 = lat.p99_ms if p99 != p99 else max(p99, lat.p99_ms)
            if rank == 3:
                errors.add(key[0])
            total_ios = riops + wiops
            if total_ios > 0:
                mean = lat_w / total_ios
            else:
                mean = p99 = math.nan
            # a NaN must be the math.nan object to equal itself (IntervalLog)
            if mean != mean:
                mean = math.nan
            if p99 != p99:
                p99 = math.nan
            log.set(key, t, (demand, read, write, riops, wiops, mean, p99, status))
        return errors

    def _groups_of(self, plans: dict[str, DiskPlan]) -> list[
            tuple[tuple[str, str], VolumeModel, tuple[DiskPlan, ...]]]:
        """The vm_io groups with their plans (looked up once per set of plans: a change
        that keeps the plans keeps these too)."""
        if plans is not self._grouped_for:
            self._grouped_for = plans
            self._grouped = [(key, vol, tuple([plans[k] for k in keys]))
                             for key, vol, keys in self._disk_groups]
        return self._grouped

    def _statuses(self, t: float, plans: dict[str, DiskPlan]) -> set[str]:
        """:meth:`disks` at the "intervals" level: the status of each (VM, volume) only
        (the worst of its disks'), no rates or latency."""
        errors: set[str] = set()
        log, rank_of = self.vm_io, _STATUS_RANK
        for key, _vol, group in self._groups_of(plans):
            rank = (rank_of[group[0].status] if len(group) == 1
                    else max([rank_of[p.status] for p in group]))
            if rank == 3:
                errors.add(key[0])
            log.set(key, t, _STATUS_OF_RANK[rank])
        return errors

    def close(self, t: float, heal: SelfHeal) -> None:
        self._last_sample.clear()  # a final row for every volume
        self._recorded.clear()
        self.volumes(t, heal)
        for rows in self._samples.values():
            for row in rows:
                self.rec.add("volume_state", *row)
        self.vm_io.close_all(t)
        self.exposure.close_all(t)
