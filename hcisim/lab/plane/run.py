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
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from hcisim.lab.errors import LabError
from hcisim.lab.guests.qemu import reclaim_guests
from hcisim.lab.guests.vmstate import StateRow, vm_state_rows
from hcisim.lab.history import CheckResult, ran_twice_events
from hcisim.lab.plane import sanlock as sl
from hcisim.lab.plane.agent import qmp_events, read_events
from hcisim.lab.plane.client import EngineNet
from hcisim.lab.plane.engine import Engine
from hcisim.lab.plane.hosted_engine import (
    engine_running,
    engine_vm_name,
    ha_events,
    start_ha_agents,
    write_config,
)
from hcisim.lab.plane.hosts import (
    PlaneConfig,
    bring_up,
    make_engine_netns,
    reclaim_plane,
    remove_engine_netns,
    sanlock_host,
)
from hcisim.observations import Observations, Recorder
from hcisim.observations.schema import EventKind, VmState
from hcisim.placement import cluster_of
from hcisim.scenario import Fault, Scenario

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
    engine = engine_vm_name(sc)
    return PlaneConfig(volume, leased, sc.compute.fencing.lease_io_timeout_s, engine,
                       sc.vm(engine).disks[0].volume if engine else "")


@dataclass
class Plane:
    be: Any
    cfg: PlaneConfig
    engine: Engine
    ha_started_at: float | None = None

    def start(self, placement: dict[str, str]) -> None:
        """Start the hosted engine VM where ``placement`` says (as its deployment does), the
        hosts' HA agents (they find the engine running and collect their history while the
        other VMs boot), the scenario's other VMs, then the engine's host monitoring.
        ``ha_started_at``: when the HA agents ran (epoch; None without a hosted engine)."""
        engine = self.cfg.engine_vm
        if engine and engine in placement:
            self.engine.start_vms({engine: placement[engine]})
            start_ha_agents(self.be.lab_)
            self.ha_started_at = time.time()
        self.engine.start_vms({vm: h for vm, h in placement.items() if vm != engine})
        self.engine.start()

    def host_dirs(self) -> dict[str, Path]:
        return {h.name: h.dir for h in self.be.lab_.hosts}

    def agent_events(self) -> list[dict[str, Any]]:
        """Every event of every host's agents, by time."""
        out: list[dict[str, Any]] = []
        for d in self.host_dirs().values():
            out += read_events(d)
        return sorted(out, key=lambda e: float(e["t"]))

    def lifecycle_rows(self, t0: float, t_end: float, power_cuts: dict[str, float]
                       ) -> list[StateRow]:
        """Every VM's life from the agents' logs, in run seconds (``t0`` = run start):
        restarting from launch to its agent's ready line, running until qemu exited or its
        host lost power (``power_cuts``: host -> epoch; the agent died with the host), down
        in between. A start that failed leaves no row."""
        rows: list[StateRow] = []
        by_vm: dict[str, list[dict[str, Any]]] = {}
        for e in self.agent_events():
            if e.get("vm"):
                by_vm.setdefault(str(e["vm"]), []).append(e)
        for vm, events in by_vm.items():
            last_end: float | None = None
            launch: dict[str, Any] | None = None
            for e in events:
                if e["event"] == "LAUNCHED":
                    launch = e
                elif e["event"] == "UP" and launch is not None:
                    # restarting from the request; a leased start from when qemu runs (it
                    # waited for sanlock's lease before: down, as in the model)
                    data = launch.get("data") or {}
                    t_l = float(data.get("running_at", launch["t"]) if data.get("lease")
                                else launch["t"])
                    host, t_u = str(e["host"]), float(e["t"])
                    ends = [float(x["t"]) for x in events if x["event"] == "PROCESS_EXIT"
                            and x["host"] == host and float(x["t"]) > t_u]
                    cut = power_cuts.get(host)
                    if cut is not None and cut > t_u:
                        ends.append(cut)
                    t_x = min([*ends, t_end])
                    if last_end is not None and t_l > last_end:
                        rows.append(StateRow(vm, "", last_end - t0, t_l - t0, "down", "lab"))
                    rows.append(StateRow(vm, host, t_l - t0, t_u - t0, "restarting", "lab"))
                    rows.append(StateRow(vm, host, t_u - t0, t_x - t0, "running", ""))
                    last_end, launch = t_x, None
            if last_end is not None and last_end < t_end:
                rows.append(StateRow(vm, "", last_end - t0, t_end - t0, "down", "lab"))
        return rows

    def observations(self, sc: Scenario, t0: float, t_end: float,
                     faults: Sequence[tuple[float, Fault]],
                     histories: dict[str, CheckResult] | None = None) -> Observations:
        """The run's compute observations (events, vm_state) for the claims: ``faults``
        are (epoch, fault) as injected; ``histories``: the guests' checked write histories
        (their "ran twice" findings become ``vm_ran_twice`` events)."""
        rec = Recorder()
        for vm, result in (histories or {}).items():
            for t_s, detail in ran_twice_events(result, t0):
                rec.event(t_s, "vm_ran_twice", vm, detail)
        for t, fault in faults:
            rec.fault_event(t - t0, True, fault)
        self.engine.record(rec, t0)
        for t, kind, target, detail in self.lease_events(t0):
            rec.event(t - t0, kind, target, detail)
        cuts = {f.target: t for t, f in faults if f.kind == "node_power_loss"}
        rows = self.lifecycle_rows(t0, t_end, cuts)
        for r in rows:
            rec.vm_state(r.vm, r.host, r.t_start_s, r.t_end_s, cast(VmState, r.state), r.reason)
        for t_s, kind, target, detail in engine_timeline(rows, self.cfg.engine_vm,
                                                         t_end - t0):
            rec.event(t_s, kind, target, detail)
        return rec.build("lab", sc.name, sc.seed, t_end - t0)

    def lease_events(self, t0: float) -> list[tuple[float, EventKind, str, str]]:
        """The lease timeline from ``t0`` on (epoch, kind, target, detail), from each host's
        sanlock log (to the second): the daemon giving up its delta lease and killing the
        holders, a VM's lease granted to a start (the holder's PID is the qemu the agent
        launched). When the old host's delta lease became dead is in the acquiring
        daemon's debug log only (no ``lease_expired`` here)."""
        out: list[tuple[float, EventKind, str, str]] = []
        pids = {(str(e["host"]), int(e["data"]["pid"])): str(e["vm"])
                for e in self.agent_events()
                if e["event"] == "LAUNCHED" and (e.get("data") or {}).get("pid")}
        for h in self.be.lab_.hosts:
            sh = sanlock_host(h)
            for t in sl.lease_lost_times(sh):
                if t >= t0:
                    out.append((t, "lease_lost", h.name, "sanlock: check_our_lease failed"))
            for t, pid in sl.acquired_times(sh):
                vm = pids.get((h.name, pid))
                if vm is not None and t >= t0:
                    out.append((t, "lease_acquired", vm, f"on {h.name}"))
        return sorted(out)

    def ha_events(self) -> list[dict[str, Any]]:
        """The HA agents' state changes and engine starts, by time."""
        return ha_events(self.host_dirs())

    def vm_state(self, vm: str, t0: float, t_end: float) -> list[StateRow]:
        """``vm``'s states on every host it ran on (QMP events the agents logged)."""
        rows: list[StateRow] = []
        for host, d in self.host_dirs().items():
            events = qmp_events(d, vm)
            if events:
                rows += vm_state_rows(vm, host, events, t0, t_end)
        return sorted(rows, key=lambda r: r.t_start_s)


