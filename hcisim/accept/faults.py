"""The scenario's faults on existing servers, each bounded on the server and always undone.

The faults are the shared injector's (:mod:`hcisim.lab.faults`) on the hosts backend's
machine (:mod:`hcisim.lab.hosts`); what is added here is the acceptance's safety. brick
crash: refused unless every brick it hits runs; a switch on the server runs ``gluster
volume start VOL force`` after the bound. storage NIC loss: the switch itself takes the
link down and brings it up after the bound. node power loss: the user's power commands; a
powered-off server cannot run a switch, so that bound is the controller's alone
(docs/acceptance.md says so).

Undo steps go on a :class:`RollbackLedger` as soon as their fault step is armed; the normal
recovery is the same unwind that runs on errors and Ctrl-C.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hcisim.accept.remote import mount_answers, own_addresses
from hcisim.accept.rows import CheckRow, row
from hcisim.accept.safety import FaultPolicy, RollbackLedger
from hcisim.accept.ssh import Shell, SshError, gluster_of
from hcisim.accept.storage import link_mtu, storage_interface
from hcisim.lab.errors import LabError
from hcisim.lab.faults import FaultInjector, fault_volume, mechanism
from hcisim.lab.gluster import GlusterError, VolumeInfo
from hcisim.lab.hosts import HostsMachine, deadman_command, disarm_command, link_is_up
from hcisim.lab.node import sh
from hcisim.lab.wait import wait_until
from hcisim.observations import EventKind, Recorder
from hcisim.scenario import Fault, Scenario

SWITCH_GRACE_S = 10.0  # the switch fires this long after the controller's own undo is due


class FaultFailed(Exception):
    """A fault could not be injected (the host is left as it was; the reason says why)."""


@dataclass
class FaultRun:
    """Everything a fault needs: the servers, what glusterd said about them, a clock."""

    sc: Scenario
    shells: dict[str, Shell]
    uuids: dict[str, str]
    volumes: dict[str, VolumeInfo]
    policy: FaultPolicy
    run_id: str
    recorder: Recorder
    t0: float
    power_boot_s: float = 600.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    notes: list[str] = field(default_factory=list)
    peak_pending: dict[str, int] = field(default_factory=dict)  # volume -> most entries seen
    brick_up: dict[str, bool] = field(default_factory=dict)  # "vol/host" -> last state logged

    def now(self) -> float:
        return self.clock() - self.t0

    def event(self, kind: EventKind, target: str, detail: str = "") -> None:
        self.recorder.event(self.now(), kind, target, detail, "engine")

    def survivor(self, not_host: str) -> tuple[str, Shell]:
        for host, shell in self.shells.items():
            if host != not_host:
                return host, shell
        raise FaultFailed("no other host to watch the cluster from")

    def volumes_on(self, host: str, only: str | None = None) -> list[str]:
        return [v.name for v in self.sc.volumes
                if v.brick_on(host) is not None and (only is None or v.name == only)]

    def pidfile(self, host: str, index: int) -> str:
        return f"/tmp/hcisim-accept-{self.run_id}-{host}-{index}.pid"


def machine(run: FaultRun) -> HostsMachine:
    """The hosts backend's way of breaking these servers, with this run's clock."""
    return HostsMachine(run.shells, {h: sh.target.glusterd_sock for h, sh in run.shells.items()},
                        lambda host: storage_if_of(run, host), run.policy.power_off_cmd,
                        run.policy.power_on_cmd,
                        {h: sh.target.address for h, sh in run.shells.items()},
                        run.power_boot_s, clock=run.clock, sleep=run.sleep)


def inject(run: FaultRun, fault: Fault, index: int, ledger: RollbackLedger) -> float:
    """Inject ``fault`` with the shared injector; returns its bound in seconds. Each undo
    step is on ``ledger`` before the step it undoes runs."""
    bound = run.policy.bound_s(fault)
    hosts = machine(run)
    injector = FaultInjector(run.sc, hosts)
    host, how = fault.target, mechanism(fault)
    shell = run.shells[host]
    pidfile = run.pidfile(host, index)
    if how == "brick_kill":
        vols = _running_bricks(run, host, fault_volume(fault))
        undo = "; ".join(shlex.join(gluster_of(shell).argv("volume", "start", v, "force"))
                         for v in vols)
        if not shell.run(sh(deadman_command(pidfile, "true", undo, bound + SWITCH_GRACE_S)),
                         30).ok:
            raise FaultFailed(f"brick crash on {host}: could not arm the dead man's switch")
        ledger.push(f"disarm the switch on {host}", _disarm(shell, pidfile))
        ledger.push(f"start the bricks of {', '.join(vols)} on {host} (volume start force)",
                    _undo(run, fault, injector, lambda: all(
                        _bricks_online(run, host, v) for v in vols)))
    elif how == "link":
        ifname = storage_if_of(run, host)
        if ifname is None or link_mtu(shell, ifname) is None:
            raise FaultFailed(f"nic loss on {host}: storage interface not found")
        if not link_is_up(shell, ifname):
            raise FaultFailed(f"nic loss on {host}: {ifname} is already down; refusing")
        hosts.switch = (pidfile, bound)
        ledger.push(f"disarm the switch on {host}", _disarm(shell, pidfile))
        ledger.push(f"bring {ifname} up on {host}", _undo(
            run, fault, injector, lambda: True, patience_s=run.policy.max_fault_s))
    elif how == "power":
        ledger.push(f"power {host} on and wait for it (power-on command)", _undo(
            run, fault, injector, lambda: all(
                _bricks_online(run, host, v) for v in run.volumes_on(host)), tries=1))
    else:  # the policy refuses these before we get here
        raise FaultFailed(f"{fault.kind}: not supported on existing servers")
    run.recorder.fault_event(run.now(), True, fault)
    try:
        injector.inject(fault)
    except LabError as exc:
        raise FaultFailed(f"{fault.kind} on {host}: {exc.reason}") from None
    if how == "brick_kill":
        for vol in run.volumes_on(host, fault_volume(fault)):
            run.event("brick_down", f"{vol}/{host}", "brick_crash")
            run.brick_up[f"{vol}/{host}"] = False
    return bound


def _running_bricks(run: FaultRun, host: str, volume: str | None) -> list[str]:
    """The volumes whose brick on ``host`` runs now: never make a host worse than found."""
    vols = run.volumes_on(host, volume)
    for vol in vols:
        if not _bricks_online(run, host, vol):
            raise FaultFailed(f"brick crash on {host}: brick of {vol} is not running before "
                              "the fault; refusing to make the host worse")
    return vols


def _disarm(shell: Shell, pidfile: str) -> Callable[[], bool]:
    return lambda: shell.run(sh(disarm_command(pidfile)), 30).ok


def _undo(run: FaultRun, fault: Fault, injector: FaultInjector, back: Callable[[], bool],
          tries: int = 3, patience_s: float = 0.0) -> Callable[[], bool]:
    """Repair ``fault`` with the shared injector until ``back()`` says so: ``tries`` times,
    or for ``patience_s`` more (SSH may ride on the cut link: the switch brings it back)."""
    def attempt() -> bool:
        injector.restore(fault)
        return back()

    def undo() -> bool:
        ok = wait_until(attempt, patience_s + 2.0 * (tries - 1), 2.0, clock=run.clock,
                        sleep=run.sleep, ignore=(LabError, GlusterError))
        if ok and mechanism(fault) == "brick_kill":
            for vol in run.volumes_on(fault.target, fault_volume(fault)):
                run.event("brick_up", f"{vol}/{fault.target}", "volume start force")
                run.brick_up[f"{vol}/{fault.target}"] = True
        return ok

    return undo


def own_bricks(run: FaultRun, host: str, vol: str) -> dict[str, bool]:
    """Path -> online of the bricks of ``vol`` that ``host``'s own glusterd serves."""
    procs = gluster_of(run.shells[host]).volume_status(vol)
    return {p.path: p.online for p in procs
            if p.kind == "brick" and p.peer_id == run.uuids.get(host)}


