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
from dataclasses import dataclass
from pathlib import Path

from hcisim.lab.errors import LabError
from hcisim.lab.libvirt.layout import LabPlan

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


@dataclass(frozen=True)
class NodeShell:
    """Runs commands on the lab's nodes by host name."""

    config: Path

    def argv(self, host: str, command: str) -> list[str]:
        return ["ssh", "-F", str(self.config), host, command]

    def run(self, host: str, command: str, step: str, timeout: float = 120.0,
            check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(self.argv(host, command), capture_output=True, text=True,
                                  timeout=timeout, input=input_text, check=False)
        except subprocess.TimeoutExpired:
            raise LabError(step, f"{host}: `{command[:80]}` did not finish in {timeout:.0f} s") \
                from None
        if check and proc.returncode != 0:
            msg = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}")
            raise LabError(step, f"{host}: `{command[:80]}`: {msg.splitlines()[-1]}")
        return proc

    def script(self, host: str, text: str, step: str, timeout: float = 120.0,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a POSIX shell script (``set -e``) on ``host``."""
        return self.run(host, "sh -se", step, timeout=timeout, check=check,
                        input_text="set -e\n" + text)

    def put(self, host: str, data: bytes, remote: str, mode: str = "0644") -> None:
        q = shlex.quote(remote)
        cmd = f"mkdir -p $(dirname {q}) && cat > {q}.tmp && chmod {mode} {q}.tmp && mv {q}.tmp {q}"
        proc = subprocess.run(self.argv(host, cmd), input=data, capture_output=True,
                              timeout=60, check=False)
        if proc.returncode != 0:
            raise LabError(f"copy {remote} to {host}", proc.stderr.decode(errors="replace"))

    def fetch_tar(self, host: str, directory: str, names: list[str], dest: Path,
                  timeout: float = 120.0) -> None:
        """Copy files ``names`` (globs) under ``directory`` on ``host`` into ``dest``."""
        dest.mkdir(parents=True, exist_ok=True)
        bad = [n for n in names if not _GLOB.match(n)]
        if bad:
            raise ValueError(f"unsafe file patterns {bad}")
        globs = " ".join(names)
        cmd = (f"cd {shlex.quote(directory)} 2>/dev/null && "
               f"tar cf - $(ls -d {globs} 2>/dev/null) 2>/dev/null || true")
        with subprocess.Popen(self.argv(host, cmd), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL) as src:
            subprocess.run(["tar", "xf", "-", "-C", str(dest)], stdin=src.stdout,
                           capture_output=True, timeout=timeout, check=False)

    def wait_ready(self, host: str, timeout: float) -> float:
        """Wait until sshd on ``host`` runs commands; returns the seconds it took."""
        t0 = time.monotonic()
        last = ""
        while time.monotonic() - t0 < timeout:
            try:
                proc = subprocess.run(self.argv(host, "cat /run/hcisim-ready"),
                                      capture_output=True, text=True, timeout=15, check=False)
                if proc.returncode == 0:
                    return time.monotonic() - t0
                last = proc.stderr.strip()
            except subprocess.TimeoutExpired:
                last = "ssh timed out"
            time.sleep(1.0)
        raise LabError(f"boot {host}", f"no ssh within {timeout:.0f} s ({last}); "
                       "see the node's console.log")

    def close(self, hosts: list[str]) -> None:
        """End the shared connections (the ControlMaster processes ssh started)."""
        for h in hosts:
            subprocess.run(["ssh", "-F", str(self.config), "-O", "exit", h],
                           capture_output=True, timeout=10, check=False)
