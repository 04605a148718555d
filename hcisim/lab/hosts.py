"""The ``hosts`` backend: existing servers over SSH, broken only in ways they survive.

How it breaks a node (the :class:`hcisim.lab.faults.Machine` of existing servers): power
through the user's own commands (a BMC, run on the controller, never logged: they may hold
credentials), a link through a dead man's switch on the server itself, bricks with the
shared mechanism. Freezing a node, slowing or partitioning its links and failing its disks
are refused: a server cannot be trusted to come back from them unattended.

The switch is a detached shell (``setsid nohup sh -c '...; sleep N; <undo>'``) that outlives
the SSH session and the controller, so a fault returns even if the controller dies or loses
its SSH connection because of the very fault it injected. :class:`HostsBackend` is the
backend the lab run (:func:`hcisim.lab.run.run_on`) plays a scenario on, like the netns and
libvirt labs: the same player, injector, workloads, polls and heal wait; what it adds is
that every fault has a switch armed before it hits, and that ``destroy`` repairs whatever
is still broken, Ctrl-C held off meanwhile. Which faults may run at all, and for how long,
is the acceptance's policy (:mod:`hcisim.accept`), which ``hosts+ssh://h1,h2,h3`` runs.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from hcisim.lab.errors import LabError
from hcisim.lab.faults import FaultBook, FaultInjector, fault_volume, mechanism
from hcisim.lab.gluster import Gluster, VolumeInfo
from hcisim.lab.netns.state import LabState
from hcisim.lab.node import NodeShell, SshError, SshShell, checked, connect, sh
from hcisim.lab.remote import RemoteNodes, parallel
from hcisim.lab.wait import wait_until
from hcisim.scenario import Fault, Scenario
from hcisim.scenario.cluster import NetworkRole


def deadman_command(pidfile: str, inject: str, undo: str, bound_s: float) -> str:
    """A detached shell on the server: ``inject``, sleep the bound, ``undo``.

    It lives in its own session (setsid) with no terminal and no inherited descriptors, so
    neither the end of the SSH session nor the death of the controller stops it. Its PID
    (also its process group) goes to ``pidfile`` so that the controller can disarm it after
    undoing the fault itself.
    """
    body = (f"echo $$ > {shlex.quote(pidfile)}; {inject}; sleep {max(1, round(bound_s))}; "
            f"{undo}; rm -f {shlex.quote(pidfile)}")
    return (f"S=$(command -v setsid || true); $S nohup sh -c {shlex.quote(body)} "
            f">/dev/null 2>&1 </dev/null & sleep 0.2; test -s {shlex.quote(pidfile)}")


def disarm_command(pidfile: str) -> str:
    """Stop a dead man's switch (its whole process group) once the controller has undone
    the fault itself; harmless if it already fired."""
    q = shlex.quote(pidfile)
    return (f"if [ -s {q} ]; then p=$(cat {q}); case $p in *[!0-9]*|'') ;; "
            f"*) kill -TERM -- -$p 2>/dev/null || kill -TERM $p 2>/dev/null;; esac; fi; "
            f"rm -f {q}")


def link_is_up(shell: NodeShell, ifname: str) -> bool:
    res = shell.run(["ip", "-o", "link", "show", "dev", ifname], 30)
    flags = res.stdout.split("<", 1)[-1].split(">", 1)[0].split(",")
    return res.ok and "UP" in flags


@dataclass
class HostsMachine:
    """See :class:`hcisim.lab.faults.Machine`. ``storage_if`` names each server's storage
    NIC; ``switch`` is (pidfile, bound) for the next link cut, set by HostsBackend.inject."""

    shells: Mapping[str, NodeShell]
    socks: Mapping[str, str | None]
    storage_if: Callable[[str], str | None]
    power_off_cmd: str | None = None
    power_on_cmd: str | None = None
    addresses: Mapping[str, str] = field(default_factory=dict)  # host -> address for {address}
    boot_s: float = 600.0
    switch: tuple[str, float] | None = None

    def shell(self, host: str) -> NodeShell:
        return self.shells[host]

    def gluster(self, host: str) -> Gluster:
        return Gluster(self.shells[host], self.socks.get(host))

    def address(self, host: str, role: NetworkRole) -> str:
        raise LabError(f"partition {host}", "not supported on existing servers")

    def _power_cmd(self, template: str | None, host: str) -> bool:
        if template is None:
            return False
        cmd = template.format(host=host, address=self.addresses.get(host, host))
        try:
            done = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=120,
                                  check=False)
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def power(self, host: str, on: bool) -> None:
        if not on:
            if not self._power_cmd(self.power_off_cmd, host):
                raise LabError(f"power off {host}", "the power-off command failed")
            return
        if not self._power_cmd(self.power_on_cmd, host):
            raise LabError(f"power on {host}", "the power-on command failed")
        def answers() -> bool:
            connect(self.shells[host])
            return True

        if not wait_until(answers, self.boot_s, 5.0, ignore=(SshError,)):
            raise LabError(f"power on {host}", f"no SSH within {self.boot_s:.0f} s")
        for v in self.gluster(host).run("volume", "list").stdout.split():
            self.gluster(host).start_force(v)

    def link(self, host: str, roles: tuple[NetworkRole, ...], up: bool) -> None:
        ifname = self.storage_if(host) if roles == ("storage",) else None
        if ifname is None:
            raise LabError(f"cut a link of {host}", "only the storage NIC is cut on servers")
        shell, q = self.shells[host], shlex.quote(ifname)
        if up:
            shell.run(["ip", "link", "set", ifname, "up"], 30)
            if not link_is_up(shell, ifname):
                raise LabError(f"bring {ifname} up on {host}", "it is still down")
            return
        if self.switch is None:
            raise LabError(f"cut {ifname} on {host}", "no dead man's switch was armed")
        pidfile, bound = self.switch
        # The switch is the fault: link down, sleep the bound, link up, on the server itself.
        cmd = deadman_command(pidfile, f"ip link set {q} down", f"ip link set {q} up", bound)
        if not shell.run(sh(cmd), 30).ok:
            raise LabError(f"cut {ifname} on {host}", "the switch did not start")

    def freeze(self, host: str, frozen: bool) -> None:
        raise LabError(f"hang {host}", "not supported on existing servers")

    def shape(self, host: str, roles: tuple[NetworkRole, ...], rate_mbit: float | None) -> None:
        raise LabError(f"slow down {host}", "not supported on existing servers")

    def disk(self, host: str, disk: str, failed: bool) -> None:
        raise LabError(f"fail a disk of {host}", "not supported on existing servers")

    def before_brick_start(self, host: str, volumes: list[str]) -> None:
        pass


# --- where a volume is mounted -------------------------------------------------------------
def parse_fuse_mounts(proc_mounts: str, volume: str) -> list[tuple[str, str]]:
    """(server address, mount point) of every FUSE mount of ``volume`` in /proc/mounts."""
    out = []
    for line in proc_mounts.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[2] != "fuse.glusterfs":
            continue
        server, _, vol = parts[0].rpartition(":")
        if vol.lstrip("/") == volume:
            out.append((server, parts[1].replace("\\040", " ")))
    return out


def own_addresses(volumes: Mapping[str, VolumeInfo], uuid: str | None) -> list[str]:
    """The brick addresses a server's own glusterd (``uuid``) serves: what tells its mounts
    and its storage NIC apart on namespace nodes that share one machine."""
    return [b.host for v in volumes.values() for b in v.bricks if b.host_uuid == uuid]


def find_mount(shell: NodeShell, volume: str, own: list[str]) -> str | None:
    """This server's mount of ``volume``: one served by its own address if several exist
    (namespace-lab nodes see every node's mounts), else the first one."""
    mounts = parse_fuse_mounts(shell.run(["cat", "/proc/mounts"], 30).stdout, volume)
    for server, point in mounts:
        if server in own:
            return point
    return mounts[0][1] if mounts else None


def gluster_args(ps_args: str) -> list[list[str]]:
    """The argv of every glusterfs/glusterfsd process in ``ps -ww -eo args`` output."""
    out = []
    for line in ps_args.splitlines():
        argv = line.split()
        if argv and Path(argv[0]).name in ("glusterfs", "glusterfsd"):
            out.append(argv)
    return out


def option(argv: list[str], *names: str) -> str | None:
    """The value of the first of ``names`` in ``argv`` (``-x V``, ``--x V`` or ``--x=V``)."""
    for i, a in enumerate(argv):
        for n in names:
            if a == n and i + 1 < len(argv):
                return argv[i + 1]
            if a.startswith(n + "="):
                return a.split("=", 1)[1]
    return None


@contextlib.contextmanager
def hold_interrupts() -> Iterator[list[int]]:
    """Hold SIGINT while hosts are restored; a held Ctrl-C is raised once restore is done."""
    held: list[int] = []
    try:
        previous = signal.getsignal(signal.SIGINT)
        installed = True

        def note(signum: int, frame: FrameType | None) -> None:
            held.append(signum)

        signal.signal(signal.SIGINT, note)
    except ValueError:  # not the main thread: signals cannot be handled here anyway
        installed = False
    try:
        yield held
    finally:
        if installed:
            signal.signal(signal.SIGINT, previous)
    if held:
        raise KeyboardInterrupt


SWITCH_GRACE_S = 10.0  # a brick switch fires this long after the controller's repair is due
# glusterd attaches a returning host's volumes to its one glustershd, each volume on its own,
# retrying 15 times 1 s apart (glusterd_attach_svc, glusterd-svc-helper.c); a volume whose
# attach failed stays without its self-heal daemon until `volume start VOL force` runs the
# service manager again. A repair waits this long for glusterd first.
SHD_ATTACH_S = 20.0
SHD_REMEDY_S = 10.0  # then the remedy's own round: attached, and glusterd says so


@dataclass(frozen=True)
class NodeFacts:
    """Where a server keeps what the polls and the checker read, as its processes say."""

    uuid: str
    mounts: dict[str, str]  # volume -> mount point
    client_logs: dict[str, str]  # volume -> the FUSE client's log
    bricks: dict[str, str]  # volume -> brick directory
    brick_pidfiles: dict[str, str]  # volume -> glusterd's pid file of the brick


class HostsBackend(FaultBook, RemoteNodes):
    """Existing servers as a lab backend (see :class:`hcisim.lab.backend.Backend`): nothing
    to build or deploy, the facts read from the servers' own glusterd and processes.

    ``shells`` reach the servers; ``power_off_cmd``/``power_on_cmd`` are the user's, run on
    the controller. Each fault's duration is its bound: the caller caps it first."""

    name = "hosts"

    def __init__(self, scenario: Scenario, shells: Mapping[str, SshShell],
                 socks: Mapping[str, str | None], storage_if: Mapping[str, str | None],
                 power_off_cmd: str | None = None, power_on_cmd: str | None = None,
                 addresses: Mapping[str, str] | None = None, boot_s: float = 600.0,
                 run_id: str | None = None) -> None:
        self.scenario = scenario
        self.shells = dict(shells)
        self.run_id = run_id or f"{os.getpid()}-{int(time.time())}"
        # /var/tmp: the node tools must outlive a reboot (a power loss) of the server
        self.node_dir = f"/var/tmp/hcisim-hosts-{self.run_id}"
        self.node_run = f"{self.node_dir}/run"
        self._local = Path(tempfile.mkdtemp(prefix="hcisim-hosts-"))
        self.state = LabState(self._local / "state.json")
        self.machine = HostsMachine(shells, socks, lambda h: storage_if.get(h),
                                    power_off_cmd, power_on_cmd, dict(addresses or {}), boot_s)
        self.faults: FaultInjector | None = FaultInjector(scenario, self.machine)
        self.facts: dict[str, NodeFacts] = {}
        self.volumes: dict[str, VolumeInfo] = {}
        self.background_heal = True
        self.rollback_failed: list[str] = []  # repairs that did not bring a host back
        self._switches: dict[str, str] = {}  # fault key -> pid file of its switch
        self._shd_before: dict[str, list[str]] = {}  # power fault key -> volumes' shd online
        self._active: list[Fault] = []
        self._meta: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._remote_init()

    def detach(self) -> None:
        pass

    # --- the servers' facts ------------------------------------------------------------
    def build(self) -> None:
        """Read what glusterd and the processes say: volumes, own bricks, mounts, logs."""
        first = self.machine.gluster(self.scenario.host_names[0])
        for v in self.scenario.volumes:
            info = first.volume_info(v.name)
            if info is None:
                raise LabError("read the volumes", f"volume {v.name} does not exist")
            self.volumes[v.name] = info
        self.facts = dict(parallel(self._facts, self.scenario.host_names))

    def _facts(self, host: str) -> tuple[str, NodeFacts]:
        shell, uuid = self.shells[host], self.machine.gluster(host).uuid()
        own = own_addresses(self.volumes, uuid)
        procs = gluster_args(checked(shell, ["ps", "-ww", "-eo", "args"], "list processes",
                                     30).stdout)
        mounts, logs, bricks, pidfiles = {}, {}, {}, {}
        for v in self.scenario.volumes:
            point = find_mount(shell, v.name, own)
            if point is None:
                raise LabError(f"find the mount of {v.name} on {host}", "not mounted there "
                               "(the write history needs the host's FUSE mount)")
            mounts[v.name] = point
            client = next((a for a in procs if a[-1] == point and "--brick-name" not in a), [])
            logs[v.name] = option(client, "-l", "--log-file") or (
                f"/var/log/glusterfs/{point.strip('/').replace('/', '-')}.log")
            path = next((b.path for b in self.volumes[v.name].bricks if b.host_uuid == uuid),
                        None)
            if path is None:
                continue
            bricks[v.name] = path
            brick = next((a for a in procs if option(a, "--brick-name") == path), [])
            pidfiles[v.name] = option(brick, "-p", "--pid-file") or ""
        return host, NodeFacts(uuid, mounts, logs, bricks, pidfiles)

    def deploy(self) -> None:
        """Nothing to deploy on existing servers but the node tools (in ``node_dir``)."""
        for host in self.scenario.host_names:
            self.put_tools(host)

    def node(self, host: str) -> SshShell:
        return self.shells[host]

    def node_mount(self, host: str, volume: str) -> str:
        return self.facts[host].mounts[volume]

    def node_brick(self, host: str, volume: str) -> str:
        return self.facts[host].bricks[volume]

    def node_client_log(self, host: str, volume: str) -> str:
        return self.facts[host].client_logs[volume]

    def node_brick_pidfile(self, host: str, volume: str) -> str:
        return self.facts[host].brick_pidfiles[volume]

    @property
    def view_dir(self) -> Path:
        return self._local / "view"

    def meta(self) -> dict[str, Any]:
        return {**self._meta, "backend": "hosts", "node_clock_error_max_s": self.clock_errors(),
                "rollback_failed": list(self.rollback_failed)}

    # --- faults: a switch on the server before each one hits ---------------------------
    def _key(self, fault: Fault) -> str:
        return fault.model_dump_json()

    def online(self, host: str, volumes: list[str]) -> tuple[bool, list[str]]:
        """From one ``volume status`` per volume, as ``host``'s own glusterd reports it:
        whether every brick of ``volumes`` it serves is online, and the volumes whose
        self-heal daemon on it is online (one multiplexed glustershd serves them all, but
        each volume's graph is attached to it on its own)."""
        try:
            procs = self.machine.gluster(host).host_processes(volumes, self.facts[host].uuid)
        except LabError:  # the host's shell does not answer
            return False, []
        return procs.bricks_online(), [v for v in volumes if v in procs.shd_online]

    def bricks_online(self, host: str, volumes: list[str]) -> bool:
        """Every brick of ``volumes`` that ``host``'s own glusterd serves is online."""
        return self.online(host, volumes)[0]

    def inject(self, fault: Fault) -> float:
        assert self.faults is not None
        host, how = fault.target, mechanism(fault)
        bound = fault.duration_s if fault.duration_s is not None else 300.0
        pidfile = f"{self.node_dir}/switch-{host}-{len(self._switches)}.pid"
        shell = self.shells[host]
        if how == "brick_kill":
            vols = self.faults.volumes_on(host, fault_volume(fault))
            if not self.bricks_online(host, vols):
                raise LabError(f"crash bricks on {host}", "a brick is not running before the "
                               "fault; refusing to make the host worse")
            undo = "; ".join(shlex.join(self.machine.gluster(host).argv(
                "volume", "start", v, "force")) for v in vols)
            self._switches[self._key(fault)] = pidfile
            if not shell.run(sh(deadman_command(pidfile, "true", undo,
                                                bound + SWITCH_GRACE_S)), 30).ok:
                raise LabError(f"crash bricks on {host}", "the dead man's switch did not start")
        elif how == "link":
            ifname = self.machine.storage_if(host)
            if ifname is None or not link_is_up(shell, ifname):
                what = ifname or "the storage interface (none found)"
                raise LabError(f"cut the storage link of {host}",
                               f"{what} is not up before the fault; refusing")
            self._switches[self._key(fault)] = pidfile
            self.machine.switch = (pidfile, bound)
        elif how == "power":  # what its repair must bring back besides the bricks
            self._shd_before[self._key(fault)] = self.online(
                host, self.faults.volumes_on(host))[1]
        return super().inject(fault)

    def restore(self, fault: Fault) -> float:
        """Repair ``fault`` until the host is back (SSH may ride on a cut link: the switch
        brings it back), then disarm its switch (left armed when the repair failed)."""
        host, how = fault.target, mechanism(fault)
        patience = {"link": fault.duration_s or 0.0,
                    "power": SHD_ATTACH_S + SHD_REMEDY_S}.get(how, 4.0)
        vols = self.faults.volumes_on(host) if self.faults is not None else []
        shd_wanted = self._shd_before.pop(self._key(fault), [])
        t: list[float] = []
        shd_missing: list[str] = []
        bricks_since: list[float] = []

        def attempt() -> bool:
            if not t:
                t.append(super(HostsBackend, self).restore(fault))
            elif how in ("brick_kill", "link"):
                self.faults.restore(fault)  # type: ignore[union-attr]
            if how not in ("brick_kill", "power"):
                return True
            bricks_up, shd = self.online(host, vols)
            if not bricks_up:
                return False
            bricks_since[:] = bricks_since or [time.monotonic()]
            shd_missing[:] = sorted(set(shd_wanted) - set(shd))
            if shd_missing and time.monotonic() - bricks_since[0] >= SHD_ATTACH_S:
                for v in shd_missing:  # glusterd gave up attaching: its own remedy
                    self.machine.gluster(host).start_force(v)
                shd_missing[:] = sorted(set(shd_missing) - set(self.online(host,
                                                                          shd_missing)[1]))
            return not shd_missing

        if not wait_until(attempt, patience, 2.0, ignore=(LabError,)):
            # its switch stays armed: the server repairs itself when the bound is up
            why = (f"the self-heal daemon of {', '.join(shd_missing)} stayed offline"
                   if shd_missing else "the host did not come back")
            raise LabError(f"repair {fault.kind} on {host}", why)
        pidfile = self._switches.pop(self._key(fault), None)
        if pidfile is not None:
            with contextlib.suppress(LabError):
                self.shells[host].run(sh(disarm_command(pidfile)), 30)
        return t[0] if t else time.time()

    # --- destroy: rollbacks always run -------------------------------------------------
    def destroy(self) -> None:
        """Repair every fault still on (Ctrl-C held meanwhile), stop the workloads' streams
        and remove what the run put on the servers; safe twice."""
        with hold_interrupts():
            for f in self.active_faults:
                try:
                    self.restore(f)
                except Exception as exc:  # a rollback tries every fault: report, go on
                    self.rollback_failed.append(f"{f.kind} on {f.target}: {exc}")
            self._stop_streams()
            for h in self.scenario.host_names:
                if h in self.facts:
                    self._clean(h)
            shutil.rmtree(self._local, ignore_errors=True)

    def _clean(self, host: str) -> None:
        """Stop what the run started on ``host`` (by its own pid files) and remove the files
        it wrote there: the node tools, workload logs, history records and fio images."""
        run = shlex.quote(self.node_run)
        paths = [shlex.quote(self.node_dir)]
        for w in [w for w in self._workloads if w.host == host]:
            mount = shlex.quote(self.node_mount(host, w.volume))
            paths += [f"{mount}/{shlex.quote(w.history_relname)}.*",
                      f"{mount}/{shlex.quote(w.key + '.img')}"]
        with contextlib.suppress(LabError):  # best effort: docs say what a run writes
            self.shells[host].run(sh(
                f"for f in {run}/*/fio.pid {run}/*/writer.pid; do [ -s \"$f\" ] && "
                f"kill -KILL $(cat \"$f\") 2>/dev/null; done; rm -rf {' '.join(paths)}; true"),
                60)
