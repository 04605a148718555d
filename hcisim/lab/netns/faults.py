"""Faults on a netns lab, by the model's names, each with its repair.

| fault            | inject                                         | peers see        |
|------------------|------------------------------------------------|------------------|
| node_power_loss  | links down first, then SIGKILL every process   | silence (no RST) |
| nic_loss         | one network's link down in the node            | silence          |
| brick_crash      | SIGKILL of the brick process(es)               | RST at once      |
| node_hang        | SIGSTOP of every process of the node           | silence          |
| partition        | iptables DROP in the node (optionally to peers)| silence          |
| link_slowdown    | tbf on both ends of the node's link            | slow link        |
| disk_failure     | XFS forced shutdown of the brick filesystem    | EIO from brick   |

Repairs: power back (links up, glusterd restarts its bricks, clients remounted), link up,
`volume start VOL force`, SIGCONT, rules removed, qdisc removed, and for a failed disk a
fresh filesystem put in with `volume reset-brick ... commit force` and a full heal.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from hcisim.lab.errors import LabError
from hcisim.lab.netns import bricks, gluster, network
from hcisim.lab.netns.layout import HostLayout, LabLayout
from hcisim.lab.netns.state import LabState
from hcisim.lab.process import (
    alive,
    kill_and_wait,
    netns_inode,
    owned_pids,
    read_pid,
    signal_pids,
)
from hcisim.scenario import Fault, Scenario


def node_pid_files(host: HostLayout) -> list[Path]:
    files = [host.pidfile]
    for d in (host.rundir, host.piddir):
        if d.is_dir():
            files += sorted(d.rglob("*.pid"))
    return files


def clear_stale_pidfiles(files: list[Path]) -> None:
    """Remove pid files of processes that are dead, zombies included.

    glusterd decides whether a brick runs from its pid file and /proc/PID: a killed brick
    that its parent (here PID 1) has not reaped yet still looks alive, and `volume start
    force` or a restarted glusterd would then leave it down.
    """
    for f in files:
        pid = read_pid(f)
        if pid is None or not alive(pid):
            f.unlink(missing_ok=True)


def workload_pids(host: HostLayout) -> list[int]:
    """fio and history writers of the VMs running on ``host``."""
    ino = netns_inode(host.netns)
    files = sorted(host.piddir.glob("fio-*.pid")) + sorted(host.piddir.glob("writer-*.pid"))
    return owned_pids(files, {ino} if ino else set(), host.dir)


def node_pids(host: HostLayout) -> list[int]:
    ino = netns_inode(host.netns)
    return owned_pids(node_pid_files(host), {ino} if ino else set(), host.dir)


class FaultDriver:
    """Injects and repairs faults; ``remount`` re-creates a host's client mounts."""

    def __init__(self, lab: LabLayout, sc: Scenario, state: LabState,
                 remount: Callable[[HostLayout], None],
                 on_workloads_killed: Callable[[str], None]) -> None:
        self.lab = lab
        self.sc = sc
        self.state = state
        self.remount = remount
        self.on_workloads_killed = on_workloads_killed

    def _host(self, fault: Fault) -> HostLayout:
        return self.lab.host(fault.target)

    def _volumes_on(self, host: str, disk: str | None = None) -> list[str]:
        out = []
        for v in self.sc.volumes:
            b = v.brick_on(host)
            if b is None:
                continue
            bdisk = self.sc.host(host).disk(b.disk).name
            if disk is None or bdisk == disk:
                out.append(v.name)
        return out

    def healthy_host(self, exclude: str) -> HostLayout:
        return next(h for h in self.lab.hosts if h.name != exclude)

    # --- inject ------------------------------------------------------------------------
    def inject(self, fault: Fault) -> float:
        h = self._host(fault)
        # each branch reads the clock just before the command that makes the fault real, so
        # that nothing the clients log can precede the recorded fault start
        if fault.kind == "node_power_loss":
            t = time.time()
            network.set_links(h, "all", up=False)
            # The VMs die with the host; fio gets SIGTERM rather than SIGKILL only so that
            # it writes the logs of what it did before (the links are already down, so
            # nothing it does now reaches a peer). Everything else dies at once.
            vms = workload_pids(h)
            signal_pids(vms, signal.SIGTERM)
            kill_and_wait([p for p in node_pids(h) if p not in vms])
            deadline = time.monotonic() + 5.0
            while any(alive(p) for p in vms) and time.monotonic() < deadline:
                time.sleep(0.05)
            kill_and_wait(vms)
            self.on_workloads_killed(h.name)
            return t
        if fault.kind == "nic_loss":
            t = time.time()
            network.set_links(h, fault.network, up=False)
            return t
        if fault.kind == "brick_crash":
            vols = [fault.volume] if fault.volume else self._volumes_on(h.name)
            pids = [p for v in vols for p in gluster.brick_pids(h, v)]
            if not pids:
                raise LabError(f"crash bricks on {h.name}", "no brick process found")
            t = time.time()
            signal_pids(pids, signal.SIGKILL)
            return t
        if fault.kind == "node_hang":
            pids = node_pids(h)
            t = time.time()
            signal_pids(pids, signal.SIGSTOP)
            return t
        if fault.kind == "partition":
            peers = [self.lab.host(p) for p in fault.peers] if fault.peers else None
            t = time.time()
            network.partition(h, fault.network, peers)
            return t
        if fault.kind == "link_slowdown":
            assert fault.rate_mbit is not None
            t = time.time()
            network.shape(self.lab, h, fault.network, fault.rate_mbit)
            return t
        if fault.kind == "disk_failure":
            disk = self.sc.host(h.name).disk(fault.disk).name
            t = time.time()
            bricks.shutdown_fs(h.disk_mount(disk))
            return t
        raise LabError("inject fault", f"unknown fault kind {fault.kind!r}")

    # --- restore -----------------------------------------------------------------------
    def restore(self, fault: Fault) -> float:
        h = self._host(fault)
        if fault.kind == "node_power_loss":
            network.set_links(h, "all", up=True)
            t = time.time()
            clear_stale_pidfiles(node_pid_files(h))
            gluster.start_glusterd(h)
            gluster.wait_glusterd(h)
            self.remount(h)
            self._refresh_sockets()
            return t
        if fault.kind == "nic_loss":
            network.set_links(h, fault.network, up=True)
            return time.time()
        if fault.kind == "brick_crash":
            vols = [fault.volume] if fault.volume else self._volumes_on(h.name)
            t = time.time()
            for v in vols:
                clear_stale_pidfiles(gluster.brick_pid_files(h, v))
                gluster.cli(h, ["volume", "start", v, "force"], step=f"restart bricks of {v}")
            self._refresh_sockets()
            return t
        if fault.kind == "node_hang":
            signal_pids(node_pids(h), signal.SIGCONT)
            return time.time()
        if fault.kind == "partition":
            network.heal_partition(h)
            return time.time()
        if fault.kind == "link_slowdown":
            network.unshape(self.lab, h, fault.network)
            return time.time()
        if fault.kind == "disk_failure":
            return self._replace_disk(h, self.sc.host(h.name).disk(fault.disk).name)
        raise LabError("restore fault", f"unknown fault kind {fault.kind!r}")

    def _replace_disk(self, h: HostLayout, disk: str) -> float:
        """A new empty disk: reset-brick start, new filesystem, reset-brick commit force."""
        vols = self._volumes_on(h.name, disk)
        for v in vols:
            brick = f"{h.storage_addr}:{h.brick(disk, v)}"
            proc = gluster.cli(h, ["volume", "reset-brick", v, brick, "start"], check=False)
            if proc.returncode != 0:  # brick already gone: make sure nothing holds the fs
                kill_and_wait(gluster.brick_pids(h, v))
        ino = netns_inode(h.netns)
        pids = [p for v in vols
                for p in owned_pids(gluster.brick_pid_files(h, v), {ino} if ino else set(),
                                    h.dir)]
        kill_and_wait(pids)
        bricks.replace_fs(h.image(disk), h.disk_mount(disk), self.state)
        t = time.time()
        for v in vols:
            clear_stale_pidfiles(gluster.brick_pid_files(h, v))
            h.brick(disk, v).mkdir(parents=True, exist_ok=True)
            brick = f"{h.storage_addr}:{h.brick(disk, v)}"
            gluster.cli(h, ["volume", "reset-brick", v, brick, brick, "commit", "force"],
                        step=f"reset-brick {v} on {h.name}")
        self._refresh_sockets()
        return t

    def heal_volumes(self, fault: Fault) -> list[str]:
        """Volumes whose heal a repair of ``fault`` should start."""
        if fault.kind == "disk_failure":
            disk = self.sc.host(fault.target).disk(fault.disk).name
            return self._volumes_on(fault.target, disk)
        if fault.kind == "brick_crash" and fault.volume:
            return [fault.volume]
        return self._volumes_on(fault.target)

    def _refresh_sockets(self) -> None:
        from hcisim.lab.netns.reclaim import sockets_of

        pids = [p for h in self.lab.hosts for p in node_pids(h)]
        for s in sockets_of(pids):
            self.state.add("sockets", s)
