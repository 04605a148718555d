"""Small facts and file moves on a server: where a volume is mounted, files in and out.

Files travel base64-encoded through the command channel, so nothing beyond a POSIX shell,
``base64`` and ``python3`` (for the write history) is needed on the servers.
"""

from __future__ import annotations

import base64
import shlex

from hcisim.accept.ssh import Shell


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


def find_mount(shell: Shell, volume: str, own_addresses: list[str]) -> str | None:
    """This server's mount of ``volume``: one served by its own address if several exist
    (namespace-lab nodes see every node's mounts), else the first one."""
    res = shell.run("cat /proc/mounts", timeout_s=30)
    mounts = parse_fuse_mounts(res.stdout, volume)
    for server, point in mounts:
        if server in own_addresses:
            return point
    return mounts[0][1] if mounts else None


def push_file(shell: Shell, path: str, content: bytes, mode: str = "0644") -> None:
    data = base64.b64encode(content).decode()
    q = shlex.quote(path)
    res = shell.run(f"umask 077; printf %s {shlex.quote(data)} | base64 -d > {q} && "
                    f"chmod {mode} {q}", timeout_s=60)
    if not res.ok:
        raise RemoteError(f"{shell.target.label}: cannot write {path}: {res.stderr.strip()}")


def fetch_file(shell: Shell, path: str, timeout_s: float = 120.0) -> bytes | None:
    """The file's bytes, or None when it does not exist or cannot be read."""
    res = shell.run(f"base64 -w0 {shlex.quote(path)}", timeout_s=timeout_s)
    if not res.ok:
        return None
    try:
        return base64.b64decode(res.stdout.strip())
    except ValueError:
        return None
