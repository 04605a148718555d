"""The storage model: SimPy processes for phases, faults and timers around one rule:
whenever anything changes, advance the fluid accumulators to now, apply the change, and
settle (client views, quorum, heal, flows, rates, records).

Between two changes every rate is constant, so a month of cluster time costs as many
SimPy events as there are changes, whatever the IOPS.

The compute model (:class:`~hcisim.model.compute.process.ComputeModel`) runs in the same
SimPy environment and talks to this one only through the port
(:mod:`hcisim.model.storage_port`). Who does what:

- host faults are driven HERE: this model records ``fault_start``/``fault_end`` (one pair
  per scenario fault), changes the physical world, and tells compute ``host_failed`` /
  ``host_repaired`` for the faults that reach compute (power loss, hang, a management cut);
- scenario operations (maintenance, activate, migrate) are driven by compute: it evacuates
  a host, then asks this model to stop its bricks cleanly;
- compute decides where each VM runs and whether it is paused or down (``vm_state``);
  this model moves the VM's disk flows there and tells compute when a VM's storage fails
  (ENOTCONN: it pauses) or works again.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections import Counter
from collections.abc import Callable, Generator, Hashable, Iterator
from typing import Any

import numpy as np
import simpy

from hcisim.model.catchup import Backlogs
from hcisim.model.clients import ClientViews
from hcisim.model.compute import ComputeModel
from hcisim.model.compute.ha import HostLoss, vms_die
from hcisim.model.diskflows import DiskFlows
from hcisim.model.elaborate import Cluster, elaborate
from hcisim.model.faults import apply_fault, bricks_hit
from hcisim.model.fluid import FlowNetwork
from hcisim.model.io import DiskPlan, LatencyModel
from hcisim.model.probes import WriteLedger
from hcisim.model.recording import RecordLevel, RunRecords
from hcisim.model.routes import Routes
from hcisim.model.selfheal import Repair, SelfHeal
from hcisim.model.storage_port import ModelStoragePort
from hcisim.model.world import World
from hcisim.observations import Observations, Recorder
from hcisim.scenario import Fault, Scenario
from hcisim.scenario.profile import MODEL_KEYS

Progress = Callable[[float], None]
SETTLE_ROUNDS = 8  # a server-quorum change can alter views once or twice, never more


class SettleError(RuntimeError):
    """Client views and server quorum did not reach a fixed point (a bug in the rules)."""


class StorageModel:
    """Build (elaborate) once, then :meth:`run`. ``record``: what the vm_io table keeps
    (:data:`~hcisim.model.recording.RecordLevel`)."""

    def __init__(self, sc: Scenario, progress: Progress | None = None,
                 record: RecordLevel = "full") -> None:
        self.sc = sc
        self.progress = progress
        self.cluster: Cluster = elaborate(sc)
        self.env = simpy.Environment()
        self.net = FlowNetwork()
        for res, cap in self.cluster.capacities.items():
            self.net.add_resource(res, cap)
        self.world = World(self.cluster)
        detect_seq, = np.random.SeedSequence(sc.seed).spawn(1)
        self.rec = Recorder()
        self.ledger = WriteLedger()
        self.views = ClientViews(self.cluster, self.world, np.random.default_rng(detect_seq),
                                 sc.model.detection, self.rec, self.schedule, self.now,
                                 sc.model.ping_timer_late_s, sc.model.reconnect_delay_s,
                                 sc.model.reconnect_timer_s, sc.model.syn_linear_timeouts)
        self.heal = SelfHeal(self.cluster, self.world, self.net, sc.model, self.rec,
                             self.ledger, self.schedule)
        self.latency = LatencyModel(self.cluster, self.net, sc.model.engine_overhead_ms)
        self.routes = Routes(self.cluster, self.views, self.heal, self.latency)
        self.disk_flows = DiskFlows(self.cluster, self.net, self.latency, self.heal)
        self.records = RunRecords(self.cluster, self.rec, record)
        # where each VM's disk I/O comes from (None: it runs nowhere); set by compute
        self.vm_host: dict[str, str | None] = {vm.name: None for vm in sc.vms}
        self.paused: set[str] = set()  # VMs compute paused: no I/O, storage still judged
        self.storage_ok: dict[str, bool] = {}  # what compute was last told per VM
        self.host_losses: dict[str, Counter[HostLoss]] = {h: Counter() for h in sc.host_names}
        self.load: dict[str, float] = {vm.name: 1.0 for vm in sc.vms}
        self.plans: dict[str, DiskPlan] = {}
        # open-loop disks' backlogs (catch_up profiles); None without any: no cost per change
        self.backlogs: Backlogs | None = Backlogs(self.cluster.disks) or None
        # what the plans were derived from: (world, views, inputs, blamed) versions; the same
        # key means the same plans (a heal milestone changes only the heal's flow)
        self._inputs_version = 0  # bumped by every change of placement, pause, load, capacity
        self._plans_key: Hashable = None
        # what each disk's current plan was derived from (client, demand, route, paused)
        self._plan_sources: dict[str, tuple[object, ...]] = {}
        self.slowdowns: dict[str, list[float]] = {}
        self.t_last = 0.0
        self._views_world: Hashable = None  # world fingerprint at the last views fixed point
        # (that, views version, faults hitting hosts) at the last brick check
        self._bricks_seen: Hashable = None
        self.sample_s = max(sc.model.sample_s, sc.duration_s / 2000.0)
        self._milestone_token = 0
        self._progress_at = -1.0
        self.sim_events = 0
        self.port = ModelStoragePort(self)
        self.compute = ComputeModel(self.env, sc, self.rec, self.port)

    def _profile_meta(self) -> dict[str, Any]:
        """The calibration profile the run named and the timing values it ran with (the
        profile's, or the scenario's own where it set them)."""
        m = self.sc.model
        return {"name": m.profile, "detection_anchor_s": m.detection.anchor_s,
                **{k: getattr(m, k) for k in MODEL_KEYS}}

    # --- time -----------------------------------------------------------------------------
    def now(self) -> float:
        return float(self.env.now)

    def schedule(self, delay: float, action: Callable[[], None]) -> None:
        """Run ``action`` as a change ``delay`` seconds from now (a SimPy timeout)."""
        ev = self.env.timeout(max(0.0, delay))
        ev.callbacks.append(lambda _ev: self.apply(action))

    def apply(self, change: Callable[[], None]) -> None:
        t = self.now()
        self.advance(t)
        self._flush_writes(t)  # the ledger must hold every ack before a disk can fail
        change()
        self.settle()

    # --- processes ------------------------------------------------------------------------
    def _phases(self) -> Generator[simpy.Event, Any, None]:
        for ph in self.sc.phases:
            yield self.env.timeout(max(0.0, ph.start_s - self.now()))
            names = ph.vms if ph.vms is not None else tuple(self.load)
            self.apply(self._set_load(names, ph.load))

    def _set_load(self, vms: tuple[str, ...], load: float) -> Callable[[], None]:
        def change() -> None:
            if self.backlogs is not None:  # a new fio job section: on schedule again
                self.backlogs.new_section([vm for vm in vms if self.load[vm] != load])
            self.load.update(dict.fromkeys(vms, load))
            self._inputs_version += 1

        return change

    def _fault(self, f: Fault) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(f.at_s)
        self.apply(lambda: self._fault_change(f, +1))
        if f.duration_s is not None and f.at_s + f.duration_s < self.sc.duration_s:
            yield self.env.timeout(f.duration_s)
            self.apply(lambda: self._fault_change(f, -1))

    # --- changes --------------------------------------------------------------------------
    def _fault_change(self, f: Fault, delta: int) -> None:
        t = self.now()
        self._inputs_version += 1
        self.rec.fault_event(t, delta > 0, f)
        if f.traits.full_heal and delta > 0:
            self._lose_brick_data(bricks_hit(self.cluster, f), t)
        apply_fault(self.world, self.cluster, f, delta, self.slowdowns)
        if not f.traits.slows:
            self.records.fault_hit(f.target, delta, t)
        self._tell_compute(f, delta)
        if f.traits.slows:
            for res, rates in self.slowdowns.items():
                self.net.set_capacity(res, min([self.cluster.capacities[res], *rates]))
            self.latency.new_capacities()
        if delta < 0:
            self.heal.last_repair = Repair(t, f.heal_after_repair)

    def _tell_compute(self, f: Fault, delta: int) -> None:
        """Host faults that reach compute (power loss, hang, management cut). Overlapping
        ones on a host are one failure to compute: it fails with the first and is repaired
        when the last ends; a loss that kills VMs on top of one that did not (power loss
        during a management cut) is a new failure (repaired, then failed again at once)."""
        loss = f.host_loss
        if loss is None:
            return
        active = self.host_losses[f.target]
        killing = any(vms_die(x) for x in active.elements())
        failed = sum(active.values()) > 0
        active[loss] += delta
        if delta > 0:
            if failed and vms_die(loss) and not killing:
                self.compute.host_repaired(f.target)
                failed = False
            if not failed:
                self.compute.host_failed(f.target, loss)
        elif sum(active.values()) == 0:
            self.compute.host_repaired(f.target)

    # --- compute's changes (through the port) ---------------------------------------------
    def place_vm(self, vm: str, host: str | None) -> None:
        """From now on ``vm``'s disks are served through ``host``'s client mounts."""
        self._inputs_version += 1
        self.vm_host[vm] = host
        self.paused.discard(vm)
        self.storage_ok[vm] = True  # compute checked it before placing (vm_storage_ok)

    def pause_vm(self, vm: str, paused: bool) -> None:
        self._inputs_version += 1
        if paused:
            self.paused.add(vm)
        else:
            self.paused.discard(vm)

    def maintenance(self, host: str, entering: bool) -> None:
        """The host's VMs are gone (entering): stop its bricks cleanly (clients get a FIN, no
        stall). Activated: start them; the self-heal daemon notices and heals."""
        self._inputs_version += 1
        if entering:
            self.world.maintenance.add(host)
        else:
            self.world.maintenance.discard(host)
            self.heal.last_repair = Repair(self.now(), False)

    def storage_usable(self, vm: str, host: str) -> bool:
        """Could ``vm``'s disks be used from ``host`` now: the host runs, and each disk has
        client quorum and a good copy to read from ``host``'s client (a stall is not a
        failure: it ends at the ping timeout)."""
        if not self.world.running(host):
            return False
        t = self.now()
        return all(self.routes.path(d, host, 1.0, t).status != "error"
                   for d in self.cluster.disks_of_vm(vm))

    def _lose_brick_data(self, brick_keys: list[str], t: float) -> None:
        """A brick's filesystem failed: its copies are gone, it must be healed in full."""
        for v in self.cluster.volumes.values():
            for b in v.data_bricks:
                if b.key not in brick_keys:
                    continue
                disks = [d for d in self.cluster.disks if d.volume == v.name]
                lost = sum(self.ledger.brick_lost_data(d.key, b.host) for d in disks)
                if lost > 0:
                    self.rec.event(t, "data_unavailable", v.name,
                                   f"{lost:.0f} acknowledged bytes lost with {b.key}")
                self.heal.of(b).lose_everything({d.key: d.shards for d in disks})

    # --- advance: integrate constant rates over [t_last, t) ---------------------------------
    def advance(self, t: float) -> None:
        """Integrate the constant rates up to ``t``. While a heal runs, volume_state is also
        sampled every ``sample_s`` on the way: rates are constant in between, so the samples
        are exact and cost no SimPy event (the event count stays independent of the load).
        Pending bytes fall linearly between changes, so samples add resolution, not facts:
        a long run is sampled at most ~2000 times (step ``max(sample_s, duration / 2000)``)."""
        if self.heal.active():
            step = self.sample_s
            g = (math.floor(self.t_last / step + 1e-9) + 1) * step
            while g < t - 1e-9:
                self._integrate(g)
                self.records.volumes(g, self.heal, sample=True)
                g += step
        self._integrate(t)

    def _integrate(self, t: float) -> None:
        dt = t - self.t_last
        if dt <= 0:
            return
        rate = self.net.rates.get
        for p, flow, write_frac, away in self.disk_flows.writers:
            written = rate(flow, 0.0) * write_frac * dt * 1e6
            if written <= 0:
                continue
            p.acked_bytes += written
            if away:
                d = p.disk
                writes = written / d.block_bytes
                random = d.profile is None or d.profile.random
                for h in away:
                    h.missed_writes(d.key, d.hot_shards, written, writes, random)
        if self.backlogs is not None:
            self.backlogs.advance(dt)
        self.heal.advance(dt)
        self.t_last = t

    # --- settle: derive everything from the new state -------------------------------------
    def settle(self) -> None:
        t = self.now()
        # Client views and server quorum follow from the world alone (ping timers only move
        # ``lost`` to ``down``, which a reconcile keeps): with the world as it was at the
        # last fixed point there is nothing to reconcile.
        if self.world.fingerprint() != self._views_world:
            for _ in range(SETTLE_ROUNDS):  # a server-quorum change alters views
                changed = self.views.reconcile(t)
                changed |= self.views.reconcile_server_quorum(t)
                if not changed:
                    break
            else:
                raise SettleError(f"t={t:.3f} s: client views and server quorum still "
                                  f"changing after {SETTLE_ROUNDS} rounds")
            self._views_world = self.world.fingerprint()
        seen = (self._views_world, self.views.version, self.records.hit_version)
        if seen != self._bricks_seen:
            self._bricks_seen = seen
            for b in self.records.volume_bricks(t, self.views, self.world):
                self.heal.brick_back(b, t)
        self.heal.reconcile(t, self._views_world)
        self.heal.snapshot()
        self.records.volumes(t, self.heal)
        self.routes.fresh_mounts()
        plans_key = (self._views_world, self.views.version, self._inputs_version,
                     self.heal.blamed_version)
        fresh = plans_key != self._plans_key
        if fresh:  # else nothing a plan depends on changed: the plans and disk flows stand
            self._plans_key = plans_key
            self.plans = self._plans(t)
        self.views.note_requests(t, self.plans.values())  # ping timer: later sends
        self.heal.set_flows()
        self.port.set_flows(self.net)
        if fresh:
            self.disk_flows.set(self.plans)
        backlogs = self.backlogs
        if backlogs is not None:
            backlogs.raise_flows(self.plans, self.net, self.latency, self.cluster.volumes)
        self.net.resolve()
        if backlogs is not None:
            backlogs.rates_set(self.plans, self.net, self._vm_runs)
        self.latency.new_rates()
        if fresh or self.records.level == "full":
            # with the plans kept, the statuses are too (the intervals level records
            # nothing else) and so is what compute was told
            errors = self.records.disks(t, self.plans, self.net, self.latency)
        self.port.resolved(self.net)
        self._schedule_milestone()
        if fresh:
            self._tell_storage(errors)
        self.compute.storage_changed()
        self._report_progress(t)

    def _vm_runs(self, vm: str) -> bool:
        host = self.vm_host[vm]
        return host is not None and self.world.running(host)

    def _tell_storage(self, errors: set[str]) -> None:
        """Tell compute about every VM whose storage failed (ENOTCONN) or works again."""
        for vm, host in self.vm_host.items():
            if host is None:
                continue
            ok = vm not in errors
            if self.storage_ok.get(vm, True) != ok:
                self.storage_ok[vm] = ok
                self.compute.vm_storage_changed(vm, ok)

    def _plans(self, t: float) -> dict[str, DiskPlan]:
        """Every VM disk's plan from now until the next change (this runs for every disk at
        every change that can move a plan). A disk whose plan is derived from the same
        client, demand, route and pause as before keeps its plan object: its interval's
        writes were handed to the ledger at this change (``since`` is now, nothing is
        acknowledged yet), so it is the plan a new one would be. With every plan kept, the
        very dict of the last call (so its readers can tell by ``is``)."""
        running = {h for h in self.cluster.hosts if self.world.running(h)}
        vm_host, load, paused = self.vm_host, self.load, self.paused
        route_for, volumes = self.routes.route, self.cluster.volumes
        old, sources = self.plans, self._plan_sources
        plans: dict[str, DiskPlan] = {}
        made = False  # a new plan for some disk
        for d in self.cluster.disks:
            c = vm_host[d.vm]
            demand = d.demand_mb_s * load[d.vm]
            if c is None or c not in running:
                source: tuple[object, ...] = (c, demand)
                if sources.get(d.key) == source:
                    plans[d.key] = old[d.key]
                    continue
                plans[d.key] = DiskPlan(d, c or "", "stopped", demand, since=t)
                made = True
                sources[d.key] = source
                self._interrupted(old.get(d.key), plans[d.key], t)
                continue
            route = route_for(d, volumes[d.volume], c, demand > 0)
            status, quorum, read, write_bricks, arbiter, usage, shape = route
            held = status != "error" and d.vm in paused
            source = (c, demand, route, held)
            if sources.get(d.key) == source:
                plans[d.key] = old[d.key]
                continue
            if held:
                # a paused guest issues no I/O; its disk still reports ENOTCONN while
                # storage is unusable, which is how compute learns when to resume it
                status, usage = "stopped", {}
            plans[d.key] = DiskPlan(d, c, status, demand, quorum, read, write_bricks, arbiter,
                                    usage, since=t, shape_key=shape)
            made = True
            sources[d.key] = source
            if status == "error":
                self._interrupted(old.get(d.key), plans[d.key], t)
        return plans if made or len(plans) != len(old) else old

    def _interrupted(self, before: DiskPlan | None, now: DiskPlan, t: float) -> None:
        """A disk that was writing (or stalled on a write) and now cannot finish: its host
        lost power (the VM died with it), or its client lost quorum (ENOTCONN). Not a hung
        host (its writer resumes), nor a stop or a pause (no write in flight)."""
        if before is None or before.status not in ("ok", "stalled") or before.demand <= 0:
            return
        d = now.disk
        if d.write_frac <= 0:
            return
        if now.status == "error" or (now.status == "stopped"
                                     and not self.world.powered(before.client)):
            self.heal.writes_interrupted(d, before.demand * d.write_frac, t)

    def _flush_writes(self, t: float) -> None:
        """Hand the writes of the ending interval to the ledger, one row per VM and volume."""
        self.ledger.accept_all(t, self.disk_flows.groups)

    def _schedule_milestone(self) -> None:
        """The next instant something changes by itself: a heal's parallelism or end, or an
        open-loop disk back on schedule (its flow drops to its rate)."""
        self._milestone_token += 1
        dt = self.heal.next_milestone()
        if self.backlogs is not None:
            dt = min(dt, self.backlogs.catch_up_in)
        if math.isfinite(dt):
            token = self._milestone_token

            def fire() -> None:
                return None

            ev = self.env.timeout(max(dt, 0.0))
            ev.callbacks.append(
                lambda _ev: self.apply(fire) if token == self._milestone_token else None)

    def _report_progress(self, t: float) -> None:
        if self.progress is not None and t - self._progress_at >= 0.01 * self.sc.duration_s:
            self._progress_at = t
            self.progress(min(1.0, t / self.sc.duration_s))

    # --- run ------------------------------------------------------------------------------
    def run(self) -> Observations:
        start = time.perf_counter()
        env = self.env
        env.process(self._phases())
        for f in self.sc.faults:
            env.process(self._fault(f))
        # compute places the VMs (the scheduler places those without a host) before the
        # first settle builds their flows; faults come from here (drive_faults=False)
        self.compute.start(drive_faults=False)
        self.apply(self.port.apply_queued)
        end = self.sc.duration_s
        while env.peek() < end:
            env.step()
            self.sim_events += 1
        self.advance(end)
        self._flush_writes(end)
        self.heal.close(end)
        self.records.close(end, self.heal)
        self.ledger.emit(self.rec)
        self.compute.finish(end)
        if self.progress is not None:
            self.progress(1.0)
        meta: dict[str, Any] = {**self.compute.meta(), "sim_events": self.sim_events,
                                "solver_calls": self.net.solver_calls,
                                "detection": self.views.meta(),
                                "profile": self._profile_meta(),
                                "wall_s": round(time.perf_counter() - start, 4)}
        return self.rec.build("model", self.sc.name, self.sc.seed, self.sc.duration_s, meta)


def simulate(sc: Scenario, progress: Progress | None = None, *,
             record: RecordLevel = "full") -> Observations:
    """Observations of ``sc`` from the fluid storage model and the compute model on top of
    it (engine ``model``). ``record="intervals"``: vm_io keeps only each VM's status
    intervals (NaN rates and latency), for availability studies; every other table and every
    behaviour is the same as with ``"full"``."""
    with _older_objects_frozen():
        return StorageModel(sc, progress, record).run()


@contextlib.contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """Keep the objects that exist before a run (modules, pandas, the scenario) out of the
    cyclic GC while it runs (``gc.freeze``, left to the caller if it froze some), and run
    no collection at all (``gc.disable``): a year set off ~28 collections (~2 % of its
    CPU) of its own objects, nearly all alive to its end (~30 cyclic garbage objects a
    year, collected after it). No effect on results."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        if gc.get_freeze_count() > 0:
            yield
            return
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
    finally:
        if enabled:
            gc.enable()
