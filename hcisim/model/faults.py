"""Faults and planned operations as changes of the physical :class:`World`.

Each fault has a start and (if ``duration_s`` is set) an end that undoes exactly what the
start did, so overlapping faults compose. What the clients make of a change (an immediate
switch-over or a ping-timeout stall) is decided later, from the world, in
:mod:`hcisim.model.clients`.
"""

from __future__ import annotations

from hcisim.model.elaborate import Cluster
from hcisim.model.world import World
from hcisim.scenario import Fault
from hcisim.scenario.cluster import NetworkRole

Delta = int  # +1 start, -1 end


def _nic_roles(f: Fault) -> tuple[NetworkRole, ...]:
    return ("storage", "management") if f.network == "all" else (f.network,)


def bricks_hit(cluster: Cluster, f: Fault) -> list[str]:
    """Brick keys a brick_crash or disk_failure takes down."""
    out = []
    for v in cluster.volumes.values():
        for b in v.bricks:
            if b.host != f.target:
                continue
            if f.kind == "brick_crash" and f.volume in (None, v.name):
                out.append(b.key)
            if f.kind == "disk_failure" and (f.disk is None or f.disk == b.disk.name):
                out.append(b.key)
    return out


def apply_fault(world: World, cluster: Cluster, f: Fault, delta: Delta,
                slowdowns: dict[str, list[float]]) -> None:
    """Start (``delta`` +1) or end (-1) fault ``f``. ``slowdowns`` holds the link rates
    imposed per NIC resource (the slowest one wins while several overlap)."""
    h = f.target
    if f.kind == "node_power_loss":
        world.powered_off[h] += delta
    elif f.kind == "node_hang":
        world.hung[h] += delta
    elif f.kind == "nic_loss":
        for r in _nic_roles(f):
            world.nic_down[(h, cluster.nic_name(h, r))] += delta
    elif f.kind == "partition":
        peers = f.peers or tuple(p for p in cluster.hosts if p != h)
        for role in _nic_roles(f):
            for p in peers:
                world.cuts[(frozenset((h, p)), role)] += delta
    elif f.kind == "brick_crash":
        for key in bricks_hit(cluster, f):
            world.crashed[key] += delta
    elif f.kind == "disk_failure":
        disk = cluster.scenario.host(h).disk(f.disk).name
        world.disk_failed[(h, disk)] += delta
    elif f.kind == "link_slowdown":
        assert f.rate_mbit is not None
        nics = {cluster.nic_name(h, r) for r in _nic_roles(f)}
        for nic in sorted(nics):
            for end in ("tx", "rx"):
                res = f"{h}/nic/{nic}/{end}"
                rates = slowdowns.setdefault(res, [])
                if delta > 0:
                    rates.append(f.rate_mbit / 8.0)  # Mbit/s -> MB/s
                else:
                    rates.remove(f.rate_mbit / 8.0)
    # Counters must never go negative: an end without its start is a bug here.
    assert all(v >= 0 for v in world.powered_off.values())
