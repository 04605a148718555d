"""Host maintenance on the lab, as the engine carries it out for a Gluster host.

The model's rules (:mod:`hcisim.model.compute.maintenance`) on real signals:

1. **Validations** (:func:`hcisim.placement.maintenance_rules.maintenance_refusal`, from
   ovirt-engine's ``MaintenanceNumberOfVdssCommand``): the brick states of ``gluster volume
   status`` and the entry counts of ``gluster volume heal VOL info summary`` (pending +
   possibly healing + split-brain, what oVirt stores as a brick's unsynced entries), both
   asked on a peer. Refused: an ``operation`` event ``maintenance refused: <why>``, the
   host stays up.
2. **Evacuation**: the host stops taking VMs; each VM on it, in scenario order, is
   live-migrated (the run's ``migrate``: qemu over the migration network with vdsm's policy),
   ``max_outgoing`` (vdsm: 2) at once, to the host :func:`hcisim.placement.choose_host`
   picks (each decision reserves its target), the one scheduler the model and the lab
   plane use. A VM that does not leave keeps the host preparing (``maintenance
   stuck``).
3. **Bricks stopped cleanly** (SIGTERM: the clients drop them at once, no ping-timeout
   stall): ``maintenance: entered``. vdsm stops the Gluster services here; the lab keeps the
   host's glusterd, so that activation can start the bricks with ``volume start force``.
4. **Activation**: bricks started (``volume start force``); the self-heal daemons notice
   them and heal, nobody runs ``volume heal`` (as on oVirt): ``activate: up``.

A rolling maintenance takes every host in turn and asks again every ``retry_s`` while the
engine refuses, so each host waits for the heal of the one before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hcisim.placement import choose_host, cluster_of
from hcisim.placement.ha_rules import GlusterBricks
from hcisim.placement.maintenance_rules import UnsyncedEntries, maintenance_refusal
from hcisim.scenario import Scenario

RETRY_S = 10.0  # as the model's rolling maintenance (hcisim.model.compute.maintenance)
DEFAULT_HOLD_S = 60.0


@dataclass
class LabMaintenance:
    """Maintenance and activation of the lab's hosts for one run.

    ``placement()``: VM -> host where it runs now;
    ``migrate(vm, dst)``: live-migrate ``vm`` there, True when it runs there afterwards;
    ``event(target, detail)``: record an ``operation`` event at the current time.
    """

    sc: Scenario
    be: Any
    placement: Callable[[], dict[str, str]]
    migrate: Callable[[str, str], bool]
    event: Callable[[str, str], None]
    state: dict[str, str] = field(default_factory=dict)  # host -> up | preparing | maintenance

    def __post_init__(self) -> None:
        self.state = {h: "up" for h in self.sc.host_names}
        self.cluster = cluster_of(self.sc)

    # --- what the engine sees of Gluster -------------------------------------------------
    def _hosts_by_address(self) -> dict[str, str]:
        out = {}
        for h in self.sc.host_names:
            lay = self.be.lab_.host(h)
            out.update({h: h, lay.storage_addr: h, lay.mgmt_addr: h})
        return out

    def gluster_view(self, target: str) -> tuple[GlusterBricks, UnsyncedEntries]:
        """Bricks (host, ONLINE) and unsynced entries per volume, asked on an up peer."""
        peer = next(h for h in self.sc.host_names if h != target and self.state[h] != "down")
        cli = self.be.faults.machine.gluster(peer)
        by_addr = self._hosts_by_address()
        bricks: dict[str, list[tuple[str, bool]]] = {}
        unsynced: dict[str, list[tuple[str, int]]] = {}
        for v in self.sc.volumes:
            status = [p for p in cli.volume_status(v.name) if p.kind == "brick"]
            bricks[v.name] = [(by_addr.get(p.host, p.host), p.online) for p in status]
            unsynced[v.name] = [
                (by_addr.get(b.brick.split(":", 1)[0], b.brick),
                 sum(n or 0 for n in (b.pending, b.healing, b.split_brain)))
                for b in cli.heal_summary(v.name)]
        return bricks, unsynced

    def refusal(self, host: str) -> str | None:
        if self.state[host] != "up":
            return f"{host} is {self.state[host]}"
        return maintenance_refusal(host, *self.gluster_view(host))

    # --- the operations ------------------------------------------------------------------
    def maintenance(self, host: str) -> bool:
        """Validate, evacuate, stop the bricks. Whether the host is now in maintenance."""
        why = self.refusal(host)
        if why is not None:
            self.event(host, f"maintenance refused: {why}")
            return False
        self.state[host] = "preparing"
        view = self.placement()
        moves = []
        for vm in [v.name for v in self.sc.vms if view.get(v.name) == host]:
            dst = self._destination(vm, host, view)
            if dst is None:
                self.event(vm, f"maintenance of {host}: no host fits")
                continue
            view[vm] = dst  # the engine reserves the target from the decision on
            moves.append((vm, dst))
        # vdsm's max_outgoing_migrations at once (the model's slots)
        with ThreadPoolExecutor(max(1, self.sc.compute.migration.max_outgoing),
                                thread_name_prefix="evacuate") as pool:
            list(pool.map(lambda m: self.migrate(*m), moves))
        left = sorted(v for v, h in self.placement().items() if h == host)
        if left:
            self.event(host, f"maintenance stuck: {', '.join(left)} still on it")
            return False
        self.be.faults.stop_bricks(host)
        self.state[host] = "maintenance"
        self.event(host, "maintenance: entered")
        return True

    def activate(self, host: str) -> None:
        if self.state[host] not in ("maintenance", "preparing"):
            return
        was = self.state[host]
        self.state[host] = "up"
        if was == "maintenance":
            self.be.faults.start_bricks(host)
        self.event(host, "activate: up")

    def rolling(self, hold_s: float | None, halt: threading.Event,
                retry_s: float = RETRY_S) -> None:
        """Every host in turn: maintenance (asked again while refused), hold, activate."""
        hold = DEFAULT_HOLD_S if hold_s is None else hold_s
        for host in self.sc.host_names:
            said = None
            while (why := self.refusal(host)) is not None:
                if why.split(":")[0] != said:
                    self.event(host, f"rolling maintenance waits: {why}")
                    said = why.split(":")[0]
                if halt.wait(retry_s):
                    return
            if not self.maintenance(host):
                self.event(host, f"rolling maintenance stopped: {host} is {self.state[host]}")
                return
            if halt.wait(hold):
                return
            self.activate(host)
        self.event("", "rolling maintenance: done")

    def _destination(self, vm: str, src: str, view: dict[str, str]) -> str | None:
        down = {h for h, s in self.state.items() if s != "up"}
        return choose_host(self.cluster, self.cluster.vm(vm), view, down | {src}, None)
