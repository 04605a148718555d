"""Faults and planned operations as changes of the physical :class:`World`.

Each fault has a start and (if ``duration_s`` is set) an end that undoes exactly what the
start did, so overlapping faults compose. What a fault does is read from the vocabulary's
fault table (:data:`hcisim.scenario.FAULT_TABLE`: its scope, which networks it cuts or
slows, whether it is silent); what the clients make of a change (an immediate switch-over
or a ping-timeout stall) is decided later, from the world, in :mod:`hcisim.model.clients`.
"""

from __future__ import annotations

from hcisim.model.elaborate import Cluster
from hcisim.model.world import World
from hcisim.scenario import BrickCrash, BrickHang, DiskFailure, Fault, LinkSlowdown, Partition

Delta = int  # +1 start, -1 end


def bricks_hit(cluster: Cluster, f: Fault) -> list[str]:
    """Brick keys a brick or disk fault takes down: the bricks of ``volume`` on the target
    (None: all of them) or the bricks on the failed disk."""
    if isinstance(f, DiskFailure):
        disk = cluster.scenario.host(f.target).disk(f.disk).name
        return [b.key for v in cluster.volumes.values() for b in v.bricks
                if b.host == f.target and b.disk.name == disk]
    if isinstance(f, BrickCrash | BrickHang):
        return [b.key for v in cluster.volumes.values() for b in v.bricks
                if b.host == f.target and f.volume in (None, v.name)]
    return []


def apply_fault(world: World, cluster: Cluster, f: Fault, delta: Delta,
                slowdowns: dict[str, list[float]]) -> None:
    """Start (``delta`` +1) or end (-1) fault ``f``. ``slowdowns`` holds the link rates
    imposed per NIC resource (the slowest one wins while several overlap)."""
    h = f.target
    t = f.traits
    if t.scope == "host":
        # A whole host: powered off, or frozen (it keeps its TCP connections open).
        (world.hung if t.host_loss == "hang" else world.powered_off)[h] += delta
    elif isinstance(f, DiskFailure):
        world.disk_failed[(h, cluster.scenario.host(h).disk(f.disk).name)] += delta
    elif t.scope == "brick":
        marks = world.brick_hung if t.silent else world.crashed
        for key in bricks_hit(cluster, f):
            marks[key] += delta
    elif t.cuts == "chosen" and t.scope == "nic":
        for r in f.networks:
            world.nic_down[(h, cluster.nic_name(h, r))] += delta
    elif isinstance(f, Partition):  # the links between the target and its peers
        peers = f.peers or tuple(p for p in cluster.hosts if p != h)
        for role in f.networks:
            for p in peers:
                world.cuts[(frozenset((h, p)), role)] += delta
    if isinstance(f, LinkSlowdown):
        rate_mb_s = f.rate_mbit / 8.0  # Mbit/s -> MB/s
        for nic in sorted({cluster.nic_name(h, r) for r in f.networks}):
            for end in ("tx", "rx"):
                rates = slowdowns.setdefault(f"{h}/nic/{nic}/{end}", [])
                if delta > 0:
                    rates.append(rate_mb_s)
                else:
                    rates.remove(rate_mb_s)
    # Counters must never go negative: an end without its start is a bug here.
    assert all(v >= 0 for v in world.powered_off.values())
