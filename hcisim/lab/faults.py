"""One injector per fault mechanism, chosen from the fault table's traits, never by kind name.

| mechanism    | chosen by its traits (FAULT_TABLE) | how                                    |
|--------------|------------------------------------|----------------------------------------|
| power cut    | scope host, host_loss power_loss   | backend: :meth:`Machine.power`         |
| node freeze  | scope host, otherwise              | backend: :meth:`Machine.freeze`        |
| brick kill   | scope brick, not silent (RST)      | SIGKILL of the PIDs glusterd reports;  |
|              |                                    | repair ``volume start force``          |
| brick stop   | scope brick, silent                | SIGSTOP of those PIDs; repair SIGCONT  |
| partition    | scope link                         | iptables DROP to the peers, node shell |
| link down    | cuts the chosen networks           | backend: :meth:`Machine.link`          |
| slowdown     | slows                              | backend: :meth:`Machine.shape`         |
| disk failure | scope disk                         | backend: :meth:`Machine.disk`          |

Backends differ only in how they reach a node and break it (the :class:`Machine` methods);
the brick and partition mechanisms work through any node shell, so the netns lab, libvirt
node VMs and existing servers run them the same way. Each inject/restore returns the epoch
time read just before the command that makes it real (nothing the clients log precedes it).
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol, Self

from hcisim.lab.errors import LabError
from hcisim.lab.gluster import Gluster
from hcisim.lab.node import NodeShell, sh
from hcisim.scenario import Fault, Scenario
from hcisim.scenario.cluster import NetworkRole

Mechanism = Literal["power", "freeze", "brick_kill", "brick_stop", "partition", "link",
                    "shape", "disk"]
CHAIN = "HCISIM"


class Machine(Protocol):
    """How one backend reaches its nodes and breaks them."""

    def shell(self, host: str) -> NodeShell: ...

    def gluster(self, host: str) -> Gluster: ...

    def address(self, host: str, role: NetworkRole) -> str:
        """The host's address on ``role`` (for partitions)."""

    def power(self, host: str, on: bool) -> None: ...

    def freeze(self, host: str, frozen: bool) -> None: ...

    def link(self, host: str, roles: tuple[NetworkRole, ...], up: bool) -> None: ...

    def shape(self, host: str, roles: tuple[NetworkRole, ...], rate_mbit: float | None) -> None:
        """Limit the host's links on ``roles`` to ``rate_mbit`` (None: unlimited again)."""

    def disk(self, host: str, disk: str, failed: bool) -> None:
        """Fail the disk, or put a new empty one in its place (bricks started on it)."""

    def before_brick_start(self, host: str, volumes: list[str]) -> None:
        """Anything the backend must do before ``volume start force`` restarts bricks."""


def mechanism(f: Fault) -> Mechanism:
    """Which mechanism makes ``f`` real, read from its traits."""
    t = f.traits
    if t.scope == "host":
        return "power" if t.host_loss == "power_loss" else "freeze"
    if t.scope == "brick":
        return "brick_stop" if t.silent else "brick_kill"
    if t.scope == "disk":
        return "disk"
    if t.slows:
        return "shape"
    return "partition" if t.scope == "link" else "link"


def fault_volume(f: Fault) -> str | None:
    """The one volume a brick fault names (None: every brick of the host)."""
    volume: str | None = getattr(f, "volume", None)
    return volume


