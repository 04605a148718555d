"""SSH into the lab's nodes: one key per lab, one ssh_config per lab, keys only.

Every command goes through the ``ssh`` binary with the lab's ssh_config, so testinfra
(``ssh://host1`` with ``ssh_config=...``) and a user's shell (``ssh -F CONFIG host1``) reach
the nodes exactly as the harness does. Connections are shared (ControlMaster): under
software emulation each new SSH handshake costs about a second of the node's CPU.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from pathlib import Path

from hcisim.lab.errors import LabError
from hcisim.lab.libvirt.layout import LabPlan
from hcisim.lab.node import Completed, SshError, SshShell, checked, put_file, sh
from hcisim.lab.wait import wait_until

CONTROL_DIR = Path("/run/hcisim/ssh")
_GLOB = re.compile(r"^[A-Za-z0-9._*-]+$")


def make_key(directory: Path) -> tuple[Path, str]:
    """A new ed25519 key pair for this lab: (private key path, public key line)."""
    key = directory / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                        f"hcisim-{directory.name}", "-f", str(key)], check=True)
    return key, key.with_suffix(".pub").read_text().strip()


def ssh_config(plan: LabPlan, key: Path) -> str:
    lines = []
    for n in plan.nodes:
        lines += [f"Host {n.host}", f"  HostName {n.mgmt_address}", ""]
    lines += [
        "Host *",
        "  User root",
        f"  IdentityFile {key}",
        "  IdentitiesOnly yes",
        "  BatchMode yes",
        "  StrictHostKeyChecking no",
        "  UserKnownHostsFile /dev/null",
        "  LogLevel ERROR",
        "  ConnectTimeout 30",
        "  ServerAliveInterval 5",
        "  ServerAliveCountMax 4",
        "  ControlMaster auto",
        f"  ControlPath {CONTROL_DIR}/%C",
        "  ControlPersist 120",
    ]
    return "\n".join(lines) + "\n"


class NodeShells:
    """The lab's nodes by host name, each a :class:`hcisim.lab.node.SshShell` on the lab's
    ssh_config; commands here are shell text run as ``sh -c`` (libvirt's deploy scripts)."""

    def __init__(self, config: Path) -> None:
        self.config = config

    def node(self, host: str) -> SshShell:
        return SshShell(self.config, host)

    def argv(self, host: str, command: str) -> list[str]:
        return [*self.node(host).ssh_argv(), command]

    def run(self, host: str, command: str, step: str, timeout: float = 120.0,
            check: bool = True, input_text: str | None = None) -> Completed:
        node = self.node(host)
        data = input_text.encode() if input_text is not None else None
        if check:
            return checked(node, sh(command), step, timeout, data)
        return node.run(sh(command), timeout, data)

    def script(self, host: str, text: str, step: str, timeout: float = 120.0,
               check: bool = True) -> Completed:
        """Run a POSIX shell script (``set -e``) on ``host``."""
        return self.run(host, "sh -se", step, timeout=timeout, check=check,
                        input_text="set -e\n" + text)

    def put(self, host: str, data: bytes, remote: str, mode: str = "0644") -> None:
        put_file(self.node(host), remote, data, mode)

    def fetch_tar(self, host: str, directory: str, names: list[str], dest: Path,
                  timeout: float = 120.0) -> None:
        """Copy files ``names`` (globs) under ``directory`` on ``host`` into ``dest``."""
        dest.mkdir(parents=True, exist_ok=True)
        bad = [n for n in names if not _GLOB.match(n)]
        if bad:
            raise ValueError(f"unsafe file patterns {bad}")
        res = self.node(host).run(sh(
            f"cd {shlex.quote(directory)} 2>/dev/null && "
            f"tar cf - $(ls -d {' '.join(names)} 2>/dev/null) 2>/dev/null || true"), timeout)
        subprocess.run(["tar", "xf", "-", "-C", str(dest)], input=res.data,
                       capture_output=True, timeout=timeout, check=False)

    def wait_ready(self, host: str, timeout: float) -> float:
        """Wait until sshd on ``host`` runs commands; returns the seconds it took."""
        t0 = time.monotonic()
        node = self.node(host)
        if not wait_until(lambda: node.run(["cat", "/run/hcisim-ready"], 15).ok, timeout, 1.0,
                          ignore=(SshError,)):
            raise LabError(f"boot {host}", f"no ssh within {timeout:.0f} s; "
                           "see the node's console.log")
        return time.monotonic() - t0

    def close(self, hosts: list[str]) -> None:
        """End the shared connections (the ControlMaster processes ssh started)."""
        for h in hosts:
            self.node(h).close()
