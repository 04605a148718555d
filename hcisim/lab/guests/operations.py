"""The scenario's operations on the guests run: live migrations with vdsm's policy, and
host maintenance through the lab plane (:mod:`hcisim.lab.plane.maintenance`).

A migration: a destination qemu on the target host, the stream over the lab network that
shares a NIC with the scenario's ``migration`` network, vdsm's policy from
``compute.migration`` (bandwidth cap scaled like the guest's RAM, the model's exponential
downtime steps, monitor interval, progress timeout, max time per GiB).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hcisim.lab.guests.fleet import Fleet
from hcisim.lab.guests.lab import start_destination
from hcisim.lab.guests.links import migration_lab_network
from hcisim.lab.guests.migrate import MigrationPolicy, MigrationResult, migrate
from hcisim.lab.guests.qemu import Guest
from hcisim.lab.plane.maintenance import LabMaintenance
from hcisim.lab.wait import wait_until
from hcisim.scenario import Scenario


@dataclass
class Moved:
    """One scenario migration as it ran: the qemus involved and qemu's counters."""

    vm: str
    src: str
    dst: str
    result: MigrationResult
    stopped_at: float | None = None  # the source's STOP (qemu's timestamp)
    resumed_at: float | None = None  # the destination's first RESUME

    @property
    def switchover_s(self) -> float | None:
        """What the guest saw: from the source's stop to the destination running. qemu's
        own ``downtime`` ends when the source has written the last pages into its socket;
        on a shaped (slow) link they are still queued then (tbf, socket buffers), and the
        destination starts only once they are in (lab-migration-light-fast: 14 ms counted,
        205 ms seen)."""
        if self.stopped_at is None or self.resumed_at is None:
            return None
        return max(0.0, self.resumed_at - self.stopped_at)


def switchover(src: Guest, dst: Guest, t_start: float) -> tuple[float | None, float | None]:
    """The source's last STOP after ``t_start`` and the destination's first RESUME."""
    stops = [e.t for e in src.qmp.events if e.name == "STOP" and e.t >= t_start]
    resumes = [e.t for e in dst.qmp.events if e.name == "RESUME"]
    return (stops[-1] if stops else None), (resumes[0] if resumes else None)


@dataclass
class GuestRun:
    """What the guests did during the run (filled by the run and the operations thread)."""

    fleet: Fleet
    qemus: dict[str, list[Guest]] = field(default_factory=dict)  # VM -> qemus in order
    migrations: list[Moved] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    killed: dict[str, float] = field(default_factory=dict)  # host -> epoch of power loss
    events: list[tuple[float, str, str, str]] = field(default_factory=list)  # epoch, target,
    # detail, source of each ``operation`` event

    def current(self, vm: str) -> Guest:
        return self.qemus[vm][-1]

    def placement(self) -> dict[str, str]:
        """VM -> host of the qemu it runs in now (a VM whose qemu is gone is nowhere)."""
        return {vm: q[-1].spec.host for vm, q in self.qemus.items() if q[-1].running()}

    def event(self, target: str, detail: str, source: str = "engine") -> None:
        self.events.append((time.time(), target, detail, source))


def downtime_limits(sc: Scenario, ram_gib: float) -> tuple[tuple[int, ...], float]:
    """vdsm's exponential downtime schedule (limits in ms) and the DowntimeThread's wait
    between steps: the same formulas as the model's (hcisim.model.compute.migration; the
    labs may not import the model)."""
    m = sc.compute.migration
    n, top = m.downtime_steps, m.downtime_ms
    if n <= 1:
        return (int(top),), 0.0
    offset = top / n
    base = (top - offset) ** (1.0 / (n - 1))
    limits = [*(offset + base**i for i in range(n - 1)), top]
    wait = min(m.downtime_delay_per_gib_s * ram_gib / n, 60.0)
    return tuple(max(1, int(v)) for v in limits), wait


