"""Steady-state storage load per host (fluid), and how long heal and rebuild take.

Formulas (every rate in MB/s, 10^6 B/s; the NIC is full duplex, so its two directions are
separate resources of ``gbps x 125`` MB/s each). For a client host ``c`` writing ``W`` and
reading ``Rd``, and each replica set ``s`` with share ``w_s`` of the files and live data
bricks ``D_s``:

- writes: every live data brick ``d`` writes ``w_s W`` to its disk (AFR: the client sends
  every byte to every data brick itself); if ``d != c`` that is ``w_s W`` out of c's NIC and
  into d's. Hence the client-write bound NIC / (remote data bricks): replica 3 ~ NIC/2,
  rotating arbiter NIC / (4/3), dedicated arbiter NIC/1 on a data host.
- reads: one brick per file, spread evenly over ``D_s`` (read-hash by GFID, choose-local
  off): ``w_s Rd / |D_s|`` from each; remote ones cross both NICs.
- IOPS follow the same fan-out. Arbiter bricks get only metadata (0-byte writes, xattrs):
  not counted.
Utilisation = load / capacity per host and resource, in the normal state and with each host
down (its HA VMs' demand split evenly over the survivors, its other VMs stopped; the numbers
do not depend on one particular packing). The worst one is the answer.

Heal after host ``f`` returns from an outage of ``T`` seconds: each VM that ran meanwhile
dirtied ``n (1 - exp(-x T / n))`` distinct shards of its disk for ``x`` random write IOPS
over ``n`` shards (the expected number of distinct shards hit by ``x T`` uniform writes), or
``min(n, W T / shard + 1)`` for sequential writes. With data-self-heal-algorithm full each
dirty shard is copied whole. Host ``f`` must receive its data bricks' share of that. The
heal rate is the model's (:mod:`hcisim.model.selfheal`, with its formulas from
:mod:`hcisim.model.healrate`): each of f's data bricks is healed by the self-heal daemons of
the hosts with a brick of its replica set, f's own included, each with shd-max-threads
shards in flight, so ``n`` = shd-max-threads x those daemons, summed over f's replica sets
(they heal side by side). Rate = min(heal share of f's NIC and disk, what VM traffic leaves
of them, ``n`` x one thread's rate with the per-shard entry cost, what the healing hosts'
cores heal with ``n`` shards in flight (``heal_cpu_mb_s``: more shards in flight per core
than one cost each core ``concurrency`` of its rate)). A rebuild after a disk replacement
copies the whole of f's data bricks at that rate without f's own daemon (the new disk's
index is empty).

An unsharded volume (``shard: false``) heals as the model's (docs/model.md "Unsharded
volumes"): each VM disk is one file, so every VM that wrote anything meanwhile left its
whole image pending, and heal copies whole images, one heal thread each, up to ``n`` at
once; the rate changes as images finish, so the heal (and the rebuild) is stepped image by
image (:func:`whole_image_heal`) rather than dirty bytes over one rate.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from hcisim.capacity.layout import GB, MIB, ReplicaSet, disk_files
from hcisim.capacity.placement import Placement
from hcisim.capacity.spec import HOSTS, Candidate, CapacitySpec, InventoryVm
from hcisim.model.healrate import HEAL_BLOCK, heal_cpu_mb_s, heal_thread_mb_s

_IMAGE_DONE = 1e-9  # an image with less than this share left is done (as the model's)


@dataclass(frozen=True)
class Demand:
    read_mb_s: float
    write_mb_s: float
    read_iops: float
    write_iops: float


def demand(vm: InventoryVm, load: float) -> Demand:
    if vm.io is None:
        return Demand(0.0, 0.0, 0.0, 0.0)
    r = vm.io.read_pct / 100
    mb, iops = vm.io.demand_mb_s * load, vm.io.demand_iops * load
    return Demand(mb * r, mb * (1 - r), iops * r, iops * (1 - r))


@dataclass
class HostLoad:
    nic_out: float = 0.0
    nic_in: float = 0.0
    disk_mb_s: float = 0.0
    disk_iops: float = 0.0


@dataclass(frozen=True)
class Utilisation:
    state: str  # "normal" or "host2 down"
    host: int
    nic: float
    disk_bw: float
    disk_iops: float


def host_loads(clients: Sequence[tuple[int, Demand]], sets: Sequence[ReplicaSet],
               failed: int | None) -> list[HostLoad]:
    """Per host load of VM I/O from ``clients`` (host, demand) on the given layout."""
    loads = [HostLoad() for _ in range(HOSTS)]
    for c, d in clients:
        for s in sets:
            live = [h for h in s.data if h != failed]
            for b in live:
                loads[b].disk_mb_s += s.weight * (d.write_mb_s + d.read_mb_s / len(live))
                loads[b].disk_iops += s.weight * (d.write_iops + d.read_iops / len(live))
                if b != c:
                    loads[c].nic_out += s.weight * d.write_mb_s
                    loads[b].nic_in += s.weight * d.write_mb_s
                    loads[b].nic_out += s.weight * d.read_mb_s / len(live)
                    loads[c].nic_in += s.weight * d.read_mb_s / len(live)
    return loads


def clients_in_state(vms: Sequence[InventoryVm], placement: Placement, load: float,
                     failed: int | None) -> list[tuple[int, Demand]]:
    out: list[tuple[int, Demand]] = []
    survivors = [h for h in range(HOSTS) if h != failed]
    for vm in vms:
        h = placement.host_of.get(vm.name)
        if h is None:
            continue
        d = demand(vm, load)
        if h != failed:
            out.append((h, d))
        elif vm.ha:
            half = 1.0 / len(survivors)
            split = Demand(d.read_mb_s * half, d.write_mb_s * half,
                           d.read_iops * half, d.write_iops * half)
            out += [(s, split) for s in survivors]
    return out


def utilisations(cand: Candidate, vms: Sequence[InventoryVm], placement: Placement,
                 sets: Sequence[ReplicaSet], load: float) -> list[Utilisation]:
    out = []
    for failed in (None, *range(HOSTS)):
        loads = host_loads(clients_in_state(vms, placement, load, failed), sets, failed)
        state = "normal" if failed is None else f"host{failed + 1} down"
        for h, hl in enumerate(loads):
            if h == failed:
                continue
            out.append(Utilisation(state, h, max(hl.nic_out, hl.nic_in) / cand.storage_mb_s,
                                   hl.disk_mb_s / cand.disk_mb_s, hl.disk_iops / cand.disk_iops))
    return out


def client_write_bound(cand: Candidate, sets: Sequence[ReplicaSet], host: int) -> float:
    """Most a client on ``host`` can write, MB/s, with its NIC shared by the remote bricks."""
    remote = sum(s.weight * sum(1 for b in s.data if b != host) for s in sets)
    return math.inf if remote == 0 else cand.storage_mb_s / remote


def dirty_shards(vm: InventoryVm, spec: CapacitySpec, load: float) -> float:
    """Expected distinct shards of ``vm``'s disk written during the outage."""
    if vm.io is None or vm.disk_gb <= 0:
        return 0.0
    d = demand(vm, load)
    shards = disk_files(vm.disk_gb, spec.volume_options.shard_block_size_mib)
    n = max(1.0, shards * spec.heal.write_footprint_pct / 100)
    t = spec.heal.outage_s
    if vm.io.random:
        return n * -math.expm1(-d.write_iops * t / n)
    shard = spec.volume_options.shard_block_size_mib * MIB
    return min(n, d.write_mb_s * 1e6 * t / shard + 1) if d.write_mb_s > 0 else 0.0


