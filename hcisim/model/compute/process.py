"""The compute model as SimPy processes: host failures, HA restarts, the hosted engine,
paused VMs, and (with :mod:`~hcisim.model.compute.live`) migrations and maintenance.

Build then run: ``ComputeModel(env, sc, recorder, storage)``, then ``start()`` before
``env.run``, and ``finish(t_end)`` after it. The pure rules live in the sibling modules
(scheduler, failover, ha, hosted_engine, migration); this layer only sequences them in time
and records what happened. Everything it needs from the storage model goes through
:class:`~hcisim.model.compute.ports.StoragePort`.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator
from typing import Any

import simpy

from hcisim.model.compute.ha import (
    HostLoss,
    host_failure_timeline,
    iter_retry_times,
    vms_die,
)
from hcisim.model.compute.leases import Leases
from hcisim.model.compute.live import Migrations
from hcisim.model.compute.maintenance import rolling
from hcisim.model.compute.ports import StoragePort
from hcisim.model.compute.vmstate import VmStateLog
from hcisim.observations import Recorder
from hcisim.placement import initial_placement
from hcisim.placement.failover import (
    failover_pairs,
    failover_rows,
    ha_reservation,
    reservation_summary,
)
from hcisim.placement.ha_rules import gluster_fence_veto, lease_timeline
from hcisim.placement.hosted_engine import (
    HostHealth,
    agent_cpu_load,
    agent_free_ram_gib,
    agent_score,
    engine_start_time,
    next_tick,
    takeover_host,
)
from hcisim.placement.inventory import (
    ClusterSpec,
    VmSpec,
    cluster_of,
    priority_order,
    vms_on,
)
from hcisim.placement.scheduler import choose_host
from hcisim.scenario import Scenario

Proc = Generator[Any, Any, None]


class ComputeModel:
    """Hosts and VMs of one run. ``host_state``: up | down | non_responsive | preparing |
    maintenance; only ``up`` hosts take VMs."""

    def __init__(self, env: simpy.Environment, sc: Scenario, recorder: Recorder,
                 storage: StoragePort) -> None:
        self.env = env
        self.sc = sc
        self.rec = recorder
        self.storage = storage
        self.cluster: ClusterSpec = cluster_of(sc)
        self.fencing = sc.compute.fencing
        self.he = sc.compute.hosted_engine
        self.policy = sc.compute.ha_restart
        # a change of capacity (any VM state, a host back) or of storage, for the restarts
        # and engine starts that failed and wait for their next try (see _next_try)
        self._capacity_changed: simpy.Event | None = None
        self._storage_changed: simpy.Event | None = None
        self.log = VmStateLog(recorder, self._capacity_change)
        self.placement: dict[str, str] = {}
        self.host_state = {h.name: "up" for h in self.cluster.hosts}
        self.gateway_ok = {h.name: True for h in self.cluster.hosts}
        self.engine_vm: VmSpec | None = self.cluster.engine_vm
        self.engine_up = True
        self.engine_started_at = -math.inf
        self._engine_ready: simpy.Event = env.event().succeed()
        # triggered when the running engine stops: a host failure it was timing starts over
        # with the next engine (its timers and what it saw lived in the engine process)
        self._engine_lost: simpy.Event = env.event()
        self._repaired: dict[str, simpy.Event] = {}
        self._storage_ok: dict[str, bool] = {}
        self._storage_back: dict[str, simpy.Event] = {}
        self._pause_procs: dict[str, simpy.Process] = {}
        self._restarting: set[str] = set()
        self.initial_placement: dict[str, str] = {}
        self.migrations = Migrations(self)
        self.leases = Leases(self)

    # --- set-up --------------------------------------------------------------------------

    def start(self, drive_faults: bool = True) -> None:
        """Place the VMs, record failover pairs, schedule operations (and host faults)."""
        # the shared placement rules: every engine starts the VMs on the same hosts
        self.placement = {v: h for v, h in initial_placement(self.sc).items() if h is not None}
        self.initial_placement = dict(self.placement)
        for vm in self.cluster.vms:
            host = self.placement.get(vm.name)
            if host is None:
                self.log.set(0.0, vm.name, "down", None, "fits nowhere at start")
                self.rec.event(0.0, "vm_down", vm.name, "fits nowhere at start")
            else:
                self.log.set(0.0, vm.name, "running", host)
                self.storage.vm_placed(vm.name, host)
        for row in failover_rows(failover_pairs(self.cluster, self.placement)):
            self.rec.add("failover_pairs", *row)
        for op in self.sc.operations:
            self.env.process(self._operation_at(op.at_s, op.kind, op.host, op.vm, op.hold_s))
        self.leases.start()
        if drive_faults:
            for f in self.sc.faults:
                loss = f.host_loss
                if loss is not None:
                    self.env.process(self._fault_at(f.at_s, f.end_s, f.target, loss))

    def meta(self) -> dict[str, object]:
        """Plain-data facts for Observations.meta: n+1 report of the initial placement."""
        return {"ha_reservation": reservation_summary(
            ha_reservation(self.cluster, self.initial_placement))}

    def finish(self, t_end: float) -> None:
        self.migrations.finish(t_end)
        self.log.close(t_end)

    # --- inbound notifications -----------------------------------------------------------

    def host_failed(self, host: str, loss: HostLoss) -> None:
        self.env.process(self._host_failure(host, loss))

    def host_repaired(self, host: str) -> None:
        self._capacity_change()
        self.gateway_ok[host] = True
        if self.host_state[host] in ("down", "non_responsive"):
            self.host_state[host] = "up"
        ev = self._repaired.pop(host, None)
        if ev is not None and not ev.triggered:
            ev.succeed()

    def storage_changed(self) -> None:
        """The storage model settled a change: a VM's storage may now be usable from a host
        where it was not (a start that failed for storage may succeed at its next try)."""
        ev, self._storage_changed = self._storage_changed, None
        if ev is not None and not ev.triggered:
            ev.succeed()

    def vm_storage_changed(self, vm: str, ok: bool) -> None:
        self.storage_changed()
        self._storage_ok[vm] = ok
        st = self.log.state(vm)
        now = self.env.now
        if ok:
            back = self._storage_back.pop(vm, None)
            if back is not None and not back.triggered:
                back.succeed()
            if st == "paused" and vm in self._pause_procs:
                self._pause_procs.pop(vm).interrupt("storage back")
                host = self.placement[vm]
                self.log.set(now, vm, "running", host)
                self.rec.event(now, "vm_resumed", vm, "storage returned")
                self.storage.vm_io_paused(vm, False)
                if self.engine_vm is not None and vm == self.engine_vm.name:
                    self._set_engine_up(now, restarted=False)
            return
        if st == "migrating":
            self.migrations.abort(vm, "storage I/O error")
            st = "running"
        if st == "running":
            host = self.placement[vm]
            self.log.set(now, vm, "paused", host, "storage I/O error")
            self.rec.event(now, "vm_paused", vm, "storage I/O error")
            self.storage.vm_io_paused(vm, True)
            self._pause_procs[vm] = self.env.process(self._paused(vm))
            if self.engine_vm is not None and vm == self.engine_vm.name:
                self._set_engine_down(now, "engine VM paused")

    # --- helpers -------------------------------------------------------------------------

    def _capacity_change(self) -> None:
        ev, self._capacity_changed = self._capacity_changed, None
        if ev is not None and not ev.triggered:
            ev.succeed()

    def _a_change(self, storage: bool) -> simpy.Event:
        """An event that fires at the next change of capacity (or of storage)."""
        if self._capacity_changed is None:
            self._capacity_changed = self.env.event()
        if not storage:
            return self._capacity_changed
        if self._storage_changed is None:
            self._storage_changed = self.env.event()
        return self._capacity_changed | self._storage_changed

    def _next_try(self, tries: Iterator[float], storage: bool) -> Generator[Any, Any, bool]:
        """Wait for the next of ``tries`` (absolute times) at or after the next change that
        could make a failed start succeed: capacity (a VM stopped, moved or started, a host
        came back) and, if ``storage``, the storage model's state. Same times as trying at
        every one of ``tries``, without an event per try while nothing changes (a VM that
        fits nowhere for a month would otherwise cost 1440 tries). False: none left."""
        yield self._a_change(storage)
        now = self.env.now
        due = now - 1e-9
        for t in tries:  # earlier ones are past (a plain loop: a month passes ~1,000 of them)
            if t >= due:
                yield self.env.timeout(t - now)
                return True
        return False

    def unavailable(self) -> set[str]:
        return {h for h, s in self.host_state.items() if s != "up"}

    def scheduler_view(self) -> dict[str, str]:
        """Placement as the scheduler sees it: a migrating VM already counts on its target."""
        return {**self.placement, **self.migrations.targets}

    def kill(self, vm: str, reason: str) -> None:
        """``vm`` stops now (host lost, fenced, killed while paused)."""
        now = self.env.now
        host = self.placement.get(vm)
        if host is not None and self.cluster.vm(vm).holds_lease and \
                self.log.state(vm) in ("running", "paused", "migrating"):
            self.leases.book.released(vm, host, now, self.host_state.get(host) == "down")
        self.migrations.abort(vm, reason, vm_lost=True)
        proc = self._pause_procs.pop(vm, None)
        if proc is not None and proc.is_alive and proc is not self.env.active_process:
            proc.interrupt("killed")
        self.placement.pop(vm, None)
        self._restarting.discard(vm)
        self.log.set(now, vm, "down", None, reason)
        self.rec.event(now, "vm_down", vm, reason)
        self.storage.vm_placed(vm, None)
        if self.engine_vm is not None and vm == self.engine_vm.name:
            self._set_engine_down(now, reason)

    def _set_engine_down(self, t: float, reason: str) -> None:
        if self.engine_up:
            self.engine_up = False
            self._engine_ready = self.env.event()
            self._engine_lost.succeed()
            self._engine_lost = self.env.event()
            self.rec.event(t, "engine_down", self.engine_vm.name if self.engine_vm else "",
                           reason)

    def _set_engine_up(self, t: float, restarted: bool) -> None:
        if not self.engine_up:
            self.engine_up = True
            if restarted:
                self.engine_started_at = t
            self.rec.event(t, "engine_up", self.engine_vm.name if self.engine_vm else "",
                           "restarted" if restarted else "resumed")
            self._engine_ready.succeed()

    # --- processes -----------------------------------------------------------------------

    def _fault_at(self, at: float, end: float | None, host: str, loss: HostLoss) -> Proc:
        yield self.env.timeout(at)
        self.host_failed(host, loss)
        if end is not None:
            yield self.env.timeout(end - at)
            self.host_repaired(host)

    def _operation_at(self, at: float, kind: str, host: str | None, vm: str | None,
                      hold_s: float | None = None) -> Proc:
        yield self.env.timeout(at)
        self.rec.event(self.env.now, "operation", host or vm or "", kind, source="scenario")
        if kind == "rolling_maintenance":
            self.env.process(rolling(self, hold_s))
        elif kind == "maintenance" and host is not None:
            self.env.process(self.migrations.maintenance(host))
        elif kind == "activate" and host is not None:
            self.migrations.activate(host)
        elif kind == "migrate" and vm is not None:
            self.migrations.migrate_to(vm, host)

    def _host_failure(self, host: str, loss: HostLoss) -> Proc:
        env = self.env
        t_fail = env.now
        self.host_state[host] = "down" if vms_die(loss) else "non_responsive"
        repaired = self._repaired[host] = env.event()
        victims = [self.cluster.vm(v) for v in vms_on(self.placement, host)]
        if vms_die(loss):  # a cut NIC only stalls streams on it: the progress rule decides
            self.migrations.host_lost(host)
            for vm in victims:
                self.kill(vm.name, f"host {host}: {loss}")
        else:
            self.gateway_ok[host] = False
            env.process(self._engine_takeover_check())
        engine_here = any(v.hosted_engine for v in victims) and vms_die(loss)
        if engine_here:
            env.process(self._engine_recovery(t_fail, host_died=True))
        waited_for_engine = not self.engine_up
        while True:  # until the engine that saw the failure marks the host non-responsive
            yield self._engine_ready
            tl = host_failure_timeline(
                self.fencing, host, loss, t_fail,
                power_management=self.cluster.host(host).power_management,
                running_vms=len(victims), spm=host == self.cluster.spm,
                engine_up_from_s=env.now if waited_for_engine else t_fail,
                engine_started_at_s=self.engine_started_at)
            lost = self._engine_lost
            yield env.timeout(max(0.0, tl.non_responsive_at_s - env.now)) | repaired | lost
            if repaired.triggered or not lost.triggered:
                break
            waited_for_engine = True  # the engine stopped first: the next one starts over
        if repaired.triggered:
            if vms_die(loss):  # the host is back and reports its VMs gone
                self._restart_all([v for v in victims if v.ha and not v.hosted_engine],
                                  f"host {host} back without its VMs")
            return
        self.rec.event(env.now, "host_non_responsive", host, loss)
        if tl.fenced_at_s is not None:
            yield env.timeout(max(0.0, tl.fenced_at_s - env.now)) | repaired
            if repaired.triggered and not vms_die(loss):
                return
            veto = gluster_fence_veto(self.fencing, host, self.storage.gluster_bricks())
            if veto is None:
                self._fence(host, loss, victims)
                return
            # the HCI fencing policy: no fence; the host stays non-responsive
            self.rec.event(env.now, "fence_skipped", host, f"fencing policy: {veto}")
        if not vms_die(loss):
            return  # no power management: its VMs keep running, holding their leases
        leased = [v for v in victims if v.holds_lease and not v.hosted_engine]
        for v in victims:
            if v.ha and not v.holds_lease and not v.hosted_engine:
                self.rec.event(env.now, "vm_down", v.name,
                               "stays down: no power management and no VM lease")
        if leased:
            ready = max(tl.lease_expired_at_s, env.now)
            yield env.timeout(ready - env.now) | repaired
            self._restart_all(leased, f"VM leases on {host} expired")

    def _fence(self, host: str, loss: HostLoss, victims: list[VmSpec]) -> None:
        """Power-management fence of ``host``: its VMs stop, the HA ones restart elsewhere."""
        env = self.env
        self.rec.event(env.now, "host_fenced", host, "power management")
        if not vms_die(loss):
            self.host_state[host] = "down"
            self.migrations.host_lost(host)
            for vm in victims:
                if vm.name in self.placement:
                    self.kill(vm.name, f"host {host} fenced")
            if any(v.hosted_engine for v in victims):
                env.process(self._engine_recovery(env.now, host_died=True))
        # the fence frees no VM lease: a leased VM's start waits in sanlock's acquire
        # until the lease is free (host_dead after its last renewal; see leases.py)
        self._restart_all([v for v in victims if v.ha and not v.hosted_engine],
                          f"host {host} fenced")

    def _restart_all(self, vms: list[VmSpec], why: str) -> None:
        self.env.process(self._restart_tiers([v for v in vms if v.name not in self.placement],
                                             why))

    def _restart_tiers(self, vms: list[VmSpec], why: str) -> Proc:
        """Restart in priority tiers; a tier waits for the one above to be up (bounded)."""
        env = self.env
        yield self._engine_ready
        ordered = priority_order(vms)
        # a lower priority waits for the higher ones to be up, but is blocked at most
        # priority_block_max_s in all (oVirt counts each VM's blocked time)
        deadline = env.now + self.policy.priority_block_max_s
        for rank in sorted({v.rank for v in ordered}):
            ups = []
            for v in ordered:
                if v.rank == rank:
                    up = env.event()
                    env.process(self._try_restart(v, why, up))
                    ups.append(up)
            # a VM that does not start keeps blocking the next priority until the deadline
            yield env.all_of(ups) | env.timeout(max(0.0, deadline - env.now))

    def _try_restart(self, vm: VmSpec, why: str, up: simpy.Event) -> Proc:
        """Start ``vm`` on the host the scheduler picks; retry as the engine does if it fails.
        ``up`` fires once it runs."""
        env = self.env
        first = env.now
        tries = iter_retry_times(self.policy, first, self.sc.duration_s)
        while True:
            yield self._engine_ready
            if vm.name in self.placement or vm.name in self._restarting:
                return
            host, refused = self._usable_host(vm)
            if host is not None:
                yield from self._boot(vm, host, vm.boot_s, why)
                if self.log.state(vm.name) == "running":
                    up.succeed()
                return
            reason = ("fits nowhere" if not refused
                      else f"storage not usable from {', '.join(refused)}")
            cur = self.log.get(vm.name)
            if cur is None or cur.reason != f"restart failed: {reason}":  # once per reason
                self.log.set(env.now, vm.name, "down", None, f"restart failed: {reason}")
                self.rec.event(env.now, "vm_down", vm.name, f"restart failed: {reason}")
            if not (yield from self._next_try(tries, storage=bool(refused))):
                return

    def _usable_host(self, vm: VmSpec, health: dict[str, HostHealth] | None = None
                     ) -> tuple[str | None, list[str]]:
        """The scheduler's best host from which ``vm``'s storage is usable. A start that
        fails on a host for storage is rerun on the next best one, that host excluded
        (ovirt-engine RunVmCommand reruns on the remaining hosts; an HA agent without the
        shared storage cannot start the engine VM). Returns (host, hosts refused)."""
        refused: list[str] = []
        while True:
            host = choose_host(self.cluster, vm, self.scheduler_view(),
                               self.unavailable() | set(refused), health)
            if host is None or self.storage.vm_storage_ok(vm.name, host):
                return host, refused
            refused.append(host)

    def _boot(self, vm: VmSpec, host: str, boot_s: float, why: str) -> Proc:
        env = self.env
        self.placement[vm.name] = host
        self._restarting.add(vm.name)
        if vm.holds_lease:  # sanlock's acquire blocks while the old host's lease is stuck
            if self.leases.book.free_at(vm.name) > env.now:
                self.log.set(env.now, vm.name, "down", None, "start waits for its VM lease")
            yield from self.leases.wait_for(vm.name, host)
            if vm.name not in self._restarting or self.placement.get(vm.name) != host:
                return  # given up meanwhile
        self.log.set(env.now, vm.name, "restarting", host, why)
        yield env.timeout(boot_s)
        if vm.name not in self._restarting or self.placement.get(vm.name) != host:
            return  # killed while booting
        self._restarting.discard(vm.name)
        self.log.set(env.now, vm.name, "running", host)
        self.rec.event(env.now, "vm_started", vm.name, f"on {host}: {why}")
        self.storage.vm_placed(vm.name, host)

    def _paused(self, vm: str) -> Proc:
        """A VM paused by a storage error; with a lease, vdsm kills it after kill_paused_s."""
        spec = self.cluster.vm(vm)
        try:
            if not spec.holds_lease:
                yield self.env.event()  # until the storage comes back (an interrupt)
            yield self.env.timeout(self.fencing.kill_paused_s)
        except simpy.Interrupt:
            return
        self._pause_procs.pop(vm, None)
        self.kill(vm, f"killed after {self.fencing.kill_paused_s:g} s paused with a VM lease")
        if spec.hosted_engine:
            self.env.process(self._engine_recovery(self.env.now, host_died=False))
        else:
            self._restart_all([spec], "killed while paused")

    # --- hosted engine -------------------------------------------------------------------

    def _engine_scores(self) -> dict[str, HostHealth]:
        """What each host's HA agent measures: CPU load, free memory (the VMs on the host
        and those migrating to it, as vdsm's memFree sees them), the gateway, whether the
        engine VM runs there (no free-memory penalty then: EngineUp)."""
        engine = self.engine_vm.name if self.engine_vm is not None else None
        on_host: dict[str, dict[str, float]] = {h: {} for h in self.host_state}
        for vm, h in [*self.placement.items(), *self.migrations.targets.items()]:
            on_host[h][vm] = self.cluster.vm(vm).ram_gib
        vcpus: dict[str, dict[str, int]] = {h: {} for h in self.host_state}
        for vm, h in self.scheduler_view().items():  # a migrating VM counts where it goes
            vcpus[h][vm] = self.cluster.vm(vm).vcpus
        return {h: HostHealth(cpu_load=agent_cpu_load(self.cluster.vcpu_capacity(h),
                                                      vcpus[h], engine),
                              free_ram_gib=agent_free_ram_gib(self.cluster.host(h).ram_gib,
                                                              on_host[h], engine),
                              gateway_ok=self.gateway_ok[h],
                              engine_here=engine is not None
                              and self.placement.get(engine) == h)
                for h in self.host_state}

    def _engine_recovery(self, down_at: float, host_died: bool) -> Proc:
        """The agents notice, wait for their host data and the lease, then start the VM."""
        env, he, vm = self.env, self.he, self.engine_vm
        assert vm is not None
        _, start = engine_start_time(he, down_at, host_died=host_died,
                                     lease_expiry_s=lease_timeline(
                                         self.fencing.lease_io_timeout_s, 0.0).free_s)
        yield env.timeout(max(0.0, start - env.now))
        while True:
            if vm.name in self.placement:
                return
            host, _ = self._usable_host(vm, self._engine_scores())
            if host is not None:
                break
            # the agents try on every tick; only a change can make a tick succeed, so wait
            # for one, then for the first tick after it (same times, no event per tick)
            tried_at = env.now
            yield self._a_change(storage=True)
            tick = max(next_tick(env.now, he.agent_loop_s), tried_at + he.agent_loop_s)
            yield env.timeout(tick - env.now)
        yield from self._boot(vm, host, he.boot_s, "started by ovirt-ha-agent")
        if self.placement.get(vm.name) == host:
            self._set_engine_up(env.now, restarted=True)

    def _engine_takeover_check(self) -> Proc:
        """A management cut costs the engine's host the gateway penalty: if another host
        now scores ``takeover_margin`` more, the agents stop the engine VM there and the best
        host starts it (states.py EngineUp -> EngineStop)."""
        vm = self.engine_vm
        if vm is None or vm.name not in self.placement:
            return
        yield self.env.timeout(next_tick(self.env.now, self.he.agent_loop_s) - self.env.now)
        running_on = self.placement.get(vm.name)
        if running_on is None:
            return
        scores = {h: agent_score(self.he, hh, vm.ram_gib)
                  for h, hh in self._engine_scores().items() if self.host_state[h] in
                  ("up", "non_responsive")}
        target = takeover_host(scores, running_on, [h.name for h in self.cluster.hosts],
                               self.he.takeover_margin)
        if target is None:
            return
        self.kill(vm.name, f"stopped by ovirt-ha-agent: {target} scores higher")
        self.env.process(self._engine_recovery(self.env.now, host_died=False))
