"""What one VM disk does right now: its status, its path through the cluster, its latency.

A VM disk is one fluid flow whose rate is its total I/O (MB/s); the profile's read share
goes to ONE data brick and its write share to EVERY connected data brick. Reads and writes
are one flow on purpose: a guest with a fixed queue depth cannot keep reading at full speed
while its writes queue up, so the mix stays that of the profile. Per MB/s of the flow:

- read part ``r``: the read brick's disk ``r * disk_cost``; if that brick is remote, its
  host's NIC tx and the client's NIC rx ``r`` each;
- write part ``w``: each connected data brick's disk ``w * disk_cost``; each remote one adds
  ``w`` to its host's NIC rx and ``w`` to the client's NIC tx (the client sends every byte
  to every remote data brick, so writes are bounded by NIC / remote data bricks);
- the arbiter brick: metadata I/O only, ``w * iops_cost`` of its disk, no bandwidth.

Latency (mean): fixed client cost + for each resource on the path an M/M/1 sojourn
``s / (1 - rho)`` (``rho`` capped at 0.99) with ``s`` the service time of one block there,
+ the storage RTT for a remote brick; a write completes when its slowest replica does.
p99: the queueing part of a path is taken as exponential, whose 99th percentile is
``ln(100) = 4.6`` times its mean; fixed parts are added as they are. Summing per-resource
tails this way over-estimates the p99 of a sum, so it is a conservative tail.

Closed loop (:func:`closed_loop_latency`): a guest keeps at most ``queue_depth`` requests
outstanding, so Little's law bounds its mean latency by ``queue_depth / IOPS``; when it gets
less than it asks for (its path is saturated, or its queue depth caps it) all its slots are
busy and the bound is its latency. The open M/M/1 sojourn at 0.99 utilisation would report
seconds for a saturated 1 MiB writer that in fact sees ``queue_depth / IOPS``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from hcisim.model.elaborate import Cluster, VmDiskModel, VolumeModel, disk_cost, disk_iops_cost
from hcisim.model.fluid import FlowNetwork

Status = Literal["ok", "stalled", "error", "stopped"]
# volume, client, read brick, write bricks, arbiter, read share, block bytes
Shape = tuple[str, str, str | None, tuple[str, ...], str | None, float, float]
RHO_MAX = 0.99
P99_FACTOR = math.log(100.0)


@dataclass(slots=True)
class DiskPlan:
    """The state of one VM disk between two changes."""

    disk: VmDiskModel
    client: str  # host the VM runs on
    status: Status
    demand: float  # MB/s asked for (profile x phase load)
    quorum: bool = True
    read_brick: str | None = None
    write_bricks: tuple[str, ...] = ()  # connected data bricks: where acknowledged writes are
    arbiter: str | None = None  # connected arbiter brick
    usage: dict[str, float] = field(default_factory=dict)
    since: float = 0.0
    acked_bytes: float = 0.0  # write bytes acknowledged since ``since``
    # :attr:`shape` as a number (:meth:`LatencyModel.shape_key`, once asked): the memos of
    # paths and latencies are keyed by it, not by hashing the shape's tuple at each look-up
    shape_key: int | None = None
    # MB/s its flow asks on top of ``demand`` while an open-loop disk catches up after a
    # stall (:mod:`hcisim.model.catchup`); 0 otherwise. Always what the flow was set with.
    catch_up_mb_s: float = 0.0

    @property
    def asked(self) -> float:
        """MB/s the disk asks of storage now: its demand, and while it catches up the extra
        its backlog pulls (so a rate above ``demand`` is still within what it asked)."""
        return self.demand + self.catch_up_mb_s

    @property
    def flow(self) -> str:
        return self.disk.flow

    @property
    def shape(self) -> Shape:
        """What the path and latency depend on: disks with the same shape share them."""
        return (self.disk.volume, self.client, self.read_brick, self.write_bricks,
                self.arbiter, self.disk.read_frac, self.disk.block_bytes)


def path_usage(cluster: Cluster, vol: VolumeModel, plan: DiskPlan) -> dict[str, float]:
    """Resource coefficients per MB/s of the disk's flow (see module docstring)."""
    d = plan.disk
    c = plan.client
    rf, wf, blk = d.read_frac, d.write_frac, d.block_bytes
    use: dict[str, float] = {}

    def add(res: str, a: float) -> None:
        if a > 0:
            use[res] = use.get(res, 0.0) + a

    if rf > 0 and plan.read_brick is not None:
        b = vol.brick(plan.read_brick)
        add(b.disk_resource, rf * disk_cost(b.disk, blk))
        if b.host != c:
            add(cluster.tx(b.host), rf)
            add(cluster.rx(c), rf)
    if wf > 0:
        for h in plan.write_bricks:
            b = vol.brick(h)
            add(b.disk_resource, wf * disk_cost(b.disk, blk))
            if h != c:
                add(cluster.tx(c), wf)
                add(cluster.rx(h), wf)
        if plan.arbiter is not None:
            a = vol.brick(plan.arbiter)
            add(a.disk_resource, wf * disk_iops_cost(a.disk, blk))
    return use