@dataclass
class FaultInjector:
    """Injects and repairs the scenario's faults on a backend's :class:`Machine`."""

    sc: Scenario
    machine: Machine
    stopped: dict[str, list[int]] = field(default_factory=dict)  # host -> SIGSTOPped bricks

    def inject(self, f: Fault) -> float:
        return self._do(f, True)

    def restore(self, f: Fault) -> float:
        return self._do(f, False)

    def _do(self, f: Fault, inject: bool) -> float:
        how: Callable[[Fault, bool], float] = getattr(self, f"_{mechanism(f)}")
        try:
            return how(f, inject)
        except LabError:
            raise
        except Exception as exc:  # libvirt.libvirtError and the like: one clear line
            raise LabError(f"{'inject' if inject else 'repair'} {f.kind} on {f.target}",
                           str(exc)) from None

    # --- which volumes a fault touches ---------------------------------------------------
    def disk_of(self, f: Fault) -> str:
        return self.sc.host(f.target).disk(getattr(f, "disk", None)).name

    def volumes_on(self, host: str, volume: str | None = None,
                   disk: str | None = None) -> list[str]:
        out = []
        for v in self.sc.volumes:
            b = v.brick_on(host)
            if b is None or volume not in (None, v.name):
                continue
            if disk is None or self.sc.host(host).disk(b.disk).name == disk:
                out.append(v.name)
        return out

    def heal_volumes(self, f: Fault) -> list[str]:
        """Volumes whose heal the repair of ``f`` should start."""
        disk = self.disk_of(f) if f.traits.scope == "disk" else None
        return self.volumes_on(f.target, fault_volume(f), disk)

    # --- mechanisms ----------------------------------------------------------------------
    def _power(self, f: Fault, inject: bool) -> float:
        t = time.time()
        self.machine.power(f.target, on=not inject)
        return t

    def _freeze(self, f: Fault, inject: bool) -> float:
        t = time.time()
        self.machine.freeze(f.target, frozen=inject)
        return t

    def _link(self, f: Fault, inject: bool) -> float:
        t = time.time()
        self.machine.link(f.target, f.networks, up=not inject)
        return t

    def _shape(self, f: Fault, inject: bool) -> float:
        t = time.time()
        self.machine.shape(f.target, f.networks, getattr(f, "rate_mbit", None) if inject
                           else None)
        return t

    def _disk(self, f: Fault, inject: bool) -> float:
        t = time.time()
        self.machine.disk(f.target, self.disk_of(f), failed=inject)
        return t

    def brick_pids(self, host: str, volume: str | None) -> list[tuple[int, str]]:
        """(PID, brick path) of the host's running bricks, as its own glusterd reports them."""
        cli = self.machine.gluster(host)
        me = cli.uuid()
        return [(p.pid, p.path) for v in self.volumes_on(host, volume)
                for p in cli.volume_status(v)
                if p.kind == "brick" and p.peer_id == me and p.online and p.pid]

    def _signal_bricks(self, host: str, pids: list[tuple[int, str]], sig: str) -> float:
        """Signal each PID only while its command line still names its brick (a PID the
        kernel gave to someone else since glusterd reported it is never hit)."""
        script = "; ".join(
            f"tr '\\0' ' ' < /proc/{pid}/cmdline | grep -qF -- "
            f"{shlex.quote('--brick-name ' + path)} && kill -{sig} {pid}" for pid, path in pids)
        t = time.time()
        res = self.machine.shell(host).run(sh(script), 30)
        if not res.ok:
            raise LabError(f"signal bricks on {host}", f"kill -{sig} failed: {res.tail}")
        return t

    def stop_bricks(self, host: str) -> float:
        """Stop every brick of ``host`` cleanly (SIGTERM: it closes its connections, so the
        clients drop it at once, no ping-timeout stall), as a maintenance does."""
        pids = self.brick_pids(host, None)
        return self._signal_bricks(host, pids, "TERM") if pids else time.time()

    def start_bricks(self, host: str) -> float:
        """Start the bricks of ``host`` again (``volume start VOL force``); the self-heal
        daemons notice them and heal (nobody runs ``volume heal``, as on activation)."""
        vols = self.volumes_on(host)
        self.machine.before_brick_start(host, vols)
        t = time.time()
        cli = self.machine.gluster(host)
        for v in vols:
            cli.do("volume", "start", v, "force", step=f"start bricks of {v}", timeout_s=90)
        return t

    def _brick_kill(self, f: Fault, inject: bool) -> float:
        vols = self.volumes_on(f.target, fault_volume(f))
        if inject:
            pids = self.brick_pids(f.target, fault_volume(f))
            if not pids:
                raise LabError(f"crash bricks on {f.target}", "no running brick process found")
            return self._signal_bricks(f.target, pids, "KILL")
        self.machine.before_brick_start(f.target, vols)
        t = time.time()
        for v in vols:
            self.machine.gluster(f.target).do("volume", "start", v, "force",
                                              step=f"restart bricks of {v}", timeout_s=90)
        return t

    def _brick_stop(self, f: Fault, inject: bool) -> float:
        if inject:
            pids = self.brick_pids(f.target, fault_volume(f))
            if not pids:
                raise LabError(f"hang bricks on {f.target}", "no running brick process found")
            self.stopped[f.target] = [p for p, _ in pids]
            return self._signal_bricks(f.target, pids, "STOP")
        t = time.time()
        # after a restart of the harness (`hcisim lab restore`) glusterd still lists them
        stopped = self.stopped.pop(f.target, []) or [
            p for p, _ in self.brick_pids(f.target, fault_volume(f))]
        if stopped:
            self.machine.shell(f.target).run(["kill", "-CONT", *map(str, stopped)], 30)
        return t

    def _partition(self, f: Fault, inject: bool) -> float:
        shell = self.machine.shell(f.target)
        ipt = "iptables -w"
        if not inject:
            t = time.time()
            shell.run(sh(f"{ipt} -D INPUT -j {CHAIN}; {ipt} -D OUTPUT -j {CHAIN}; "
                         f"{ipt} -F {CHAIN}; {ipt} -X {CHAIN}; true"), 30)
            return t
        peers = getattr(f, "peers", None) or [h for h in self.sc.host_names if h != f.target]
        rules = [f"{ipt} -N {CHAIN}"]
        for p in peers:
            for role in f.networks:
                a = shlex.quote(self.machine.address(p, role))
                rules += [f"{ipt} -A {CHAIN} -s {a} -j DROP", f"{ipt} -A {CHAIN} -d {a} -j DROP"]
        t = time.time()
        res = shell.run(sh(" && ".join([*rules, f"{ipt} -I INPUT -j {CHAIN}",
                                        f"{ipt} -I OUTPUT -j {CHAIN}"])), 30)
        if not res.ok:
            raise LabError(f"partition {f.target}", res.tail)
        return t


