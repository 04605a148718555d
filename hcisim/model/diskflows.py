"""The VM disks' flows on the network and, until the next change, what their writes do:
which disks write (and the heal books of the data bricks their writes miss), and the write
ledger's groups (VM, volume).

Set from the plans at every change that derives them (:meth:`DiskFlows.set`). A plan object
is kept while nothing it depends on changed (``StorageModel._plans``), which is what makes
the work here incremental, all of it exact:

- a disk whose plan is the object its flow was last set from, at the same capacities, keeps
  its flow (or its lack of one);
- a set of plans made of the very objects of the last call, at the same capacities, has the
  writers and groups it had: nothing to do (a view's timer that moved no route, a blame
  that moved no disk's plan);
- a ledger group whose plans are the very objects of its group at the last call is that
  group, kept with what it knows of the row it last extended
  (:class:`~hcisim.model.probes.WriteGroup`): the ledger extends that row directly at the
  next change, as it does after a change that kept every plan. A new group object would
  take the ledger's checks instead, which pass for the same plans (the row ends where the
  interval starts) and make the same additions.
"""

from __future__ import annotations

from hcisim.model.elaborate import Cluster
from hcisim.model.fluid import FlowNetwork
from hcisim.model.heal import BrickHeal
from hcisim.model.io import DiskPlan, LatencyModel
from hcisim.model.probes import WriteGroup, WriteLedger
from hcisim.model.selfheal import SelfHeal

# a writing disk: its plan, its flow, its write share, the heal books of the data bricks
# its writes miss (they count what they miss while it writes)
Writer = tuple[DiskPlan, str, float, tuple[BrickHeal, ...]]
# keep what the very plans of the last call had (above); tests set it False (every call
# derives the writers and new ledger groups, as before) and compare the tables bit for bit
KEEP = True


class DiskFlows:
    """The VM disks' flows, writers and ledger groups from the current plans."""

    def __init__(self, cluster: Cluster, net: FlowNetwork, latency: LatencyModel,
                 heal: SelfHeal) -> None:
        self.volumes = cluster.volumes
        self.net = net
        self.latency = latency
        self.heal = heal
        self.writers: list[Writer] = []
        self.groups: list[WriteGroup] = []
        # per VM disk: the plan and capacity version its flow was last set (or removed) from
        self._set_from: dict[str, tuple[DiskPlan, int]] = {}
        # the heal books a write to (volume, write bricks) misses
        self._away: dict[tuple[str, tuple[str, ...]], tuple[BrickHeal, ...]] = {}
        # the plans and the capacity version of the last call, and its groups by key
        self._plans: list[DiskPlan] = []
        self._capacities = -1
        self._grouped: dict[tuple[str, str], WriteGroup] = {}

    def set(self, plans: dict[str, DiskPlan]) -> None:
        """Every VM disk's flow from its plan; the writers and the ledger's groups."""
        net, volumes = self.net, self.volumes
        capacities = net.capacity_version
        last = self._plans
        if KEEP and capacities == self._capacities and len(last) == len(plans) and all(
                [p is q for p, q in zip(plans.values(), last, strict=True)]):
            return  # the very plans of the last call: flows, writers and groups stand
        self._plans, self._capacities = list(plans.values()), capacities
        latency, set_from = self.latency, self._set_from
        writers: list[Writer] = []
        groups: dict[tuple[str, str], list[DiskPlan]] = {}
        for p in plans.values():
            d = p.disk
            was = set_from.get(d.key)
            if was is None or was[0] is not p or was[1] != capacities:
                set_from[d.key] = (p, capacities)
                p.catch_up_mb_s = 0.0  # the flow asks its demand (Backlogs may raise it)
                if p.status == "ok" and p.usage:
                    demand = min(p.demand, latency.queue_depth_cap(volumes[d.volume], p))
                    net.add_flow(d.flow, demand, p.usage)
                else:
                    net.remove_flow(d.flow)
            if d.write_frac <= 0 or p.status == "stopped":
                continue
            if p.status == "ok":
                away = self._away.get((d.volume, p.write_bricks))
                if away is None:
                    away = self._away[(d.volume, p.write_bricks)] = tuple(
                        self.heal.of(b) for b in volumes[d.volume].data_bricks
                        if b.host not in p.write_bricks)
                writers.append((p, d.flow, d.write_frac, away))
            if p.demand > 0:
                groups.setdefault((d.vm, d.volume), []).append(p)
        self.writers = writers
        kept = self._grouped if KEEP else {}
        grouped: dict[tuple[str, str], WriteGroup] = {}
        for key, ps in groups.items():
            g = kept.get(key)
            if g is None or len(g.plans) != len(ps) or any(
                    [a is not b for a, b in zip(g.plans, ps, strict=True)]):
                g = WriteLedger.group(key, ps)
            grouped[key] = g
        self._grouped = grouped
        self.groups = list(grouped.values())
