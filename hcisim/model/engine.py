"""The storage model: SimPy processes for phases, faults, operations and timers around one
rule: whenever anything changes, advance the fluid accumulators to now, apply the change,
and settle (client views, quorum, heal, flows, rates, records).

Between two changes every rate is constant, so a month of cluster time costs as many
SimPy events as there are changes, whatever the IOPS.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from hcisim.model.clients import ClientViews, Seen
from hcisim.model.elaborate import Cluster, VmDiskModel, elaborate
from hcisim.model.faults import apply_fault, bricks_hit
from hcisim.model.fluid import FlowNetwork
from hcisim.model.gluster import has_client_quorum, read_brick
from hcisim.model.io import DiskPlan, LatencyModel
from hcisim.model.probes import WriteLedger
from hcisim.model.recording import RunRecords
from hcisim.model.selfheal import Repair, SelfHeal
from hcisim.model.world import World
from hcisim.observations import Observations, Recorder
from hcisim.scenario import Fault, Operation, Scenario

Progress = Callable[[float], None]


class StorageModel:
    """Build (elaborate) once, then :meth:`run`."""

    def __init__(self, sc: Scenario, progress: Progress | None = None) -> None:
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
                                 sc.model.detection, self.rec, self.schedule, self.now)
        self.heal = SelfHeal(self.cluster, self.world, self.net, sc.model, self.rec,
                             self.ledger, self.schedule)
        self.latency = LatencyModel(self.cluster, self.net, sc.model.engine_overhead_ms)
        self.records = RunRecords(self.cluster, self.rec)
        self.vm_host: dict[str, str] = dict(self.cluster.placement)
        self.load: dict[str, float] = {vm.name: 1.0 for vm in sc.vms}
        self.plans: dict[str, DiskPlan] = {}
        self.slowdowns: dict[str, list[float]] = {}
        self.t_last = 0.0
        # per settle: what each client mount sees, and quorum answers (shared by its disks)
        self._mounts: dict[tuple[str, str], tuple[dict[str, Seen], tuple[str, ...]]] = {}
        self._quorum: dict[tuple[str, tuple[str, ...], frozenset[str]], bool] = {}
        self.sample_s = max(sc.model.sample_s, sc.duration_s / 2000.0)
        self._milestone_token = 0
        self._progress_at = -1.0
        self.sim_events = 0

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
        return lambda: self.load.update(dict.fromkeys(vms, load))

    def _fault(self, f: Fault) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(f.at_s)
        self.apply(lambda: self._fault_change(f, +1))
        if f.duration_s is not None and f.at_s + f.duration_s < self.sc.duration_s:
            yield self.env.timeout(f.duration_s)
            self.apply(lambda: self._fault_change(f, -1))

    def _operation(self, op: Operation) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(op.at_s)
        self.apply(lambda: self._operation_change(op))

    # --- changes --------------------------------------------------------------------------
    def _fault_change(self, f: Fault, delta: int) -> None:
        t = self.now()
        # detail is exactly the fault kind: claims pair fault_start/fault_end by it
        self.rec.event(t, "fault_start" if delta > 0 else "fault_end", f.target, f.kind,
                       "scenario")
        if f.kind == "disk_failure" and delta > 0:
            self._lose_brick_data(bricks_hit(self.cluster, f), t)
        apply_fault(self.world, self.cluster, f, delta, self.slowdowns)
        if f.kind == "link_slowdown":
            for res, rates in self.slowdowns.items():
                self.net.set_capacity(res, min([self.cluster.capacities[res], *rates]))
            self.latency.new_capacities()
        if delta < 0:
            self.heal.last_repair = Repair(t, f.heal_after_repair, f.kind == "node_hang")

    def _operation_change(self, op: Operation) -> None:
        t = self.now()
        target = op.host or op.vm or ""
        self.rec.event(t, "operation", target, op.kind, "scenario")
        if op.kind == "maintenance" and op.host is not None:
            self.world.maintenance.add(op.host)
        elif op.kind == "activate" and op.host is not None:
            self.world.maintenance.discard(op.host)
            self.heal.last_repair = Repair(t, False, False)
        # migrate: the compute model moves VMs (move_vm); the storage model has nothing to do

    def move_vm(self, vm: str, host: str) -> None:
        """The VM now runs on ``host``: its disks' client mount changes (compute model)."""
        self.apply(lambda: self.vm_host.__setitem__(vm, host))

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
        for p in self.plans.values():
            if p.status != "ok" or p.disk.write_frac <= 0:
                continue
            written = self.net.rate(p.flow) * p.disk.write_frac * dt * 1e6
            if written <= 0:
                continue
            p.acked_bytes += written
            writes = written / p.disk.block_bytes
            random = p.disk.profile is None or p.disk.profile.random
            for b in self.cluster.volumes[p.disk.volume].data_bricks:
                if b.host not in p.write_bricks:
                    self.heal.of(b).missed_writes(p.disk.key, p.disk.shards, written, writes,
                                                  random)
        self.heal.advance(dt)
        self.t_last = t

    # --- settle: derive everything from the new state -------------------------------------
    def settle(self) -> None:
        t = self.now()
        for _ in range(8):  # a server-quorum change alters views; loop to a fixed point
            changed = self.views.reconcile(t)
            changed |= self.views.reconcile_server_quorum(t)
            if not changed:
                break
        for b in self.records.volume_bricks(t, self.views, self.world):
            self.heal.brick_back(b, t)
        self.heal.reconcile(t)
        self.heal.snapshot()
        self.records.volumes(t, self.heal)
        self._flush_writes(t)
        self._mounts.clear()
        self._quorum.clear()
        self.plans = {d.key: self._plan(d, t) for d in self.cluster.disks}
        self.heal.set_flows()
        for p in self.plans.values():
            if p.status == "ok" and p.usage:
                vol = self.cluster.volumes[p.disk.volume]
                demand = min(p.demand, self.latency.queue_depth_cap(vol, p))
                self.net.add_flow(p.flow, demand, p.usage)
            else:
                self.net.remove_flow(p.flow)
        self.net.resolve()
        self.latency.new_rates()
        self.records.disks(t, self.plans, self.net, self.latency, self.vm_host, self.world)
        self._schedule_milestone()
        self._report_progress(t)

    def _plan(self, d: VmDiskModel, t: float) -> DiskPlan:
        vol = self.cluster.volumes[d.volume]
        c = self.vm_host[d.vm]
        demand = d.demand_mb_s * self.load[d.vm]
        if not self.world.running(c):
            return DiskPlan(d, c, "stopped", demand, since=t)
        mount = self._mounts.get((c, vol.name))
        if mount is None:
            seen_ = {b.host: self.views.state(c, vol.name, b.host) for b in vol.bricks}
            mount = self._mounts[(c, vol.name)] = (
                seen_, tuple(h for h, s in seen_.items() if s != "down"))
        seen, believed = mount
        blamed = frozenset(b.host for b in vol.data_bricks if self.heal.stale(b, d.key))
        qkey = (vol.name, believed, blamed)
        quorum = self._quorum.get(qkey)
        if quorum is None:
            quorum = self._quorum[qkey] = has_client_quorum(vol, believed, blamed)
        good = [b.host for b in vol.data_bricks if b.host in believed and b.host not in blamed]
        p = DiskPlan(d, c, "ok", demand, quorum=quorum, since=t,
                     read_brick=read_brick(d.vm, vol.name, good))
        if demand <= 0:
            return p
        if not quorum:
            p.status = "error"  # ENOTCONN at once
        elif ((d.write_frac > 0 and "lost" in seen.values())
              or (d.read_frac > 0 and p.read_brick is not None
                  and seen[p.read_brick] == "lost")):
            p.status = "stalled"  # waiting on a brick that does not answer
        elif d.read_frac > 0 and p.read_brick is None:
            p.status = "error"  # no good copy reachable for this file
        if p.status != "ok":
            return p
        p.write_bricks = tuple(b.host for b in vol.data_bricks if seen[b.host] == "up")
        arb = vol.arbiter
        p.arbiter = arb.host if arb is not None and seen[arb.host] == "up" else None
        p.usage = self.latency.usage(vol, p)
        return p

    def _flush_writes(self, t: float) -> None:
        """Hand the writes of the ending interval to the ledger, one row per VM and volume."""
        groups: dict[tuple[str, str], list[DiskPlan]] = {}
        for p in self.plans.values():
            if p.demand > 0 and p.disk.write_frac > 0 and p.status != "stopped":
                groups.setdefault((p.disk.vm, p.disk.volume), []).append(p)
        for (vm, vol), ps in groups.items():
            first = ps[0]
            if t <= first.since:
                continue
            acked = {p.disk.key: p.acked_bytes for p in ps}
            ok = first.status == "ok" and sum(acked.values()) > 0
            self.ledger.accept(vm, vol, first.since, t, acked,
                               len(first.write_bricks) if ok else 0, first.quorum,
                               frozenset(first.write_bricks) if ok else frozenset())
            for p in ps:
                p.since, p.acked_bytes = t, 0.0

    def _schedule_milestone(self) -> None:
        self._milestone_token += 1
        dt = self.heal.next_milestone()
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
        for op in self.sc.operations:
            env.process(self._operation(op))
        self.settle()
        end = self.sc.duration_s
        while env.peek() < end:
            env.step()
            self.sim_events += 1
        self.advance(end)
        self._flush_writes(end)
        self.heal.close(end)
        self.records.close(end, self.heal)
        self.ledger.emit(self.rec)
        if self.progress is not None:
            self.progress(1.0)
        meta = {"sim_events": self.sim_events, "solver_calls": self.net.solver_calls,
                "wall_s": round(time.perf_counter() - start, 4)}
        return self.rec.build("model", self.sc.name, self.sc.seed, self.sc.duration_s, meta)


def simulate(sc: Scenario, progress: Progress | None = None) -> Observations:
    """Observations of ``sc`` from the fluid storage model (engine ``model``)."""
    return StorageModel(sc, progress).run()