class FaultBook:
    """The base of every backend: a context manager whose exit destroys the lab, and the
    lab's faults on now: injected with the shared injector, kept in
    the lab's state file (so `hcisim lab restore` in another process finds them), repaired
    with heal started afterwards (in a thread, so the fault timeline keeps time; a one-shot
    CLI command sets ``background_heal`` False and waits for glusterd to accept it)."""

    faults: FaultInjector | None
    state: Any  # the backend's LabState
    scenario: Scenario
    background_heal: bool
    _active: list[Fault]
    _lock: threading.Lock
    _meta: dict[str, Any]

    def destroy(self) -> Any: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.destroy()  # whatever happened: exception, Ctrl-C

    @property
    def active_faults(self) -> list[Fault]:
        with self._lock:
            return list(self._active)

    def _book(self, fault: Fault, on: bool) -> None:
        with self._lock:
            self._active = [*self._active, fault] if on else [
                f for f in self._active if f != fault]
            self.state.set("active_faults", [f.model_dump(mode="json") for f in self._active])

    def inject(self, fault: Fault) -> float:
        assert self.faults is not None
        self._book(fault, True)  # booked first: observers avoid the host from now on
        try:
            return self.faults.inject(fault)
        except BaseException:
            self._book(fault, False)
            raise

    def restore(self, fault: Fault) -> float:
        assert self.faults is not None
        t = self.faults.restore(fault)
        self.after_repair(fault)
        self._book(fault, False)
        if fault.heal_after_repair:
            for v in self.faults.heal_volumes(fault):
                args = (v, fault.traits.full_heal)
                if self.background_heal:
                    threading.Thread(target=self.trigger_heal, args=args, daemon=True).start()
                else:
                    self.trigger_heal(*args)
        return t

    def after_repair(self, fault: Fault) -> None:
        """What the backend must note after a repair (the netns lab: new sockets)."""

    def observer(self) -> str:
        """A pool member no fault hits now (a slowed link still sees everything), to ask
        glusterd (a compute-only host runs none)."""
        with self._lock:
            hit = {f.target for f in self._active if not f.traits.slows}
        pool = [h.name for h in self.scenario.hosts if not h.compute_only]
        return next((h for h in pool if h not in hit), pool[0])

    def trigger_heal(self, volume: str, full: bool = False) -> bool:
        """``volume heal VOL [full]`` on a healthy host, retried while the self-heal daemons
        reconnect; every attempt's outcome goes to the lab's facts."""
        assert self.faults is not None
        ok = self.faults.machine.gluster(self.observer()).start_heal(volume, full, 60.0, 1.0)
        with self._lock:
            self._meta.setdefault("heal_triggers", []).append(
                {"t": time.time(), "volume": volume, "full": full, "accepted": ok})
        return ok
