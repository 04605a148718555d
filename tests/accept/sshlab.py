"""SSH servers inside the namespace lab's nodes, so that the lab can stand in for
"existing servers": one sshd per node namespace on the node's management address, a test
key, host keys and known_hosts in a temporary folder, and a controller namespace of our own
on the lab's management bridge (plus a "void" namespace whose address nobody listens on).

Needs: openssh-server (sshd) and openssh-client; everything else is the lab's.
Only the sshd processes started here are stopped, by the PIDs in their own pid files.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
_counter = itertools.count()


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          check=check)


@dataclass
class SshNode:
    name: str
    netns: str
    address: str
    pidfile: Path
    proc: subprocess.Popen[bytes]


@dataclass
class SshLab:
    dir: Path
    key: Path
    wrong_key: Path
    known_hosts: Path
    controller_ns: str
    void_ns: str
    void_address: str
    nodes: list[SshNode] = field(default_factory=list)

    def in_controller(self, *argv: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.controller_ns}", *argv]


def _keygen(path: Path, comment: str) -> None:
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))


def _attach_ns(name: str, switch_ns: str, bridge: str, addr: str, prefix: int) -> None:
    """A namespace of ours with one port on the lab's management bridge."""
    n = next(_counter)
    here, there = f"acc{os.getpid() % 10000}x{n}", f"acc{os.getpid() % 10000}y{n}"
    sh("ip", "netns", "add", name)
    sh("ip", "link", "add", here, "netns", name, "type", "veth", "peer", "name", there,
       "netns", switch_ns)
    sh("ip", "-n", switch_ns, "link", "set", there, "master", bridge, "up")
    sh("ip", "-n", name, "link", "set", "lo", "up")
    sh("ip", "-n", name, "link", "set", here, "up")
    sh("ip", "-n", name, "addr", "add", f"{addr}/{prefix}", "dev", here)


def _sshd_config(d: Path, node: str, address: str, authorized: Path) -> Path:
    hostkey = d / f"hostkey-{node}"
    _keygen(hostkey, f"host-{node}")
    cfg = d / f"sshd-{node}.conf"
    cfg.write_text(f"""ListenAddress {address}:22
HostKey {hostkey}
PidFile {d / f"sshd-{node}.pid"}
AuthorizedKeysFile {authorized}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel VERBOSE
""")
    return cfg


@contextlib.contextmanager
def ssh_lab(lab_layout: object, tmp: Path) -> Iterator[SshLab]:
    """sshd in every node of a running netns lab (``lab_layout``: its LabLayout)."""
    from hcisim.lab.netns.layout import LabLayout

    assert isinstance(lab_layout, LabLayout)
    tmp.mkdir(parents=True, exist_ok=True)
    key, wrong = tmp / "id_test", tmp / "id_wrong"
    _keygen(key, "hcisim-accept-test")
    _keygen(wrong, "hcisim-accept-wrong")
    authorized = tmp / "authorized_keys"
    authorized.write_text((tmp / "id_test.pub").read_text())
    prefix = lab_layout.prefix_len
    net = lab_layout.hosts[0].mgmt_addr.rsplit(".", 1)[0]
    tag = f"{os.getpid() % 100000}-{next(_counter)}"
    lab = SshLab(tmp, key, wrong, tmp / "known_hosts", f"hcacc-{tag}-ctl",
                 f"hcacc-{tag}-void", f"{net}.201")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    made: list[str] = []
    try:
        _attach_ns(lab.controller_ns, lab_layout.switch_netns, "brm", f"{net}.200", prefix)
        made.append(lab.controller_ns)
        _attach_ns(lab.void_ns, lab_layout.switch_netns, "brm", lab.void_address, prefix)
        made.append(lab.void_ns)
        lines = []
        for h in lab_layout.hosts:
            cfg = _sshd_config(tmp, h.name, h.mgmt_addr, authorized)
            log = tmp / f"sshd-{h.name}.log"
            # nsenter --net only (not `ip netns exec`, which also makes a private mount
            # namespace): a node's sessions see the mounts the lab makes, as on a server
            proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{h.netns}", str(SSHD), "-D",
                                     "-f", str(cfg), "-E", str(log)], stdin=subprocess.DEVNULL)
            lab.nodes.append(SshNode(h.name, h.netns, h.mgmt_addr, tmp / f"sshd-{h.name}.pid",
                                     proc))
            pub = (tmp / f"hostkey-{h.name}.pub").read_text().split()
            lines.append(f"{h.mgmt_addr} {pub[0]} {pub[1]}")
        lab.known_hosts.write_text("\n".join(lines) + "\n")
        for node in lab.nodes:
            _wait_listening(lab, node)
        yield lab
    finally:
        for node in lab.nodes:
            _stop(node)
        for ns in made:
            sh("ip", "netns", "delete", ns, check=False)


def _wait_listening(lab: SshLab, node: SshNode, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise RuntimeError(f"sshd for {node.name} exited: "
                               f"{(lab.dir / f'sshd-{node.name}.log').read_text()[-500:]}")
        got = sh(*lab.in_controller(
            "ssh", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={lab.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=2", "-i", str(lab.key),
            "-o", "IdentitiesOnly=yes", f"root@{node.address}", "true"), check=False)
        if got.returncode == 0:
            return
        time.sleep(0.3)
    raise RuntimeError(f"sshd for {node.name} did not answer on {node.address}:22")


def _stop(node: SshNode) -> None:
    """Stop our sshd: the PID from its own pid file (and the ip-netns-exec child we hold)."""
    try:
        pid = int(node.pidfile.read_text().strip())
    except (OSError, ValueError):
        pid = None
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if node.proc.poll() is None:
        node.proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        node.proc.wait(timeout=10)


def targets(lab_layout: object, lab: SshLab) -> str:
    """The --hosts string for the lab's nodes: own glusterd socket and working dir each."""
    from hcisim.lab.netns.layout import LabLayout

    assert isinstance(lab_layout, LabLayout)
    return ",".join(
        f"ssh://root@{h.mgmt_addr}?name={h.name}&glusterd_sock={h.sock}"
        f"&glusterd_workdir={h.workdir}" for h in lab_layout.hosts)
