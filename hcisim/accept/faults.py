"""The scenario's faults on existing servers, each bounded on the server and always undone.

brick crash: SIGKILL of the brick PID that ``gluster volume status`` reports (checked
against the process's command line first), with a switch on the server that runs
``gluster volume start VOL force`` after the bound. storage NIC loss: the switch itself
takes the link down and brings it up after the bound. node power loss: the user's power
commands, run here; a powered-off server cannot run a switch, so that bound is the
controller's alone (docs/acceptance.md says so).

Undo steps go on a :class:`RollbackLedger` as soon as their fault step is armed; the normal
recovery is the same unwind that runs on errors and Ctrl-C.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hcisim.accept import gluster
from hcisim.accept.gluster import GlusterError, VolumeInfo
from hcisim.accept.rows import CheckRow, row
from hcisim.accept.safety import FaultPolicy, RollbackLedger, deadman_command, disarm_command
from hcisim.accept.ssh import Shell, SshError, connect
from hcisim.accept.storage import link_mtu, storage_interface
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


def inject(run: FaultRun, fault: Fault, index: int, ledger: RollbackLedger) -> float:
    """Inject ``fault``; returns its bound in seconds. Undo steps are on ``ledger``."""
    bound = run.policy.bound_s(fault)
    if fault.kind == "brick_crash":
        _brick_crash(run, fault, index, ledger, bound)
    elif fault.kind == "nic_loss":
        _nic_loss(run, fault, index, ledger, bound)
    elif fault.kind == "node_power_loss":
        _power_loss(run, fault, ledger)
    else:  # the policy refuses these before we get here
        raise FaultFailed(f"{fault.kind}: not supported on existing servers")
    return bound


def _brick_crash(run: FaultRun, fault: Fault, index: int, ledger: RollbackLedger,
                 bound: float) -> None:
    host = fault.target
    shell = run.shells[host]
    cli = shell.target.gluster_cli()
    victims = []
    for vol in run.volumes_on(host, getattr(fault, "volume", None)):
        procs = gluster.volume_status(shell, vol)
        mine = [p for p in procs if p.kind == "brick" and p.peer_id == run.uuids.get(host)]
        if not mine or not all(p.online and p.pid for p in mine):
            raise FaultFailed(f"brick crash on {host}: brick of {vol} is not running before "
                              "the fault; refusing to make the host worse")
        victims += [(vol, p.path, p.pid) for p in mine]
    pidfile = run.pidfile(host, index)
    undo = "; ".join(f"{cli} volume start {shlex.quote(v)} force" for v in
                     dict.fromkeys(v for v, _, _ in victims))
    armed = shell.run(deadman_command(pidfile, "true", undo, bound + SWITCH_GRACE_S), 30)
    if not armed.ok:
        raise FaultFailed(f"brick crash on {host}: could not arm the dead man's switch")
    ledger.push(f"disarm the switch on {host}",
                lambda: shell.run(disarm_command(pidfile), 30).ok)
    for vol in dict.fromkeys(v for v, _, _ in victims):
        ledger.push(f"start the bricks of {vol} on {host} (volume start {vol} force)",
                    _brick_start(run, host, vol))
    run.event("fault_start", host, "brick_crash")
    for vol, path, pid in victims:
        # The PID must still be this brick's: never SIGKILL a reused PID.
        kill = (f"tr '\\0' ' ' < /proc/{pid}/cmdline | grep -qF -- "
                f"{shlex.quote('--brick-name ' + path)} && kill -9 {pid}")
        if not shell.run(kill, 30).ok:
            raise FaultFailed(f"brick crash on {host}: brick {vol}:{path} (pid {pid}) "
                              "could not be killed")
        run.event("brick_down", f"{vol}/{host}", "brick_crash")
        run.brick_up[f"{vol}/{host}"] = False


def _brick_start(run: FaultRun, host: str, vol: str) -> Callable[[], bool]:
    def undo() -> bool:
        shell = run.shells[host]
        for _ in range(3):
            if gluster.start_volume_force(shell, vol) and _bricks_online(run, host, vol):
                run.event("brick_up", f"{vol}/{host}", "volume start force")
                run.brick_up[f"{vol}/{host}"] = True
                return True
            run.sleep(2.0)
        return False

    return undo


def _bricks_online(run: FaultRun, host: str, vol: str) -> bool:
    try:
        procs = gluster.volume_status(run.shells[host], vol)
    except (GlusterError, SshError):
        return False
    mine = [p for p in procs if p.kind == "brick" and p.peer_id == run.uuids.get(host)]
    return bool(mine) and all(p.online for p in mine)


def storage_if_of(run: FaultRun, host: str) -> str | None:
    shell = run.shells[host]
    if shell.target.storage_if:
        return shell.target.storage_if
    addrs = [b.host for v in run.volumes.values() for b in v.bricks
             if b.host_uuid == run.uuids.get(host)]
    return storage_interface(shell, addrs[0]) if addrs else None


def link_up(shell: Shell, ifname: str) -> bool:
    res = shell.run(f"ip -o link show dev {shlex.quote(ifname)}", 30)
    flags = res.stdout.split("<", 1)[-1].split(">", 1)[0].split(",")
    return res.ok and "UP" in flags


def _nic_loss(run: FaultRun, fault: Fault, index: int, ledger: RollbackLedger,
              bound: float) -> None:
    host = fault.target
    shell = run.shells[host]
    ifname = storage_if_of(run, host)
    if ifname is None or link_mtu(shell, ifname) is None:
        raise FaultFailed(f"nic loss on {host}: storage interface not found")
    if not link_up(shell, ifname):
        raise FaultFailed(f"nic loss on {host}: {ifname} is already down; refusing")
    q = shlex.quote(ifname)
    pidfile = run.pidfile(host, index)
    # The switch is the fault: link down, sleep the bound, link up, on the server itself.
    cmd = deadman_command(pidfile, f"ip link set {q} down", f"ip link set {q} up", bound)
    ledger.push(f"disarm the switch on {host}", lambda: shell.run(disarm_command(pidfile), 30).ok)
    ledger.push(f"bring {ifname} up on {host}", _link_restore(run, host, ifname))
    run.event("fault_start", host, "nic_loss")
    if not shell.run(cmd, 30).ok:
        raise FaultFailed(f"nic loss on {host}: the switch did not start")


def _link_restore(run: FaultRun, host: str, ifname: str) -> Callable[[], bool]:
    def undo() -> bool:
        shell = run.shells[host]
        deadline = run.clock() + run.policy.max_fault_s + SWITCH_GRACE_S
        while True:
            try:
                shell.run(f"ip link set {shlex.quote(ifname)} up", 30)
                if link_up(shell, ifname):
                    return True
            except SshError:  # SSH may ride on the cut link: the switch brings it back
                pass
            if run.clock() > deadline:
                return False
            run.sleep(2.0)

    return undo


def _power_cmd(template: str, run: FaultRun, host: str) -> bool:
    """Run the user's power command (never logged: it may hold BMC credentials)."""
    cmd = template.format(host=host, address=run.shells[host].target.address)
    try:
        done = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def _power_loss(run: FaultRun, fault: Fault, ledger: RollbackLedger) -> None:
    host = fault.target
    off, on = run.policy.power_off_cmd, run.policy.power_on_cmd
    assert off is not None and on is not None  # the policy refuses otherwise

    def power_on() -> bool:
        if not _power_cmd(on, run, host):
            return False
        deadline = run.clock() + run.power_boot_s
        while run.clock() < deadline:
            try:
                connect(run.shells[host])
                break
            except SshError:
                run.sleep(5.0)
        else:
            return False
        for vol in run.volumes_on(host):
            gluster.start_volume_force(run.shells[host], vol)
        return all(_bricks_online(run, host, v) for v in run.volumes_on(host))

    ledger.push(f"power {host} on and wait for it (power-on command)", power_on)
    run.event("fault_start", host, "node_power_loss")
    if not _power_cmd(off, run, host):
        raise FaultFailed(f"node power loss on {host}: the power-off command failed")


# --- recovery checks ----------------------------------------------------------------


@dataclass(frozen=True)
class HostHealth:
    """What a fault could break on a host, read before and after it."""

    bricks_online: frozenset[str]
    storage_link_up: bool | None
    peers_connected: int


def host_health(run: FaultRun, host: str) -> HostHealth:
    shell = run.shells[host]
    online: set[str] = set()
    for vol in run.volumes_on(host):
        try:
            for p in gluster.volume_status(shell, vol):
                if p.kind == "brick" and p.peer_id == run.uuids.get(host) and p.online:
                    online.add(f"{vol}:{p.path}")
        except GlusterError:
            pass
    ifname = storage_if_of(run, host)
    try:
        peers = sum(1 for p in gluster.peers(shell) if p.connected)
    except GlusterError:
        peers = 0
    return HostHealth(frozenset(online), link_up(shell, ifname) if ifname else None, peers)


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
    gaps += [f"undo failed: {f}" for f in failed_undo]
    return [row("host restored", host, "as before the fault",
                "restored" if not gaps else "NOT RESTORED: " + "; ".join(gaps), not gaps)]
