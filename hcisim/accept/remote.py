"""Where a volume is mounted on a server, and whether the mount answers."""

from __future__ import annotations

from hcisim.accept.ssh import Shell
from hcisim.lab.hosts import find_mount


class RemoteError(Exception):
    """A step on a server failed; the message names the server and the step."""


def mount_answers(shell: Shell, volume: str, own_addresses: list[str]) -> tuple[str | None, str]:
    """(mount point or None, what is wrong with it or ""): mounted and answering ``stat -f``."""
    point = find_mount(shell, volume, own_addresses)
    if point is None:
        return None, "not mounted"
    res = shell.run(["stat", "-f", "-c", "%T", point], 15)
    return point, "" if res.ok and "fuse" in res.stdout else res.tail