def _bricks_online(run: FaultRun, host: str, vol: str) -> bool:
    try:
        mine = own_bricks(run, host, vol)
    except (GlusterError, SshError):
        return False
    return bool(mine) and all(mine.values())


def storage_if_of(run: FaultRun, host: str) -> str | None:
    shell = run.shells[host]
    if shell.target.storage_if:
        return shell.target.storage_if
    addrs = own_addresses(run.volumes, run.uuids.get(host))
    return storage_interface(shell, addrs[0]) if addrs else None


# --- recovery checks ----------------------------------------------------------------


@dataclass(frozen=True)
class HostHealth:
    """What a fault could break on a host, read before and after it."""

    bricks_online: frozenset[str]
    storage_link_up: bool | None
    peers_connected: int
    mounts_answering: frozenset[str] = frozenset()  # volumes mounted here and answering


def host_health(run: FaultRun, host: str) -> HostHealth:
    shell = run.shells[host]
    online: set[str] = set()
    for vol in run.volumes_on(host):
        with contextlib.suppress(GlusterError):
            online |= {f"{vol}:{path}" for path, up in own_bricks(run, host, vol).items() if up}
    ifname = storage_if_of(run, host)
    try:
        peers = sum(1 for p in gluster_of(shell).peers() if p.connected)
    except GlusterError:
        peers = 0
    own = own_addresses(run.volumes, run.uuids.get(host))
    mounts = frozenset(v.name for v in run.sc.volumes
                       if v.name in run.volumes and not mount_answers(shell, v.name, own)[1])
    return HostHealth(frozenset(online), link_is_up(shell, ifname) if ifname else None, peers,
                      mounts)


def restore_rows(host: str, before: HostHealth, after: HostHealth | None,
                 failed_undo: list[str]) -> list[CheckRow]:
    """One row per host a fault touched: restored to at least its state before, or not."""
    if after is None:
        return [row("host restored", host, "as before the fault",
                    "NOT RESTORED: host unreachable after the fault; "
                    + (f"failed: {'; '.join(failed_undo)}" if failed_undo else "check it now"),
                    False)]
    gaps = []
    lost = sorted(before.bricks_online - after.bricks_online)
    if lost:
        gaps.append(f"bricks offline: {', '.join(lost)}")
    if before.storage_link_up and not after.storage_link_up:
        gaps.append("storage link down")
    if after.peers_connected < before.peers_connected:
        gaps.append(f"peers connected {after.peers_connected} < {before.peers_connected}")
    dead = sorted(before.mounts_answering - after.mounts_answering)
    if dead:
        gaps.append(f"volumes not mounted or not answering: {', '.join(dead)}")
    gaps += [f"undo failed: {f}" for f in failed_undo]
    return [row("host restored", host, "as before the fault",
                "restored" if not gaps else "NOT RESTORED: " + "; ".join(gaps), not gaps)]