def written_image_bytes(vm: InventoryVm, spec: CapacitySpec, load: float) -> float:
    """Bytes of ``vm``'s image pending heal on an unsharded volume after the outage: AFR
    marks the one file at the first write it misses, so the whole image if ``vm`` wrote
    anything, else none (:class:`hcisim.model.heal.WholeFileHeal`)."""
    if vm.io is None or vm.disk_gb <= 0:
        return 0.0
    d = demand(vm, load)
    return vm.disk_gb * GB if d.write_mb_s > 0 or d.write_iops > 0 else 0.0


@dataclass(frozen=True)
class HealEstimate:
    host: int  # the host that was away (worst one)
    dirty_bytes: float  # its data bricks' share of what was written while it was away
    rate_mb_s: float  # its heal's rate (unsharded: the mean, dirty bytes / heal time)
    limited_by: str
    heal_s: float
    window_s: float  # outage + heal: the time the cluster ran with one copy less
    rebuild_host: int
    rebuild_bytes: float
    rebuild_s: float
    rebuild_rate_mb_s: float  # the rebuild's rate (sharded: its host's heal rate)
    per_host: list[dict[str, float | str]] = field(default_factory=list)


def healing(cand: Candidate, spec: CapacitySpec, sets: Sequence[ReplicaSet],
            host: int, own: bool = True) -> tuple[int, float]:
    """Shards in flight into ``host``'s data bricks after its outage, and the CPU cores
    of the hosts whose self-heal daemons heal them, as the model counts them
    (:meth:`hcisim.model.selfheal.SelfHeal.healers`): shd-max-threads for each daemon on
    a host with a brick of the replica set (data or arbiter: each sweeps its own brick's
    index), ``host``'s own included unless ``own`` is False (a replaced disk: its index
    is gone), summed over ``host``'s sets; each healing host's cores once."""
    left_out: set[int] = set() if own else {host}
    daemons = [{*s.data, *(() if s.arbiter is None else (s.arbiter,))} - left_out
               for s in sets if s.holds_data(host)]
    in_flight = spec.volume_options.shd_max_threads * sum(len(d) for d in daemons)
    return in_flight, float(len(set().union(*daemons)) * cand.cores)


