"""The engine's role in the lab: watch the hosts, fence, restart HA VMs.

The same rules and parameters as the model (:mod:`hcisim.model.compute.ha`, the
scenario's ``compute.fencing`` and ``compute.ha_restart``), acting on real signals:

- one monitor per host polls its agent every ``vds_refresh_rate_s`` over the management
  network; a failed call (no answer within ``vds_connection_timeout_s``, or a connected
  host silent for ``vds_timeout_s``) makes the host *connecting*;
- the engine waits the fence grace (:func:`fence_grace_s`: TimeoutToResetVdsInSeconds +
  0.5 s per running VM + 20 s for the SPM), then soft-fences: if the host's management
  address answers at all (a refused connection is an answer: its kernel is up), the agent
  is restarted in the host's namespace, as ovirt-engine restarts vdsm over ssh; the attempt
  waits at most ``soft_fencing_s``. Failing that the host is *non responsive*;
- with power management (the scenario's host field) the host is fenced through the lab's
  power control (the netns lab's power cut, the mechanism of the ``node_power_loss``
  fault), not before ``disable_fence_at_startup_s`` after the engine started; its HA VMs
  restart elsewhere; without it only HA VMs holding a VM lease are restarted, and their
  starts fail (sanlock: the owner's host is alive) until the lease has expired;
- restarts go in priority tiers (a tier waits for the one above, at most
  ``priority_block_max_s``), each VM on the host :func:`hcisim.placement.choose_host`
  picks among the hosts that are up, a start refused by a host is rerun on the next best
  one, and a VM that could not start is retried as AutoStartVmsRunner does
  (:func:`iter_retry_times`);
- nothing of this happens while the hosted engine is down (``engine_up`` false): the
  engine-first rule.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hcisim.lab.errors import LabError
from hcisim.lab.gluster import GlusterError
from hcisim.lab.plane.agent import PORT
from hcisim.lab.plane.client import AgentUnreachable, EngineNet
from hcisim.lab.plane.hosted_engine import create_request
from hcisim.lab.plane.hosts import PlaneConfig, start_agent
from hcisim.observations import Recorder
from hcisim.observations.schema import EventKind
from hcisim.placement import VmSpec, choose_host, cluster_of
from hcisim.placement.ha_rules import fence_grace_s, gluster_fence_veto, iter_retry_times
from hcisim.placement.inventory import priority_order
from hcisim.scenario import Scenario


@dataclass(frozen=True)
class EngineEvent:
    t: float  # epoch seconds
    kind: EventKind
    target: str
    detail: str = ""


@dataclass
class HostState:
    name: str
    state: str = "up"  # up | connecting | non_responsive | fenced
    vms: dict[str, str] = field(default_factory=dict)  # last reported VM -> status


class Engine:
    """See the module doc. ``be`` is a built netns backend with the plane's services up."""

    def __init__(self, be: Any, sc: Scenario, cfg: PlaneConfig, net: EngineNet,
                 engine_up: Callable[[], bool] = lambda: True) -> None:
        self.be = be
        self.sc = sc
        self.cfg = cfg
        self.net = net
        self.engine_up = engine_up
        self.f = sc.compute.fencing
        self.policy = sc.compute.ha_restart
        self.cluster = cluster_of(sc)
        self.hosts = {h.name: HostState(h.name) for h in be.lab_.hosts}
        self.placement: dict[str, str] = {}  # the engine's view: VM -> host it runs on
        self.events: list[EngineEvent] = []
        self.transitions: list[tuple[float, str, str]] = []  # (epoch, host, state)
        self.started_at = time.time()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._restarting: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._engine_down = False

    # --- plumbing ----------------------------------------------------------------------
    def emit(self, kind: EventKind, target: str, detail: str = "") -> None:
        with self._lock:
            self.events.append(EngineEvent(time.time(), kind, target, detail))

    def call(self, host: str, request: dict[str, Any], timeout_s: float | None = None,
             connect_timeout_s: float | None = None) -> dict[str, Any]:
        h = self.be.lab_.host(host)
        connect = self.f.vds_connection_timeout_s
        if connect_timeout_s is not None:
            connect = min(connect, connect_timeout_s)
        return self.net.call(h.mgmt_addr, PORT, request, connect,
                             timeout_s if timeout_s is not None else self.f.vds_timeout_s)

    def _spawn(self, target: Callable[..., None], *args: Any) -> threading.Thread:
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self._threads.append(t)
        return t

    def _sleep(self, s: float) -> bool:
        """Sleep; False when the engine is stopping."""
        return not self._stop.wait(max(0.0, s))

    def _wait_engine(self) -> bool:
        """Block while the hosted engine is down. The engine that comes back starts afresh:
        DisableFenceAtStartupInSec counts from then (``started_at``)."""
        while not self.engine_up():
            self._engine_down = True
            if not self._sleep(0.5):
                return False
        with self._lock:
            if self._engine_down:
                self._engine_down = False
                self.started_at = time.time()
        return True

    def start(self) -> None:
        for host in self.hosts:
            self._spawn(self._monitor, host)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)

    def record(self, rec: Recorder, t0: float) -> None:
        for e in sorted(self.events, key=lambda e: e.t):
            rec.event(e.t - t0, e.kind, e.target, e.detail)

    # --- VMs ---------------------------------------------------------------------------
    def run_vm(self, vm: VmSpec, host: str) -> dict[str, Any]:
        """Ask ``host``'s agent to start and boot ``vm`` (its lease if it holds one; the
        hosted engine always: its lease is the engine lock)."""
        lease = (vm.holds_lease and vm.name in self.cfg.leased_vms) or \
            vm.name == self.cfg.engine_vm
        return self.call(host, create_request(self.sc, vm.name, lease), timeout_s=300)

    def start_vms(self, placement: dict[str, str]) -> None:
        """Start the scenario's VMs where ``placement`` says (one after the other: on two
        cores parallel TCG boots only take longer each)."""
        for name, host in placement.items():
            answer = self.run_vm(self.cluster.vm(name), host)
            if not answer.get("ok"):
                raise LabError(f"start {name} on {host}", str(answer.get("error")))
            self.placement[name] = host
            self.emit("vm_started", name, f"on {host}: initial")

    def unavailable(self) -> set[str]:
        return {h for h, s in self.hosts.items() if s.state != "up"}

    def restart(self, vms: list[VmSpec], why: str) -> None:
        vms = [v for v in vms if v.name not in self.placement and v.name not in self._restarting]
        if vms:
            self._spawn(self._restart_tiers, vms, why)

    def _restart_tiers(self, vms: list[VmSpec], why: str) -> None:
        if not self._wait_engine():
            return
        ordered = priority_order(vms)
        deadline = time.time() + self.policy.priority_block_max_s
        for rank in sorted({v.rank for v in ordered}):
            ups = []
            for v in ordered:
                if v.rank == rank:
                    up = threading.Event()
                    self._restarting.add(v.name)
                    self._spawn(self._try_restart, v, why, up)
                    ups.append(up)
            for up in ups:
                while not up.wait(0.2) and time.time() < deadline and not self._stop.is_set():
                    pass

    def _try_restart(self, vm: VmSpec, why: str, up: threading.Event) -> None:
        tries = iter_retry_times(self.policy, time.time(), math.inf)
        last_reason = ""
        try:
            while not self._stop.is_set():
                if not self._wait_engine():
                    return
                refused: list[str] = []
                reason = "fits nowhere"
                while True:
                    host = choose_host(self.cluster, vm, dict(self.placement),
                                       self.unavailable() | set(refused))
                    if host is None:
                        break
                    try:
                        answer = self.run_vm(vm, host)
                    except AgentUnreachable as exc:
                        answer = {"ok": False, "error": str(exc)}
                    if answer.get("ok"):
                        self.placement[vm.name] = host
                        self.emit("vm_started", vm.name, f"on {host}: {why}")
                        up.set()
                        return
                    refused.append(host)
                    reason = f"{host}: {str(answer.get('error'))[-160:]}"
                if reason != last_reason:  # once per reason, as the model records it
                    self.emit("vm_down", vm.name, f"restart failed: {reason}")
                    last_reason = reason
                if not self._sleep(next(tries) - time.time()):
                    return
        finally:
            self._restarting.discard(vm.name)

    # --- hosts -------------------------------------------------------------------------
    def _poll(self, host: str, within_s: float | None = None) -> bool:
        try:
            stats = self.call(host, {"op": "getStats"}, within_s, within_s)
        except AgentUnreachable:
            return False
        st = self.hosts[host]
        st.vms = {vm: str(v.get("status")) for vm, v in (stats.get("vms") or {}).items()}
        he = self.cfg.engine_vm
        if he and st.vms.get(he, "down") != "down":  # the HA agents moved the engine VM
            self.placement[he] = host
        gone = [vm for vm, h in list(self.placement.items())
                if h == host and st.vms.get(vm, "down") == "down"]
        for vm in gone:  # the VM died on a responsive host (sanlock killed it, it crashed)
            del self.placement[vm]
            self.emit("vm_down", vm, f"on {host}: exited")
            spec = self.cluster.vm(vm)
            if spec.ha and not spec.hosted_engine:
                self.restart([spec], f"{vm} went down on {host}")
        return True

    def _monitor(self, host: str) -> None:
        st = self.hosts[host]
        while self._sleep(self.f.vds_refresh_rate_s):
            if not self._wait_engine():
                return
            if self._poll(host):
                if st.state != "up":
                    self._set_state(host, "up")
                continue
            if st.state == "up":
                self._handle_failure(host)

    def _set_state(self, host: str, state: str) -> None:
        """The host's state as the engine sees it; every change kept with its time."""
        self.hosts[host].state = state
        with self._lock:
            self.transitions.append((time.time(), host, state))

    def _running_here(self, host: str) -> list[str]:
        return [vm for vm, h in self.placement.items() if h == host]

    def _engine_gone(self, host: str) -> bool:
        """The hosted engine died while handling ``host``: the handling is lost with it (the
        engine that comes back finds the host anew); the host's state is reset quietly."""
        if self.engine_up():
            return False
        self.hosts[host].state = "up"
        return True

    def _handle_failure(self, host: str) -> None:
        if self._engine_gone(host):
            return
        self._set_state(host, "connecting")
        running = self._running_here(host)
        grace = fence_grace_s(self.f, len(running), host == self.cluster.spm)
        end = time.time() + grace
        while time.time() < end:  # polling on, but no call may outlast the grace
            if not self._sleep(min(self.f.vds_refresh_rate_s, end - time.time())):
                return
            if self._engine_gone(host):
                return
            if time.time() < end and self._poll(host, within_s=end - time.time()):
                self._set_state(host, "up")
                return
        self._set_state(host, "soft_fencing")
        if self._soft_fence(host):
            self._set_state(host, "up")
            return
        if self._engine_gone(host):
            return
        self._set_state(host, "non_responsive")
        self.emit("host_non_responsive", host, "no answer to the engine")
        victims = [self.cluster.vm(v) for v in self._running_here(host)]
        if self.cluster.host(host).power_management:
            fence_at = self.started_at + self.f.disable_fence_at_startup_s
            if not self._sleep(fence_at - time.time()):
                return
            if self._engine_gone(host):
                return
            veto = self.fence_veto(host)
            if veto is not None:  # the HCI fencing policy: the host stays non-responsive
                self.emit("fence_skipped", host, f"fencing policy: {veto}")
                return
            self.be.faults.machine.power(host, False)
            self._set_state(host, "fenced")
            self.emit("host_fenced", host, "power management")
            for v in victims:
                self.placement.pop(v.name, None)
                self.emit("vm_down", v.name, f"host {host} fenced")
            self.restart([v for v in victims if v.ha and not v.hosted_engine],
                         f"host {host} fenced")
            return
        leased = [v for v in victims if v.holds_lease and not v.hosted_engine]
        for v in victims:
            if v.ha and not v.holds_lease and not v.hosted_engine:
                self.emit("vm_down", v.name, "stays down: no power management and no VM lease")
        for v in leased:
            self.placement.pop(v.name, None)
        self.restart(leased, f"VM leases on {host}")

    def fence_veto(self, host: str) -> str | None:
        """The fencing policy's answer, as vdsm's ``can_fence_host`` on a proxy host (one
        the engine sees up, not ``host``) gives it from ``gluster volume status``: a volume
        whose status the proxy cannot read forbids the fence, like in vdsm."""
        if not (self.f.skip_fencing_if_gluster_bricks_up
                or self.f.skip_fencing_if_gluster_quorum_not_met):
            return None
        proxies = [h for h, s in self.hosts.items() if s.state == "up" and h != host]
        if not proxies:
            return "no proxy host to read the Gluster volume status"
        names = {h.storage_addr: h.name for h in self.be.lab_.hosts}
        names |= {h.name: h.name for h in self.be.lab_.hosts}
        bricks: dict[str, list[tuple[str, bool]]] = {}
        for vol in self.sc.volumes:
            try:
                status = self.be.faults.machine.gluster(proxies[0]).volume_status(vol.name)
            except (LabError, GlusterError) as exc:
                return f"failed to get the volume status of {vol.name} on {proxies[0]}: {exc}"
            online = {names.get(p.host, p.host): p.online for p in status if p.kind == "brick"}
            bricks[vol.name] = [(b.host, online.get(b.host, False)) for b in vol.bricks]
        return gluster_fence_veto(self.f, host, bricks)

    def _soft_fence(self, host: str) -> bool:
        """Restart the agent if the host's management address answers at all."""
        h = self.be.lab_.host(host)
        try:
            self.net.call(h.mgmt_addr, PORT, {"op": "getStats"}, self.f.soft_fencing_s,
                          self.f.soft_fencing_s)
            return True
        except AgentUnreachable as exc:
            if exc.kind != "refused":
                return False
        start_agent(self.be.lab_, h, self.cfg)
        return self._poll(host)