def engine_timeline(rows: Sequence[StateRow], vm: str, t_end_s: float
                    ) -> list[tuple[float, EventKind, str, str]]:
    """The hosted engine's ``engine_down`` / ``engine_up`` (with ``vm_down`` /
    ``vm_started``, as the model records them) from its guest's life: down when a running
    interval ends before the run does, up when the next one begins (its guest booted)."""
    out: list[tuple[float, EventKind, str, str]] = []
    running = sorted((r for r in rows if r.vm == vm and r.state == "running"),
                     key=lambda r: r.t_start_s)
    for i, r in enumerate(running):
        if i > 0:
            out += [(r.t_start_s, "vm_started", vm, f"on {r.host}: started by the HA agent"),
                    (r.t_start_s, "engine_up", vm, f"on {r.host}")]
        if r.t_end_s < t_end_s - 1e-6:
            out += [(r.t_end_s, "vm_down", vm, f"on {r.host}"),
                    (r.t_end_s, "engine_down", vm, f"on {r.host}")]
    return out


@contextlib.contextmanager
def management_plane(be: Any, sc: Scenario) -> Iterator[Plane]:
    """See the module doc; with a hosted engine VM the engine role acts only while its
    guest runs (``engine_up``), and :meth:`Plane.start` starts the HA agents."""
    lab = be.lab_
    cfg = lease_config(sc)
    net: EngineNet | None = None
    engine: Engine | None = None
    try:
        bring_up(lab, cfg)
        net = EngineNet(make_engine_netns(lab), workers=4 + 2 * len(sc.vms))
        if cfg.engine_vm:
            write_config(lab, sc)
            vm = cfg.engine_vm
            engine = Engine(be, sc, cfg, net, engine_up=lambda: engine_running(lab, vm))
        else:
            engine = Engine(be, sc, cfg, net)
        yield Plane(be, cfg, engine)
    finally:
        if engine is not None:
            engine.stop()
        reclaim_plane(lab.dir)  # the HA agents first: nothing restarts the engine now
        reclaim_guests(lab.dir)
        if net is not None:
            net.close()
        remove_engine_netns(lab)
