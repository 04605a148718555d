"""How the netns lab breaks a node: the backend half of :mod:`hcisim.lab.faults`.

| mechanism    | here                                                  | peers see        |
|--------------|-------------------------------------------------------|------------------|
| power cut    | links down first, then SIGKILL every process of it    | silence (no RST) |
| node freeze  | SIGSTOP of every process of the node                  | silence          |
| link down    | one network's link down in the node                   | silence          |
| slowdown     | tbf on both ends of the node's link                   | slow link        |
| disk failure | XFS forced shutdown of the brick filesystem           | EIO from brick   |

Repairs: power back (links up, glusterd restarts its bricks, clients remounted), SIGCONT,
link up, qdisc removed, and for a failed disk a fresh filesystem put in with `volume
reset-brick ... commit force`. Bricks and partitions are the shared mechanisms'.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from hcisim.lab.gluster import Gluster
from hcisim.lab.netns import bricks, gluster, network
from hcisim.lab.netns.layout import HostLayout, LabLayout
from hcisim.lab.netns.state import LabState
from hcisim.lab.node import NsenterShell
from hcisim.lab.process import (
    alive,
    kill_and_wait,
    netns_inode,
    owned_pids,
    read_pid,
    signal_pids,
)
from hcisim.lab.wait import wait_until
from hcisim.scenario import Scenario
from hcisim.scenario.cluster import NetworkRole


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


class NetnsMachine:
    """See :class:`hcisim.lab.faults.Machine`; ``remount`` re-creates a host's client mounts."""

    def __init__(self, lab: LabLayout, sc: Scenario, state: LabState,
                 remount: Callable[[HostLayout], None],
                 on_workloads_killed: Callable[[str], None]) -> None:
        self.lab = lab
        self.sc = sc
        self.state = state
        self.remount = remount
        self.on_workloads_killed = on_workloads_killed

    def shell(self, host: str) -> NsenterShell:
        h = self.lab.host(host)
        return NsenterShell(h.netns, h.name)

    def gluster(self, host: str) -> Gluster:
        return gluster.client(self.lab.host(host))

    def address(self, host: str, role: NetworkRole) -> str:
        return self.lab.host(host).address(role)

    def power(self, host: str, on: bool) -> None:
        h = self.lab.host(host)
        if on:
            network.set_links(h, network.ROLES, up=True)
            clear_stale_pidfiles(node_pid_files(h))
            if not self.sc.host(host).compute_only:  # a compute-only host runs no glusterd
                gluster.start_glusterd(h)
                gluster.wait_glusterd(h)
            self.remount(h)
            return
        network.set_links(h, network.ROLES, up=False)
        # The VMs die with the host; fio gets SIGTERM rather than SIGKILL only so that it
        # writes the logs of what it did before (the links are already down, so nothing it
        # does now reaches a peer). Everything else dies at once.
        vms = workload_pids(h)
        signal_pids(vms, signal.SIGTERM)
        kill_and_wait([p for p in node_pids(h) if p not in vms])
        wait_until(lambda: not any(alive(p) for p in vms), 5.0, 0.05)
        kill_and_wait(vms)
        self.on_workloads_killed(h.name)

    def freeze(self, host: str, frozen: bool) -> None:
        signal_pids(node_pids(self.lab.host(host)), signal.SIGSTOP if frozen else signal.SIGCONT)

    def link(self, host: str, roles: tuple[NetworkRole, ...], up: bool) -> None:
        network.set_links(self.lab.host(host), roles, up)

    def shape(self, host: str, roles: tuple[NetworkRole, ...], rate_mbit: float | None) -> None:
        if rate_mbit is None:
            network.unshape(self.lab, self.lab.host(host), roles)
        else:
            network.shape(self.lab, self.lab.host(host), roles, rate_mbit)

    def disk(self, host: str, disk: str, failed: bool) -> None:
        h = self.lab.host(host)
        if failed:
            bricks.shutdown_fs(h.disk_mount(disk))
        else:
            self._replace_disk(h, disk)

    def before_brick_start(self, host: str, volumes: list[str]) -> None:
        h = self.lab.host(host)
        for v in volumes:
            clear_stale_pidfiles(gluster.brick_pid_files(h, v))

    def _replace_disk(self, h: HostLayout, disk: str) -> None:
        """A new empty disk: reset-brick start, new filesystem, reset-brick commit force."""
        vols = [v.name for v in self.sc.volumes if (b := v.brick_on(h.name)) is not None
                and self.sc.host(h.name).disk(b.disk).name == disk]
        cli = gluster.client(h)
        for v in vols:
            cli.run("volume", "reset-brick", v, f"{h.storage_addr}:{h.brick(disk, v)}", "start")
        ino = netns_inode(h.netns)
        kill_and_wait([p for v in vols for p in owned_pids(
            gluster.brick_pid_files(h, v), {ino} if ino else set(), h.dir)])
        bricks.replace_fs(h.image(disk), h.disk_mount(disk), self.state)
        self.before_brick_start(h.name, vols)
        for v in vols:
            h.brick(disk, v).mkdir(parents=True, exist_ok=True)
            brick = f"{h.storage_addr}:{h.brick(disk, v)}"
            cli.do("volume", "reset-brick", v, brick, brick, "commit", "force",
                   step=f"reset-brick {v} on {h.name}")
