"""Is a server back as it was after a fault: its bricks, self-heal daemon, storage link,
peers and mounts, read before the fault phase and after the rollbacks, one row per host a
fault touched."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hcisim.accept.remote import mount_answers
from hcisim.accept.rows import CheckRow, row
from hcisim.accept.ssh import Shell, gluster_of
from hcisim.accept.storage import storage_interface
from hcisim.lab.gluster import GlusterError, VolumeInfo
from hcisim.lab.hosts import link_is_up, own_addresses
from hcisim.scenario import Scenario


def storage_if_of(shell: Shell, volumes: Mapping[str, VolumeInfo], uuid: str | None) -> str | None:
    """The server's storage NIC: as its target says, else the one holding its brick address."""
    if shell.target.storage_if:
        return shell.target.storage_if
    addrs = own_addresses(volumes, uuid)
    return storage_interface(shell, addrs[0]) if addrs else None


@dataclass(frozen=True)
class HostHealth:
    """What a fault could break on a host, read before and after it."""

    bricks_online: frozenset[str]
    storage_link_up: bool | None
    peers_connected: int
    mounts_answering: frozenset[str] = frozenset()  # volumes mounted here and answering
    shd_online: frozenset[str] = frozenset()  # volumes whose self-heal daemon here is online


def host_health(sc: Scenario, shell: Shell, volumes: Mapping[str, VolumeInfo],
                uuid: str | None) -> HostHealth:
    cli = gluster_of(shell)
    procs = cli.host_processes([v.name for v in sc.volumes if v.name in volumes], uuid)
    online = {f"{vol}:{p.path}" for vol, ps in procs.bricks.items() for p in ps if p.online}
    ifname = storage_if_of(shell, volumes, uuid)
    try:
        peers = sum(1 for p in cli.peers() if p.connected)
    except GlusterError:
        peers = 0
    own = own_addresses(volumes, uuid)
    mounts = frozenset(v.name for v in sc.volumes
                       if v.name in volumes and not mount_answers(shell, v.name, own)[1])
    return HostHealth(frozenset(online), link_is_up(shell, ifname) if ifname else None, peers,
                      mounts, procs.shd_online)


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
    no_shd = sorted(before.shd_online - after.shd_online)
    if no_shd:
        gaps.append(f"self-heal daemon offline for: {', '.join(no_shd)}")
    dead = sorted(before.mounts_answering - after.mounts_answering)
    if dead:
        gaps.append(f"volumes not mounted or not answering: {', '.join(dead)}")
    gaps += [f"undo failed: {f}" for f in failed_undo]
    return [row("host restored", host, "as before the fault",
                "restored" if not gaps else "NOT RESTORED: " + "; ".join(gaps), not gaps)]
