"""The SSH side of an acceptance run: a private ssh_config (keys only) and one shell per server.

Commands go through :class:`hcisim.lab.node.SshShell` (the one SSH implementation): each
under a remote ``timeout``, over a multiplexed connection with keep-alives, so a server that
hangs or drops off the network cannot hold the run. The generated ssh_config turns batch
mode on and password and keyboard-interactive methods off, so ssh fails instead of asking.
Nothing of the key (only whether one was given) is ever recorded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hcisim.accept.targets import HostTarget
from hcisim.lab.gluster import Gluster
from hcisim.lab.node import NodeShell, SshShell
from hcisim.lab.node import ssh_config_text as node_ssh_config


class Shell(NodeShell, Protocol):
    """A node shell that knows which server it reaches (SSH here; a fake in unit tests)."""

    @property
    def target(self) -> HostTarget: ...


def gluster_of(shell: Shell) -> Gluster:
    """The Gluster client of the server's own glusterd (its socket, if not the default)."""
    return Gluster(shell, shell.target.glusterd_sock)


class HostShell(SshShell):
    """One existing server over SSH."""

    def __init__(self, target: HostTarget, config: Path) -> None:
        super().__init__(config, target.address, target.user, target.port, target.label)
        self.target = target


@dataclass(frozen=True)
class SshOptions:
    """How to reach the servers; recorded in the journal only through ``describe()``."""

    identity: Path | None = None
    known_hosts: Path | None = None
    trust_new_hosts: bool = False
    user_config: Path | None = None
    connect_timeout_s: int = 10
    keepalive_s: int = 3

    def describe(self) -> dict[str, Any]:
        """What may be written to reports: the kind of credential, never the key or a path."""
        return {"auth": "key file" if self.identity else "ssh agent / default keys",
                "host_keys": "accept new" if self.trust_new_hosts else "strict"}


def ssh_config_text(opts: SshOptions, control_dir: Path) -> str:
    """The ssh_config every connection of the run uses."""
    return node_ssh_config(f"{control_dir}/%C", identity=opts.identity,
                           known_hosts=opts.known_hosts,
                           host_keys="accept-new" if opts.trust_new_hosts else "yes",
                           connect_timeout_s=opts.connect_timeout_s,
                           keepalive_s=opts.keepalive_s, include=opts.user_config)


class SshSession:
    """The SSH side of one run: a private config and control dir, one shell per server."""

    def __init__(self, opts: SshOptions) -> None:
        if opts.identity is not None and not opts.identity.is_file():
            raise FileNotFoundError(f"--identity {opts.identity}: no such key file")
        if opts.user_config is not None and not opts.user_config.is_file():
            raise FileNotFoundError(f"--ssh-config {opts.user_config}: no such file")
        self.opts = opts
        # Control sockets need a short path (108 bytes); /tmp keeps it short.
        self.dir = Path(tempfile.mkdtemp(prefix="hcisim-ssh-", dir="/tmp"))
        os.chmod(self.dir, 0o700)
        self.config = self.dir / "ssh_config"
        self.config.write_text(ssh_config_text(opts, self.dir))
        self.shells: dict[str, HostShell] = {}

    def shell(self, target: HostTarget) -> HostShell:
        key = target.url
        if key not in self.shells:
            self.shells[key] = HostShell(target, self.config)
        return self.shells[key]

    def close(self) -> None:
        for sh in self.shells.values():
            with suppress(OSError, subprocess.SubprocessError):
                sh.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def ssh_session(opts: SshOptions) -> Iterator[SshSession]:
    session = SshSession(opts)
    try:
        yield session
    finally:
        session.close()