class Latency(NamedTuple):
    mean_ms: float
    p99_ms: float


def closed_loop_latency(lat: Latency, plan: DiskPlan, rate_mb_s: float) -> Latency:
    """The latency of a queue-depth-bound guest (Little's law, ``N = X L``): at most
    ``queue_depth`` requests are in flight, so the mean is at most ``queue_depth / IOPS``;
    when the disk gets less than it asks (``rate_mb_s`` below ``plan.asked``: its path
    is saturated, or its queue depth caps it, or it is catching up after a stall and issues
    as fast as its slots allow) every slot is busy and the mean IS ``queue_depth / IOPS``.
    Otherwise the open path latency ``lat`` stands. The p99 keeps its ratio to the mean
    (the tail assumption of the path, scaled)."""
    prof = plan.disk.profile
    if prof is None or not rate_mb_s > 0:
        return lat
    little_ms = prof.queue_depth * plan.disk.block_bytes / (rate_mb_s * 1e6) * 1000.0
    if not little_ms < math.inf:  # a rate too small for floats to tell: no bound
        return lat
    asked = plan.demand + plan.catch_up_mb_s
    if rate_mb_s < asked * (1.0 - 1e-9) or lat.mean_ms > little_ms:
        return Latency(little_ms, lat.p99_ms * (little_ms / lat.mean_ms))
    return lat


LegKey = tuple[str, str, str, float, bool]  # volume, brick host, client, block, read?
# disk resource, its service ms, fixed ms, then (NIC resource, service ms) per NIC crossed
Leg = tuple[str, float, float, tuple[tuple[str, float], ...]]
# fixed ms, then (resource, service ms) crossed: the brick's disk, then 0 or 2 NIC directions
LegSpec = tuple[float, tuple[tuple[str, float], ...]]
# read leg, read share, write legs, arbiter (fixed ms, disk, service ms), write share
PathSpec = tuple[LegSpec | None, float, tuple[LegSpec, ...], tuple[float, str, float] | None,
                 float]
# 1 - min(utilisation, RHO_MAX) of every resource when every one is idle
_IDLE: defaultdict[str, float] = defaultdict(lambda: 1.0)


