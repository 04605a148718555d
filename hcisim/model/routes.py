"""Where a VM disk's I/O goes from a client right now: its route (status, client quorum,
read brick, write bricks, arbiter, resource use per MB/s, path shape).

A route depends only on what the client sees of the volume's bricks and on the bricks
blamed for the disk (they miss its writes), so it is memoised by exactly those: the same
views give the same route object. The storage model derives every disk's plan from its
route at each change that can move one (:meth:`~hcisim.model.engine.StorageModel.settle`).
"""

from __future__ import annotations

from hcisim.model.clients import ClientViews, Seen
from hcisim.model.elaborate import Cluster, VmDiskModel, VolumeModel
from hcisim.model.gluster import has_client_quorum, read_brick
from hcisim.model.io import DiskPlan, LatencyModel, Status
from hcisim.model.selfheal import SelfHeal

# status, client quorum, read brick, write bricks, arbiter, resource use per MB/s, shape
# (its key: LatencyModel.shape_key)
Route = tuple[Status, bool, str | None, tuple[str, ...], str | None, dict[str, float],
              int | None]


class Routes:
    """Routes of VM disks, memoised by the client's view of the bricks and the blame."""

    def __init__(self, cluster: Cluster, views: ClientViews, heal: SelfHeal,
                 latency: LatencyModel) -> None:
        self.cluster = cluster
        self.views = views
        self.heal = heal
        self.latency = latency
        # what each client mount sees (shared by its disks), while the views stay the same
        self._mounts: dict[tuple[str, str], tuple[tuple[Seen, ...], tuple[str, ...]]] = {}
        self._mounts_seen = -1  # the views version the mounts were read at
        # the mounts of the views before (a mount that reads the same again is that object)
        self._mounts_before: dict[tuple[str, str],
                                  tuple[tuple[Seen, ...], tuple[str, ...]]] = {}
        # routes by (disk, client, its view of the bricks, bricks blamed for it, busy)
        self._routes: dict[tuple[str, str, tuple[Seen, ...], frozenset[str], bool], Route] = {}
        # per disk, its last call: (mount, blamed, client, busy, route); a mount or blame
        # object is replaced when what it says changes, so the same objects mean that route
        self._last: dict[str, tuple[tuple[tuple[Seen, ...], tuple[str, ...]], frozenset[str],
                                    str, bool, Route]] = {}

    def fresh_mounts(self) -> None:
        """Read the mounts again if what the clients see has changed since they were read."""
        if self._mounts_seen != self.views.version:
            self._mounts = {}
            self._mounts_seen = self.views.version

    def _mount(self, c: str, vol: VolumeModel) -> tuple[tuple[Seen, ...], tuple[str, ...]]:
        """What client ``c`` sees of ``vol``'s bricks, and the bricks it believes up
        (memoised until the views change). A mount that sees what it saw before is the
        object it was: a change of views usually moves one client's view of one brick, and
        the other mounts' disks keep their routes at once (:meth:`route`)."""
        key = (c, vol.name)
        states = tuple(self.views.state(c, vol.name, b.host) for b in vol.bricks)
        before = self._mounts_before.get(key)
        if before is not None and before[0] == states:
            mount = self._mounts[key] = before
            return mount
        mount = self._mounts[key] = self._mounts_before[key] = (
            states, tuple(b.host for b, s in zip(vol.bricks, states, strict=True) if s != "down"))
        return mount

    def path(self, d: VmDiskModel, c: str, demand: float, t: float) -> DiskPlan:
        """Status and path of disk ``d`` used from client host ``c`` (running)."""
        self.fresh_mounts()
        status, quorum, read, write_bricks, arbiter, usage, shape = self.route(
            d, self.cluster.volumes[d.volume], c, demand > 0)
        return DiskPlan(d, c, status, demand, quorum, read, write_bricks, arbiter, usage,
                        since=t, shape_key=shape)

    def route(self, d: VmDiskModel, vol: VolumeModel, c: str, busy: bool) -> Route:
        """:meth:`_route` of disk ``d`` from client ``c``, memoised by what it depends on:
        the client's view of the bricks and the bricks blamed for the disk (call
        :meth:`fresh_mounts` first once per change)."""
        mount = self._mounts.get((c, vol.name)) or self._mount(c, vol)
        blamed = self.heal.blamed(d.key)
        last = self._last.get(d.key)
        if (last is not None and last[0] is mount and last[1] is blamed and last[2] == c
                and last[3] == busy):  # the very objects of the last call: its route
            return last[4]
        key = (d.key, c, mount[0], blamed, busy)
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = self._route(d, vol, c, mount[0], blamed, busy,
                                                    mount[1])
        self._last[d.key] = (mount, blamed, c, busy, route)
        return route

    def _route(self, d: VmDiskModel, vol: VolumeModel, c: str, states: tuple[Seen, ...],
               blamed: frozenset[str], busy: bool, believed: tuple[str, ...]) -> Route:
        """The part of a disk's plan that depends only on what its client sees."""
        seen = dict(zip((b.host for b in vol.bricks), states, strict=True))
        quorum = has_client_quorum(vol, believed, blamed)
        good = [b.host for b in vol.data_bricks if b.host in believed and b.host not in blamed]
        read = read_brick(d.vm, vol.name, good)
        status: Status = "ok"
        if not busy:
            return status, quorum, read, (), None, {}, None
        if not quorum:
            status = "error"  # ENOTCONN at once
        elif ((d.write_frac > 0 and "lost" in states)
              or (d.read_frac > 0 and read is not None and seen[read] == "lost")):
            status = "stalled"  # waiting on a brick that does not answer
        elif d.read_frac > 0 and read is None:
            status = "error"  # no good copy reachable for this file
        if status != "ok":
            return status, quorum, read, (), None, {}, None
        write_bricks = tuple(b.host for b in vol.data_bricks if seen[b.host] == "up")
        arb = vol.arbiter
        arbiter = arb.host if arb is not None and seen[arb.host] == "up" else None
        p = DiskPlan(d, c, status, 0.0, quorum, read, write_bricks, arbiter)
        usage = self.latency.usage(vol, p)
        return status, quorum, read, write_bricks, arbiter, usage, self.latency.shape_key(p)
