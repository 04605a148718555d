"""Where a volume is mounted on a server (files move with :mod:`hcisim.lab.node`)."""

from __future__ import annotations

from collections.abc import Mapping

from hcisim.accept.ssh import Shell
from hcisim.lab.gluster import VolumeInfo


class RemoteError(Exception):
    """A step on a server failed; the message names the server and the step."""


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


def find_mount(shell: Shell, volume: str, own_addresses: list[str]) -> str | None:
    """This server's mount of ``volume``: one served by its own address if several exist
    (namespace-lab nodes see every node's mounts), else the first one."""
    res = shell.run(["cat", "/proc/mounts"], 30)
    mounts = parse_fuse_mounts(res.stdout, volume)
    for server, point in mounts:
        if server in own_addresses:
            return point
    return mounts[0][1] if mounts else None


def mount_answers(shell: Shell, volume: str, own_addresses: list[str]) -> tuple[str | None, str]:
    """(mount point or None, what is wrong with it or ""): mounted and answering ``stat -f``."""
    point = find_mount(shell, volume, own_addresses)
    if point is None:
        return None, "not mounted"
    res = shell.run(["stat", "-f", "-c", "%T", point], 15)
    return point, "" if res.ok and "fuse" in res.stdout else res.tail