def path_bounds(cand: Candidate, spec: CapacitySpec, vm_load: HostLoad) -> dict[str, float]:
    """The most MB/s heal gets into a host of ``vm_load`` by its NIC, disk bandwidth and
    disk IOPS: ``share`` of each, and what VM traffic leaves of it."""
    share = spec.heal.share
    nic = cand.storage_mb_s
    return {
        "NIC": min(share * nic, nic - vm_load.nic_in),
        "disk bandwidth": min(share * cand.disk_mb_s, cand.disk_mb_s - vm_load.disk_mb_s),
        "disk IOPS": min(share * cand.disk_iops, cand.disk_iops - vm_load.disk_iops)
        * HEAL_BLOCK / 1e6,
    }


def heal_rate(cand: Candidate, spec: CapacitySpec, vm_load: HostLoad,
              sets: Sequence[ReplicaSet], host: int, own: bool = True) -> tuple[float, str]:
    """How fast ``host``'s data bricks heal (MB/s) and what bounds it (module docstring;
    ``own`` False: a rebuild onto a replaced disk, its own daemon not healing)."""
    in_flight, cores = healing(cand, spec, sets, host, own)
    if in_flight == 0:
        return 0.0, "no data bricks"
    h = spec.heal
    shard = spec.volume_options.shard_block_size_mib * MIB
    bounds = path_bounds(cand, spec, vm_load)
    bounds["shd threads"] = in_flight * heal_thread_mb_s(shard, h.shd_thread_mb_s, h.entry_s)
    if h.core_mb_s > 0:  # heal is CPU work (0: no such cap, as in the model)
        bounds["heal CPU"] = heal_cpu_mb_s(cores, h.core_mb_s, in_flight, h.concurrency)
    which = min(bounds, key=lambda k: bounds[k])
    return max(0.0, bounds[which]), which


def whole_image_heal(cand: Candidate, spec: CapacitySpec, vm_load: HostLoad,
                     sets: Sequence[ReplicaSet], host: int,
                     images: Sequence[float], own: bool = True) -> tuple[float, str]:
    """Seconds to copy whole ``images`` (bytes of each, in heal order) into ``host``'s data
    bricks of an unsharded volume, as the model heals one (:class:`hcisim.model.heal.
    WholeFileHeal`, :meth:`hcisim.model.selfheal.SelfHeal.set_flows`): one heal thread per
    image, the first ``n`` = min(in flight, images left) unfinished ones at once, sharing
    the heal's rate equally; the rate is the least of the path's bounds, ``n`` threads at
    ``heal_thread_mb_s`` of the mean size of the images in flight, and the heal CPU with
    ``n`` in flight; it changes when an image is done. Not one steady rate: the heal lasts
    at least as long as its largest image at one thread. Also the bound that held longest.
    ``own`` False: a rebuild onto a replaced disk (its own daemon not healing)."""
    in_flight, cores = healing(cand, spec, sets, host, own)
    if in_flight == 0:
        return 0.0, "no data bricks"
    h = spec.heal
    path = path_bounds(cand, spec, vm_load)
    queue = iter([b for b in images if b > 0])
    flying = [[b, b] for b in itertools.islice(queue, in_flight)]  # [image bytes, left]
    if not flying:
        return 0.0, "nothing written"
    held: dict[str, float] = {}
    t = 0.0
    while flying:
        n = len(flying)
        bounds = dict(path)
        bounds["shd threads"] = n * heal_thread_mb_s(sum(b for b, _ in flying) / n,
                                                     h.shd_thread_mb_s, h.entry_s)
        if h.core_mb_s > 0:
            bounds["heal CPU"] = heal_cpu_mb_s(cores, h.core_mb_s, n, h.concurrency)
        which = min(bounds, key=lambda k: bounds[k])
        each = bounds[which] * 1e6 / n  # bytes/s of every image in flight
        if each <= 0:
            return math.inf, which
        first = min(left for _, left in flying)  # until the first image in flight is done
        t += first / each
        held[which] = held.get(which, 0.0) + first / each
        for image in flying:
            image[1] -= first
        flying = [i for i in flying if i[1] > _IMAGE_DONE * i[0]]
        flying += [[b, b] for b in itertools.islice(queue, in_flight - len(flying))]
    return t, max(held, key=lambda k: held[k])