class LatencyModel:
    """Latency of a VM disk's I/O from the utilisation of the resources on its path."""

    def __init__(self, cluster: Cluster, net: FlowNetwork, overhead_ms: float) -> None:
        self.cluster = cluster
        self.net = net
        self.overhead_ms = overhead_ms
        self.rtt_ms = cluster.scenario.network("storage").rtt_ms
        # Legs are shared by many VM disks (same brick, client, block size): what a leg
        # crosses and its service times are memoised per capacity set, loaded latencies
        # per settle, unloaded ones per capacity set.
        self._leg_of: dict[LegKey, Leg] = {}
        self._shape_keys: dict[Shape, int] = {}  # every shape seen, numbered
        self._specs: dict[int, PathSpec] = {}
        # per resource 1 - min(utilisation, RHO_MAX), the sojourn's denominator, this settle
        self._free: dict[str, float] | None = None
        self._of: dict[int, Latency] = {}
        self._of_idle: dict[int, Latency] = {}
        self._qd_cap: dict[tuple[int, int], float] = {}
        self._usage: dict[int, dict[str, float]] = {}

    def shape_key(self, plan: DiskPlan) -> int:
        """``plan``'s shape as a number, the same for every plan of that shape (kept on the
        plan)."""
        key = plan.shape_key
        if key is None:
            shape = plan.shape
            key = self._shape_keys.get(shape)
            if key is None:
                key = self._shape_keys[shape] = len(self._shape_keys)
            plan.shape_key = key
        return key

    def usage(self, vol: VolumeModel, plan: DiskPlan) -> dict[str, float]:
        """:func:`path_usage`, shared by every disk of the same shape (do not mutate)."""
        key = self.shape_key(plan)
        hit = self._usage.get(key)
        if hit is None:
            hit = self._usage[key] = path_usage(self.cluster, vol, plan)
        return hit

    def new_rates(self) -> None:
        """Utilisations changed (after a resolve): forget the loaded latencies."""
        self._free = None
        self._of.clear()

    def new_capacities(self) -> None:
        """A link changed speed: forget everything."""
        self.new_rates()
        self._leg_of.clear()
        self._specs.clear()
        self._of_idle.clear()
        self._qd_cap.clear()

    def _nic_service_ms(self, res: str, blk: float) -> float:
        cap = self.net.capacity(res)
        return blk / (cap * 1e6) * 1000.0 if cap > 0 else 1e6

    def _leg_spec(self, vol: VolumeModel, host: str, client: str, blk: float,
                  read: bool) -> Leg:
        key = (vol.name, host, client, blk, read)
        hit = self._leg_of.get(key)
        if hit is None:
            b = vol.brick(host)
            disk_service = b.disk.latency_ms + blk / (b.disk.bandwidth_mb_s * 1e6) * 1000.0
            nics: tuple[tuple[str, float], ...] = ()
            fixed = 0.0
            if host != client:
                fixed = self.rtt_ms
                src, dst = (self.cluster.tx(host), self.cluster.rx(client)) if read else (
                    self.cluster.tx(client), self.cluster.rx(host))
                nics = ((src, self._nic_service_ms(src, blk)),
                        (dst, self._nic_service_ms(dst, blk)))
            hit = self._leg_of[key] = (b.disk_resource, disk_service, fixed, nics)
        return hit

    def _spec(self, vol: VolumeModel, plan: DiskPlan) -> PathSpec:
        """What a disk's latency is made of, by shape (memoised per capacity set): its read
        leg, its write legs and the arbiter's metadata op, each (fixed ms, resource, service
        ms) per resource crossed."""
        key = self.shape_key(plan)
        spec = self._specs.get(key)
        if spec is not None:
            return spec
        d = plan.disk
        blk = d.block_bytes

        def leg(host: str, read: bool) -> LegSpec:
            disk_res, disk_service, fixed, nics = self._leg_spec(vol, host, plan.client, blk,
                                                                 read)
            return fixed, ((disk_res, disk_service), *nics)

        read = (leg(plan.read_brick, True)
                if d.read_frac > 0 and plan.read_brick is not None else None)
        writes: tuple[LegSpec, ...] = ()
        arbiter: tuple[float, str, float] | None = None
        if d.write_frac > 0 and plan.write_bricks:
            writes = tuple(leg(h, False) for h in plan.write_bricks)
            if plan.arbiter is not None:
                a = vol.brick(plan.arbiter)
                arbiter = (self.rtt_ms if a.host != plan.client else 0.0, a.disk_resource,
                           a.disk.latency_ms)
        spec = self._specs[key] = (read, d.read_frac, writes, arbiter, d.write_frac)
        return spec

    def loaded(self) -> dict[int, Latency]:
        """The loaded latencies computed so far in this settle, by shape key (a disk whose
        shape is not in it asks :meth:`of`)."""
        return self._of

    def of(self, vol: VolumeModel, plan: DiskPlan, loaded: bool = True) -> Latency:
        memo = self._of if loaded else self._of_idle
        key = self.shape_key(plan)
        hit = memo.get(key)
        if hit is None:
            free: Mapping[str, float] = _IDLE
            if loaded:
                free = self._free if self._free is not None else self._denominators()
            hit = memo[key] = self._latency(self._spec(vol, plan), free)
        return hit

    def _denominators(self) -> dict[str, float]:
        """Every resource's ``1 - min(rho, RHO_MAX)`` from this settle's utilisations: once
        per resource, not once per path that crosses it."""
        self._free = {r: 1.0 - min(u, RHO_MAX) for r, u in self.net.utilisations().items()}
        return self._free

    def _latency(self, spec: PathSpec, free: Mapping[str, float]) -> Latency:
        """Mean and p99 from a path spec and ``free``, each resource's ``1 - min(rho,
        RHO_MAX)`` (see module docstring; the sojourn ``s / free`` is written out: this is
        the hot path). A leg's queueing is its disk's sojourn plus the sum of its two NIC
        directions' (in that order: the order the arithmetic always had)."""
        read, rf, writes, arbiter, wf = spec
        total = weighted = 0.0
        p99 = -math.inf
        if read is not None:
            fixed, crossed = read
            res, service = crossed[0]
            q = service / free[res]
            if len(crossed) == 3:
                (r1, s1), (r2, s2) = crossed[1], crossed[2]
                q += s1 / free[r1] + s2 / free[r2]
            total += rf
            weighted += rf * (fixed + q)
            p99 = max(p99, fixed + P99_FACTOR * q)
        if writes:  # a write completes with its slowest replica
            mean = wp99 = -math.inf
            for fixed, crossed in writes:
                res, service = crossed[0]
                q = service / free[res]
                if len(crossed) == 3:
                    (r1, s1), (r2, s2) = crossed[1], crossed[2]
                    q += s1 / free[r1] + s2 / free[r2]
                mean, wp99 = max(mean, fixed + q), max(wp99, fixed + P99_FACTOR * q)
            if arbiter is not None:
                fixed, res, service = arbiter
                q = service / free[res]
                mean, wp99 = max(mean, fixed + q), max(wp99, fixed + P99_FACTOR * q)
            total += wf
            weighted += wf * mean
            p99 = max(p99, wp99)
        if read is None and not writes:
            return Latency(math.nan, math.nan)
        return Latency(self.overhead_ms + weighted / total, self.overhead_ms + p99)

    def queue_depth_cap(self, vol: VolumeModel, plan: DiskPlan) -> float:
        """Most MB/s the guest can drive at its queue depth on an idle cluster (Little's
        law: IOPS <= queue depth / latency). Unloaded latency keeps this free of fixed
        points; under load the fairness solver slows the disk down anyway."""
        prof = plan.disk.profile
        if prof is None:
            return 0.0
        key = (self.shape_key(plan), prof.queue_depth)
        cap = self._qd_cap.get(key)
        if cap is None:
            lat = self.of(vol, plan, loaded=False).mean_ms
            cap = self._qd_cap[key] = (
                math.inf if not lat > 0
                else prof.queue_depth / (lat / 1000.0) * plan.disk.block_bytes / 1e6)
        return cap
