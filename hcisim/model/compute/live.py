"""Live migrations in simulated time: slot queues, fluid flows, maintenance and activation.

Each migration waits for an outgoing slot on its source (``max_outgoing``, vdsm
max_outgoing_migrations 2) and an incoming slot on its target (``max_incoming``), in request
order, then runs :class:`~hcisim.model.compute.migration.PreCopy` over the flow the storage
model opens on the migration network: at every change of the flow's rate it advances the
pre-copy state to now and asks again when the next milestone falls. The target's resources
are reserved from the moment the migration is decided (the engine's pending resources), so
the scheduler never promises them twice.

Maintenance (ovirt-site admin guide, "Moving a host to maintenance mode"): refused for
Gluster reasons first (:mod:`~hcisim.model.compute.maintenance`); else the host stops
taking VMs (PreparingForMaintenance), every VM on it is migrated away in priority order; when
none is left it is in Maintenance and the storage model stops its bricks cleanly. A VM that
cannot leave (no host fits, migration aborted, paused) keeps the host preparing.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import simpy

from hcisim.model.compute import precopy_kernel
from hcisim.model.compute.maintenance import refusal
from hcisim.model.compute.migration import GuestMemory, MigrationResult, PreCopy
from hcisim.model.compute.ports import MigrationFlow
from hcisim.placement.inventory import loads, priority_order, vms_on
from hcisim.placement.scheduler import choose_host, rejection

if TYPE_CHECKING:
    from hcisim.model.compute.process import ComputeModel

Proc = Generator[Any, Any, None]


@dataclass
class _Active:
    vm: str
    src: str
    dst: str
    proc: simpy.Process
    pc: PreCopy | None = None
    flow: MigrationFlow | None = None
    rate: float = 0.0
    # the pre-copy state (its attributes) before it was run ahead, and the steps' times
    mark: dict[str, Any] | None = None
    steps: tuple[float, ...] = ()
    consts: tuple[Any, Any, Any] | None = None  # the compiled steps' (precopy_kernel)


# At most this many steps are run ahead: a rate change throws the steps after it away and
# replays those before it, while each batch costs a wake of the process (three SimPy
# events). The rate a flow has when it is opened is 0 until this instant's settle gives it
# its share, so that first batch is one step (:meth:`Migrations._run`); after it, rates
# change in an availability year only when the VM stops (a new flow, a new first batch),
# and a migration's ~80 steps, ~50 of them monitor ticks in the middle of a copy pass, go
# in two or three batches.
RUN_AHEAD = 64


def _run_ahead(a: _Active, now: float, limit: int) -> tuple[float, float]:
    """Advance ``a.pc`` at ``a.rate`` through the steps (end of a phase, a monitor tick) up
    to the first that anyone else sees (the migration ends, or the VM stops and the flow
    must take the whole link), at most ``limit`` of them. Returns the last one's
    time: the process sleeps until then instead of waking at every step (a migration takes
    some eighty steps, of which two are seen).

    The steps are those the process would take waking at each: the next at ``t +
    max(0, horizon - t)`` (what SimPy makes of ``timeout(horizon - t)``), and a step is run
    ahead only if a timeout set at ``now`` lands exactly on it (``now + (t - now) == t``),
    else the run ahead stops before it and the process wakes there. The state before is
    kept (``a.mark``): if the rate changes first, :func:`_catch_up` replays the steps
    before that instant and advances to it, as a process woken by the change would.
    Returns (time of the last step, the timeout's delay from ``now``).

    The steps run compiled (:func:`~hcisim.model.compute.precopy_kernel.run_ahead`, the
    same state bit for bit as :func:`_run_ahead_in_python`, the reference)."""
    pc = a.pc
    assert pc is not None
    if not precopy_kernel.compiles(pc, a.rate):
        return _run_ahead_in_python(a, now, limit)
    a.mark = dict(vars(pc))  # its attributes are numbers, strings and immutables
    if a.consts is None or len(a.consts[2]) < limit:
        a.consts = precopy_kernel.constants(pc, max(limit, RUN_AHEAD))
    steps, first_wait = precopy_kernel.run_ahead(pc, a.consts, now, a.rate, limit)
    a.steps = tuple(steps)
    t = steps[-1]
    return t, (first_wait if len(steps) == 1 else t - now)


def _run_ahead_in_python(a: _Active, now: float, limit: int) -> tuple[float, float]:
    """:func:`_run_ahead` with :meth:`PreCopy.step` in Python: the reference the compiled
    steps are tested against."""
    pc, rate = a.pc, a.rate
    assert pc is not None
    a.mark = dict(vars(pc))  # its attributes are numbers, strings and immutables
    limited = pc.rate_limited
    steps: list[float] = []
    t = now
    first_wait = 0.0
    while True:
        # after the first step only one a timeout set now lands on: else wake before it
        step = pc.step(t, rate, now if steps else None)
        if step is None:
            break
        t_next, wait = step
        if not steps:
            first_wait = wait
        steps.append(t_next)
        t = t_next
        if pc.result is not None or pc.rate_limited != limited or len(steps) >= limit:
            break
    a.steps = tuple(steps)
    return t, (first_wait if len(steps) == 1 else t - now)


def _catch_up(a: _Active, now: float) -> None:
    """The pre-copy state at ``now`` (before the last step run ahead): replay the steps run
    ahead that fall before ``now``, then advance to ``now`` at the rate of the time."""
    pc, mark = a.pc, a.mark
    assert pc is not None
    if mark is not None:
        vars(pc).update(mark)
        for t in a.steps:
            if t >= now:
                break
            pc.advance(t, a.rate)
        a.mark, a.steps = None, ()
    pc.advance(now, a.rate)


def _first_of(env: simpy.Environment, *events: simpy.Event) -> simpy.Event:
    """An event that fires when the first of ``events`` is processed (what ``a | b`` does,
    without a Condition's bookkeeping); the others forget it."""
    wake = env.event()

    def fire(_ev: simpy.Event) -> None:
        if not wake.triggered:
            wake.succeed()
            for ev in events:
                if ev.callbacks is not None and fire in ev.callbacks:
                    ev.callbacks.remove(fire)

    for ev in events:
        ev.callbacks.append(fire)
    return wake


class Migrations:
    def __init__(self, model: ComputeModel) -> None:
        self.m = model
        self.settings = model.sc.compute.migration
        env = model.env
        hosts = [h.name for h in model.cluster.hosts]
        self.out_slots = {h: simpy.Resource(env, self.settings.max_outgoing) for h in hosts}
        self.in_slots = {h: simpy.Resource(env, self.settings.max_incoming) for h in hosts}
        self.active: dict[str, _Active] = {}

    @property
    def targets(self) -> dict[str, str]:
        """VM -> target host of every decided migration (queued or running)."""
        return {vm: a.dst for vm, a in self.active.items()}

    def start(self, vm: str, src: str, dst: str) -> simpy.Process:
        proc = self.m.env.process(self._run(vm, src, dst))
        self.active[vm] = _Active(vm, src, dst, proc)
        return proc

    def abort(self, vm: str, reason: str, vm_lost: bool = False) -> None:
        """Stop ``vm``'s migration now; unless the VM itself is lost it keeps running on
        its source. Bookkeeping happens here, synchronously, so that the caller's next state
        change (pause, kill) is the last word."""
        a = self.active.pop(vm, None)
        if a is None:
            return
        if a.pc is not None:
            _catch_up(a, self.m.env.now)
            a.pc.abort(reason)
            self._record(a)
            if not vm_lost:
                self.m.log.set(self.m.env.now, vm, "running", a.src)
        if a.flow is not None:
            a.flow.close()
        if a.proc.is_alive and a.proc is not self.m.env.active_process:
            a.proc.interrupt(reason)

    def host_lost(self, host: str) -> None:
        """Migrations into a lost host fail; the VMs stay where they are."""
        for vm, a in list(self.active.items()):
            if a.dst == host:
                self.abort(vm, f"destination {host} lost")

    def memory(self, vm: str) -> GuestMemory:
        """The guest's RAM as migration sees it, from the scenario's VM (touched RAM, working
        set, dirty rate); a VM the scenario does not list (none today) from its spec."""
        try:
            v = self.m.sc.vm(vm)
        except KeyError:
            spec = self.m.cluster.vm(vm)
            return GuestMemory.of(spec.ram_gib, spec.dirty_rate_mb_s, spec.working_set_gib)
        return GuestMemory.of(v.ram_gib, v.dirty_rate_mb_s, v.working_set_gib,
                              v.touched_ram_gib)

    def link_mb_s(self, src: str, dst: str) -> float:
        """Line rate of the migration network between two hosts (the slower end): what the
        last pages may use once qemu has stopped the VM and lifted its rate limit. Their
        migration network if both have one, else management (as the storage model routes
        the flow)."""
        hosts = {h.name: h for h in self.m.sc.hosts}

        def has(h: str, role: str) -> bool:
            return any(role in n.networks for n in hosts[h].nics)

        role = "migration" if has(src, "migration") and has(dst, "migration") else "management"
        return min(max((n.gbps for n in hosts[h].nics if role in n.networks), default=0.0)
                   for h in (src, dst)) * 125.0

    def _run(self, vm: str, src: str, dst: str) -> Proc:
        m, env = self.m, self.m.env
        try:
            with self.out_slots[src].request() as out_req:
                yield out_req
                with self.in_slots[dst].request() as in_req:
                    yield in_req
                    a = self.active[vm]
                    t0 = env.now
                    m.log.set(t0, vm, "migrating", src, f"to {dst}")
                    m.rec.event(t0, "migration_start", vm, f"{src} -> {dst}")
                    a.flow = m.storage.open_migration_flow(vm, src, dst,
                                                           self.settings.max_bandwidth_mb_s)
                    a.pc = pc = PreCopy(self.memory(vm), self.settings, t0)
                    limited = True
                    fresh = True  # the flow has no share yet: this instant's settle gives it
                    while pc.result is None:
                        if pc.rate_limited != limited:  # the VM stopped: take the link
                            limited = pc.rate_limited
                            a.flow.close()
                            a.flow = m.storage.open_migration_flow(
                                vm, src, dst, self.settings.max_bandwidth_mb_s if limited
                                else self.link_mb_s(src, dst))
                            fresh = True
                        a.rate = a.flow.rate_mb_s()
                        # steps run ahead at a fresh flow's rate would be replayed at once
                        t_end, delay = _run_ahead(a, env.now, 1 if fresh else RUN_AHEAD)
                        fresh = False
                        changed = a.flow.changed()
                        yield _first_of(env, env.timeout(delay), changed)
                        if env.now < t_end:  # the rate changed before: replay up to now
                            _catch_up(a, env.now)
        except simpy.Interrupt:
            return  # abort() did the bookkeeping
        a = self.active.pop(vm)
        assert a.pc is not None and a.pc.result is not None and a.flow is not None
        a.flow.close()
        self._record(a)
        if a.pc.result.moved:
            m.placement[vm] = dst
            m.log.set(env.now, vm, "running", dst)
            m.storage.vm_placed(vm, dst)
        else:
            m.log.set(env.now, vm, "running", src)

    def _record(self, a: _Active) -> None:
        assert a.pc is not None and a.pc.result is not None
        r = a.pc.result
        self._row(a, r)
        self.m.rec.event(r.t_end_s, "migration_end", a.vm,
                         f"{r.outcome}: {r.reason} ({a.src} -> {a.dst})")

    def _row(self, a: _Active, r: MigrationResult) -> None:
        self.m.rec.add("migrations", a.vm, a.src, a.dst, r.t_start_s, r.t_end_s, r.downtime_s,
                       r.rounds, r.transferred_mb, r.outcome, self.settings.policy)

    def finish(self, t_end: float) -> None:
        """The run ends: a migration still under way gets its row as it stands (outcome
        ``running``, ended at the run's end), so that no migration the run saw start is
        missing from the table. One still waiting for a migration slot has sent nothing and
        has no row (its ``migration_start`` never happened either)."""
        for a in self.active.values():
            if a.pc is not None and a.pc.result is None:
                _catch_up(a, t_end)
                self._row(a, a.pc.so_far())

    # --- operations ------------------------------------------------------------------------

    def _destination(self, vm: str, src: str) -> str | None:
        spec = self.m.cluster.vm(vm)
        health = self.m._engine_scores() if spec.hosted_engine else None
        return choose_host(self.m.cluster, spec, self.m.scheduler_view(),
                           self.m.unavailable() | {src}, health)

    def migrate_to(self, vm: str, host: str | None) -> None:
        """The scenario's ``migrate`` operation (host None: the scheduler picks)."""
        m = self.m
        now = m.env.now
        if m.log.state(vm) != "running" or vm in self.active:
            m.rec.event(now, "operation", vm, "migrate rejected: VM not running",
                        source="scenario")
            return
        src = m.placement[vm]
        if host is None:
            dst = self._destination(vm, src)
            why = "no host fits"
        else:
            view = {k: v for k, v in m.scheduler_view().items() if k != vm}
            why = rejection(m.cluster, m.cluster.vm(vm), host, view, loads(m.cluster, view),
                            m.unavailable() | {src}) or ""
            dst = None if why else host
        if dst is None:
            m.rec.event(now, "operation", vm, f"migrate rejected: {why}", source="scenario")
            return
        self.start(vm, src, dst)

    def maintenance(self, host: str) -> Proc:
        """Evacuate ``host`` and stop its bricks, unless the engine refuses for Gluster
        (quorum, heal pending: :mod:`hcisim.model.compute.maintenance`)."""
        m, env = self.m, self.m.env
        if m.host_state[host] != "up":
            return
        why = refusal(m, host)
        if why is not None:
            m.rec.event(env.now, "operation", host, f"maintenance refused: {why}",
                        source="engine")
            return
        m.host_state[host] = "preparing"
        procs = []
        for spec in priority_order(m.cluster.vm(v) for v in vms_on(m.placement, host)):
            if m.log.state(spec.name) != "running" or spec.name in self.active:
                continue
            dst = self._destination(spec.name, host)
            if dst is None:
                m.rec.event(env.now, "operation", spec.name,
                            f"maintenance of {host}: no host fits", source="engine")
                continue
            procs.append(self.start(spec.name, host, dst))
        yield env.all_of(procs)
        left = vms_on(m.placement, host)
        if m.host_state[host] != "preparing":
            return
        if left:
            m.rec.event(env.now, "operation", host,
                        f"maintenance stuck: {', '.join(sorted(left))} still on it")
            return
        m.host_state[host] = "maintenance"
        m.rec.event(env.now, "operation", host, "maintenance: entered")
        m.storage.host_maintenance(host, True)

    def activate(self, host: str) -> None:
        m = self.m
        state = m.host_state[host]
        if state not in ("maintenance", "preparing"):
            return
        m.host_state[host] = "up"
        m.rec.event(m.env.now, "operation", host, "activate: up")
        if state == "maintenance":
            m.storage.host_maintenance(host, False)
