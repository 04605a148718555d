"""SSH into the lab's nodes: one key per lab, one ssh_config per lab, keys only.

Every command goes through the ``ssh`` binary with the lab's ssh_config, so testinfra
(``ssh://host1`` with ``ssh_config=...``) and a user's shell (``ssh -F CONFIG host1``) reach
the nodes exactly as the harness does. Connections are shared (ControlMaster): under
software emulation each new SSH handshake costs about a second of the node's CPU.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from hcisim.lab.errors import LabError
from hcisim.lab.libvirt.layout import LabPlan
from hcisim.lab.node import Completed, SshError, SshShell, checked, sh, ssh_config_text
from hcisim.lab.wait import wait_until

CONTROL_DIR = Path("/run/hcisim/ssh")


def make_key(directory: Path) -> tuple[Path, str]:
    """A new ed25519 key pair for this lab: (private key path, public key line)."""
    key = directory / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                        f"hcisim-{directory.name}", "-f", str(key)], check=True)
    return key, key.with_suffix(".pub").read_text().strip()


def ssh_config(plan: LabPlan, key: Path) -> str:
    """Root on every node with the lab's key; host keys are not kept (each lab's nodes are
    new machines on reused addresses)."""
    return ssh_config_text(f"{CONTROL_DIR}/%C", hosts={n.host: n.mgmt_address
                                                        for n in plan.nodes},
                           user="root", identity=key, known_hosts=Path("/dev/null"),
                           host_keys="no", connect_timeout_s=30, keepalive_s=5,
                           persist_s=120)


class NodeShells:
    """The lab's nodes by host name, each a :class:`hcisim.lab.node.SshShell` on the lab's
    ssh_config; commands here are shell text run as ``sh -c`` (libvirt's deploy scripts)."""

    def __init__(self, config: Path) -> None:
        self.config = config

    def node(self, host: str) -> SshShell:
        return SshShell(self.config, host)

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
