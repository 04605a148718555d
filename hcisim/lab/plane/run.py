"""The management plane of one lab run, up and down in one place.

``with management_plane(be, sc) as plane:`` formats the VM leases on the lease volume,
boots every host's sanlock daemon and agent, creates the engine's namespace and starts the
engine; ``plane.engine.start_vms(placement)`` starts the scenario's VMs through the
agents. Leaving the block (exceptions and Ctrl-C included) stops the engine, kills every
guest, agent and sanlock daemon of the lab (from their pid files) and removes the engine's
namespace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcisim.lab.errors import LabError
from hcisim.lab.guests.qemu import reclaim_guests
from hcisim.lab.guests.vmstate import StateRow, vm_state_rows
from hcisim.lab.plane.agent import qmp_events, read_events
from hcisim.lab.plane.client import EngineNet
from hcisim.lab.plane.engine import Engine
from hcisim.lab.plane.hosts import (
    PlaneConfig,
    bring_up,
    make_engine_netns,
    reclaim_plane,
    remove_engine_netns,
)
from hcisim.placement import cluster_of
from hcisim.scenario import Scenario

__all__ = ["Plane", "lease_config", "management_plane"]


def lease_config(sc: Scenario) -> PlaneConfig:
    """The leased VMs (HA VMs with ``lease``, not the hosted engine) and their volume."""
    cluster = cluster_of(sc)
    leased = tuple(v.name for v in cluster.vms if v.holds_lease and not v.hosted_engine
                   and sc.vm(v.name).disks)
    volumes = {sc.vm(v).disks[0].volume for v in leased}
    if len(volumes) > 1:
        raise LabError("configure the VM leases",
                       f"leased VMs on several volumes {sorted(volumes)}: the lab keeps one "
                       "lockspace; put the leased VMs' disks on one volume")
    volume = volumes.pop() if volumes else sc.volumes[0].name
    return PlaneConfig(volume, leased, sc.compute.fencing.lease_io_timeout_s)


@dataclass
class Plane:
    be: Any
    cfg: PlaneConfig
    engine: Engine

    def host_dirs(self) -> dict[str, Path]:
        return {h.name: h.dir for h in self.be.lab_.hosts}

    def agent_events(self) -> list[dict[str, Any]]:
        """Every event of every host's agents, by time."""
        out: list[dict[str, Any]] = []
        for d in self.host_dirs().values():
            out += read_events(d)
        return sorted(out, key=lambda e: float(e["t"]))

    def vm_state(self, vm: str, t0: float, t_end: float) -> list[StateRow]:
        """``vm``'s states on every host it ran on (QMP events the agents logged)."""
        rows: list[StateRow] = []
        for host, d in self.host_dirs().items():
            events = qmp_events(d, vm)
            if events:
                rows += vm_state_rows(vm, host, events, t0, t_end)
        return sorted(rows, key=lambda r: r.t_start_s)


@contextlib.contextmanager
def management_plane(be: Any, sc: Scenario) -> Iterator[Plane]:
    lab = be.lab_
    cfg = lease_config(sc)
    net: EngineNet | None = None
    engine: Engine | None = None
    try:
        bring_up(lab, cfg)
        net = EngineNet(make_engine_netns(lab), workers=4 + 2 * len(sc.vms))
        engine = Engine(be, sc, cfg, net)
        yield Plane(be, cfg, engine)
    finally:
        if engine is not None:
            engine.stop()
        reclaim_guests(lab.dir)
        reclaim_plane(lab.dir)
        if net is not None:
            net.close()
        remove_engine_netns(lab)