def policy_for(sc: Scenario, vm: str, scale: float) -> MigrationPolicy:
    """vdsm's policy for ``vm``'s guest; bandwidth scaled like its RAM (fleet.scale), so
    the transfer takes as long as the scenario's full-size VM would."""
    m = sc.compute.migration
    ram_gib = next(v.ram_gib for v in sc.vms if v.name == vm)
    limits, wait = downtime_limits(sc, ram_gib)
    max_time = m.max_time_per_gib_s * ram_gib if m.max_time_per_gib_s else math.inf
    return MigrationPolicy(max_bandwidth_mib_s=m.max_bandwidth_mb_s * 1e6 * scale / (1 << 20),
                           downtime_limits_ms=limits, step_wait_s=wait,
                           progress_timeout_s=m.progress_timeout_s, max_time_s=max_time,
                           monitor_interval_s=m.monitor_interval_s)


def run_operations(sc: Scenario, be: Any, gr: GuestRun, t0: float,
                   stack: contextlib.ExitStack, resume: Callable[[Guest, str], None],
                   halt: threading.Event) -> None:
    """Carry out the scenario's operations at their times, one after the other in this
    thread (a maintenance's evacuation holds the next operation back): ``migrate``,
    ``maintenance``, ``activate``, ``rolling_maintenance`` (:mod:`hcisim.lab.plane.
    maintenance`). ``halt`` (the run is unwinding) stops it before the next operation."""
    ports = itertools.count(49152)

    def move(vm: str, dst: str) -> bool:
        return migrate_vm(sc, be, gr, stack, resume, vm, dst, next(ports))

    plane = LabMaintenance(sc, be, gr.placement, move, gr.event)
    for i, op in enumerate(sorted(sc.operations, key=lambda o: o.at_s)):
        if halt.wait(max(0.0, t0 + op.at_s - time.time())):
            return
        gr.event(op.host or op.vm or "", op.kind, "scenario")
        try:
            if op.kind == "migrate" and op.vm in gr.qemus:
                src = gr.current(op.vm).spec.host
                move(op.vm, op.host or next(h for h in sc.host_names if h != src))
            elif op.kind == "maintenance" and op.host:
                plane.maintenance(op.host)
            elif op.kind == "activate" and op.host:
                plane.activate(op.host)
            elif op.kind == "rolling_maintenance":
                plane.rolling(op.hold_s, halt)
            else:
                gr.errors.append(f"operations[{i}] {op.kind}: not carried out on the lab")
        except Exception as exc:  # a failed operation is recorded, never fatal to the run
            gr.errors.append(f"operations[{i}] {op.kind}: {exc}")


def migrate_vm(sc: Scenario, be: Any, gr: GuestRun, stack: contextlib.ExitStack,
               resume: Callable[[Guest, str], None], vm: str, dst_host: str,
               port: int) -> bool:
    """Live-migrate ``vm`` to ``dst_host`` over the migration network with vdsm's policy;
    whether it runs there now (else it runs on at its source)."""
    src = gr.current(vm)
    volume = gr.fleet.volumes[vm]
    try:
        dst, uri = start_destination(be, src, dst_host, volume, port=port,
                                     network=migration_lab_network(sc, src.spec.host))
        stack.enter_context(dst)
        result = migrate(src, dst, uri, policy_for(sc, vm, gr.fleet.scale[vm]))
    except Exception as exc:  # a failed migration is recorded, never fatal to the run
        gr.errors.append(f"migrate {vm} to {dst_host}: {exc}")
        return False
    moved = Moved(vm, src.spec.host, dst_host, result)
    gr.migrations.append(moved)
    if result.outcome != "completed":  # the VM runs on at the source
        dst.stop()
        return False
    wait_until(functools.partial(lambda s, d, t: switchover(s, d, t)[1] is not None,
                                 src, dst, result.t_start), 10.0, 0.05)
    moved.stopped_at, moved.resumed_at = switchover(src, dst, result.t_start)
    gr.qemus[vm].append(dst)
    src.stop()
    resume(dst, volume)
    return True
