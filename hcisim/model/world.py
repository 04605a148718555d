"""The physical state of the cluster: power, hangs, NICs, cuts, brick processes, disks.

Faults and operations change it; nothing here knows about clients, quorum or time. Faults
may overlap, so every "broken" mark is a counter and a thing is broken while its count > 0.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from hcisim.model.elaborate import BrickModel, Cluster
from hcisim.model.neighbour import Neighbours
from hcisim.scenario.cluster import NetworkRole

Cut = tuple[frozenset[str], NetworkRole]
_CLEAN: frozenset[object] = frozenset()


class World:
    """The marks are Counters read with ``.get`` (absent or 0: not broken), not ``[k] ==
    0``: a Counter's missing key goes through its Python-level ``__missing__``, and these
    are asked for unbroken things ~10,000 times a simulated year."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.powered_off: Counter[str] = Counter()
        self.hung: Counter[str] = Counter()
        self.nic_down: Counter[tuple[str, str]] = Counter()  # (host, nic)
        self.cuts: Counter[Cut] = Counter()  # ({a, b}, role): no traffic between a and b
        self.crashed: Counter[str] = Counter()  # brick key: process killed (TCP RST)
        self.brick_hung: Counter[str] = Counter()  # brick key: process stopped (SIGSTOP)
        self.disk_failed: Counter[tuple[str, str]] = Counter()  # (host, disk)
        self.maintenance: set[str] = set()  # hosts whose bricks were stopped cleanly
        self.sq_killed: set[str] = set()  # brick keys stopped by glusterd (no server quorum)
        # every mark above, in order (they are changed in place, never replaced)
        self._marks: tuple[Counter[Any] | set[str], ...] = tuple(
            m for m in vars(self).values() if isinstance(m, Counter | set))
        # the same, each with whether it is a set (a counter counts overlapping faults)
        self._kinds: list[tuple[Any, bool]] = [(m, isinstance(m, set)) for m in self._marks]
        # the hosts' ARP entries for their peers: a random stream of their own
        self.neighbours = Neighbours(np.random.default_rng(
            np.random.SeedSequence(cluster.scenario.seed, spawn_key=(2,))))

    def fingerprint(self) -> tuple[frozenset[object], ...]:
        """Everything broken right now, as one comparable value: the same fingerprint means
        the same world (the clients' views need not be reconciled again)."""
        return tuple([_CLEAN if not mark else frozenset(mark) if is_set
                      else frozenset([k for k, n in mark.items() if n])
                      for mark, is_set in self._kinds])

    # --- hosts ------------------------------------------------------------------------
    def powered(self, host: str) -> bool:
        return not self.powered_off.get(host)

    def running(self, host: str) -> bool:
        """The host executes: powered and not hung (its VMs, client and glusterd run)."""
        return not self.powered_off.get(host) and not self.hung.get(host)

    def nic_up(self, host: str, role: NetworkRole) -> bool:
        return not self.nic_down.get((host, self.cluster.nic_name(host, role)))

    def link(self, a: str, b: str, role: NetworkRole = "storage") -> bool:
        """Packets pass between hosts ``a`` and ``b`` on network ``role`` (both running)."""
        if not (self.running(a) and self.running(b)):
            return False
        if a == b:
            return True
        if not (self.nic_up(a, role) and self.nic_up(b, role)):
            return False
        pair = frozenset((a, b))
        return not self.cuts.get((pair, role))

    def answers(self, a: str, b: str, role: NetworkRole = "storage") -> bool:
        """A connect from ``a`` reaches ``b``'s kernel, which answers it (SYN-ACK or RST)
        even while ``b``'s processes are hung: both powered, NICs up, not cut."""
        if not (self.powered(a) and self.powered(b)):
            return False
        if a == b:
            return True
        return (self.nic_up(a, role) and self.nic_up(b, role)
                and not self.cuts.get((frozenset((a, b)), role)))

    def arp_answers(self, a: str, b: str, role: NetworkRole = "storage") -> bool:
        """``b``'s kernel answers ``a``'s ARP: both powered, NICs up. A cut (iptables drops
        IP) and a hang leave ARP answered (:mod:`hcisim.model.neighbour`)."""
        if not (self.powered(a) and self.powered(b)):
            return False
        return a == b or (self.nic_up(a, role) and self.nic_up(b, role))

    # --- bricks -----------------------------------------------------------------------
    def disk_ok(self, brick: BrickModel) -> bool:
        return not self.disk_failed.get((brick.host, brick.disk.name))

    def brick_process_up(self, brick: BrickModel) -> bool:
        """The glusterfsd process of the brick exists (it may still be frozen by a hang)."""
        return (not self.powered_off.get(brick.host) and not self.crashed.get(brick.key)
                and self.disk_ok(brick) and brick.host not in self.maintenance
                and brick.key not in self.sq_killed)

    def brick_serving(self, brick: BrickModel) -> bool:
        return (self.brick_process_up(brick) and not self.hung.get(brick.host)
                and not self.brick_hung.get(brick.key))

    def reachable(self, client: str, brick: BrickModel) -> bool:
        """A client on ``client`` can talk to the brick right now."""
        return self.brick_serving(brick) and self.link(client, brick.host)

    def refused(self, client: str, brick: BrickModel) -> bool:
        """The brick is gone and the client learns it at once (TCP RST / FIN, EIO from a
        failed disk): its host runs and the path works, but the process is not serving. A
        stopped (SIGSTOP) brick process keeps its connections open: that loss is silent."""
        return (self.running(brick.host) and self.link(client, brick.host)
                and not self.brick_hung.get(brick.key) and not self.brick_serving(brick))