def heal_estimate(cand: Candidate, spec: CapacitySpec, vms: Sequence[InventoryVm],
                  placement: Placement, sets: Sequence[ReplicaSet]) -> HealEstimate:
    load = spec.peak_load
    shard = spec.volume_options.shard_block_size_mib * MIB
    stored = sum(vm.disk_gb for vm in vms) * GB * spec.heal.fill_pct / 100
    normal = host_loads(clients_in_state(vms, placement, load, None), sets, None)
    rows: list[dict[str, float | str]] = []
    for f in range(HOSTS):
        running = [vm for vm in vms if placement.host_of.get(vm.name) is not None
                   and (placement.host_of[vm.name] != f or vm.ha)]
        if not spec.volume_options.shard:
            rows.append(_whole_image_row(cand, spec, vms, running, normal[f], sets, f))
            continue
        dirty = sum(dirty_shards(vm, spec, load) for vm in running) * shard
        mine = sum(s.weight for s in sets if s.holds_data(f))
        rate, why = heal_rate(cand, spec, normal[f], sets, f)
        rebuild_rate, _ = heal_rate(cand, spec, normal[f], sets, f, own=False)
        heal_b, rebuild_b = dirty * mine, stored * mine
        rows.append({"host": f, "dirty_bytes": heal_b, "rate_mb_s": rate,
                     "heal_s": _duration(heal_b, rate), "rebuild_bytes": rebuild_b,
                     "rebuild_s": _duration(rebuild_b, rebuild_rate),
                     "rebuild_rate_mb_s": rebuild_rate, "limited_by": why})
    heal = max(rows, key=lambda r: float(r["heal_s"]))
    rebuild = max(rows, key=lambda r: float(r["rebuild_s"]))
    return HealEstimate(int(heal["host"]), float(heal["dirty_bytes"]), float(heal["rate_mb_s"]),
                        str(heal["limited_by"]), float(heal["heal_s"]),
                        spec.heal.outage_s + float(heal["heal_s"]), int(rebuild["host"]),
                        float(rebuild["rebuild_bytes"]), float(rebuild["rebuild_s"]),
                        float(rebuild["rebuild_rate_mb_s"]), rows)


def _whole_image_row(cand: Candidate, spec: CapacitySpec, vms: Sequence[InventoryVm],
                     running: Sequence[InventoryVm], vm_load: HostLoad,
                     sets: Sequence[ReplicaSet], f: int) -> dict[str, float | str]:
    """Heal and rebuild of host ``f`` on an unsharded volume: whole images, in the model's
    heal order (by VM disk, here by VM name), each on every host that holds data (DHT puts
    an image in one replica set; the planner does not hash names, so with a rotating arbiter
    it counts every image on the host that was away: an upper bound on its bytes)."""
    holds = any(s.holds_data(f) for s in sets)
    dirty = [written_image_bytes(vm, spec, spec.peak_load)
             for vm in sorted(running, key=lambda v: v.name)] if holds else []
    stored = [vm.disk_gb * GB * spec.heal.fill_pct / 100
              for vm in sorted(vms, key=lambda v: v.name)] if holds else []
    heal_s, why = whole_image_heal(cand, spec, vm_load, sets, f, dirty)
    rebuild_s, _ = whole_image_heal(cand, spec, vm_load, sets, f, stored, own=False)
    return {"host": f, "dirty_bytes": sum(dirty), "rate_mb_s": _mean_mb_s(sum(dirty), heal_s),
            "heal_s": heal_s, "rebuild_bytes": sum(stored), "rebuild_s": rebuild_s,
            "rebuild_rate_mb_s": _mean_mb_s(sum(stored), rebuild_s), "limited_by": why}


def _mean_mb_s(nbytes: float, seconds: float) -> float:
    return nbytes / seconds / 1e6 if 0 < seconds < math.inf else 0.0


def _duration(nbytes: float, rate_mb_s: float) -> float:
    if nbytes <= 0:
        return 0.0
    return nbytes / (rate_mb_s * 1e6) if rate_mb_s > 0 else math.inf
