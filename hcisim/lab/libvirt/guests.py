"""A guest inside a libvirt node: the guests layer's qemu, QMP client and agent link, over SSH.

Nothing of the guest is written twice. The command line is :meth:`GuestSpec.argv` with the
guest layer's paths in the node (:class:`hcisim.lab.libvirt.nested.NodeGuestImage`) and
``accel`` from the nested check; QMP is :class:`hcisim.lab.guests.qmp.QmpSession` and the
heartbeat and write history :class:`hcisim.lab.guests.agentlink.AgentLink`, as on the
namespace lab. What differs is reach:

- qemu is started by ``ssh NODE exec qemu ...`` (the lab's multiplexed connection); the ssh
  process lives as long as qemu, so :meth:`Guest.running` and ``wait_exit`` mean the
  same; qemu's output comes back to ``qemu.log``;
- the guest's run directory has the same path on the harness and in the node
  (``<lab dir>/guests/<host>/<vm>``): qemu makes its QMP and agent sockets there in the
  node, and the lab's SSH master forwards the same paths on the harness to them
  (``ssh -O forward -L PATH:PATH``), so the guests layer connects to ``spec.qmp_sock`` and
  ``spec.agent_sock`` unchanged;
- signals (SIGSTOP/SIGCONT/SIGKILL) go to the PID qemu wrote to its pid file in the node;
- the disk is created in the node, on its FUSE mount, and its size is given
  (``GuestSpec.disk_bytes``): the harness cannot stat it.

A node that loses power takes its guests with it (the domain is destroyed); the ssh then
ends, and the guest is down.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import subprocess
from pathlib import Path
from typing import Any

from hcisim.lab.guests.lab import history_relname
from hcisim.lab.guests.qemu import Guest, GuestSpec
from hcisim.lab.node import SshShell, checked, sh
from hcisim.lab.process import spawn

FORWARD_TIMEOUT_S = 15.0


class NodeGuest(Guest):
    """See the module docstring. ``node`` is the node's shell (the lab's ssh_config)."""

    def __init__(self, spec: GuestSpec, image: Any, node: SshShell) -> None:
        super().__init__(spec, image)
        self.node = node
        self._forwarded: list[Path] = []

    def _forward(self, path: Path, cancel: bool = False) -> None:
        op = "cancel" if cancel else "forward"
        res = subprocess.run(self.node.ssh_argv("-O", op, "-L", f"{path}:{path}"),
                             capture_output=True, text=True, timeout=FORWARD_TIMEOUT_S,
                             check=False)
        if not cancel and res.returncode != 0:
            from hcisim.lab.errors import LabError

            raise LabError(f"start guest {self.spec.name} in {self.spec.host}",
                           f"ssh -O forward {path}: {res.stderr.strip()[-200:]}")

    def _spawn(self) -> subprocess.Popen[bytes]:
        s = self.spec
        sockets = " ".join(shlex.quote(str(p)) for p in (s.qmp_sock, s.agent_sock))
        checked(self.node, sh(f"mkdir -p {shlex.quote(str(s.run_dir))} && rm -f {sockets}"),
                f"prepare guest {s.name} in {s.host}", 60)
        for sock in (s.qmp_sock, s.agent_sock):
            self._forward(sock)
            self._forwarded.append(sock)
        remote = "exec " + shlex.join(s.argv(self.image, s.accel))
        return spawn([*self.node.ssh_argv(), remote], None, s.qemu_log)

    def _signal(self, sig: signal.Signals) -> None:
        if self.running():
            pidfile = shlex.quote(str(self.spec.pidfile))
            self.node.run(sh(f"kill -{sig.name[3:]} \"$(cat {pidfile})\""), 15)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            for sock in self._forwarded:
                with contextlib.suppress(Exception):
                    self._forward(sock, cancel=True)
                with contextlib.suppress(OSError):
                    sock.unlink()
            self._forwarded.clear()


def make_node_disk(node: SshShell, path: str, size_bytes: int) -> None:
    """A zeroed, allocated disk image in the node (posix_fallocate, as make_disk does)."""
    code = (f"import os; f = os.open({path!r}, os.O_CREAT | os.O_WRONLY, 0o644); "
            f"os.posix_fallocate(f, 0, {size_bytes}); os.close(f)")
    checked(node, ["python3", "-c", code], f"create guest disk {path}", 120)


def node_guest_spec(run_root: Path, host: str, mount: str, vm: str, disk_bytes: int,
                    accel: str, **options: Any) -> GuestSpec:
    """The spec of ``vm``'s guest in ``host``'s node: disk on the node's mount, run dir
    (and pid file) at the same path on the harness and in the node."""
    run_dir = run_root / host / vm
    return GuestSpec(name=vm, netns="", host=host, disk=Path(mount) / f"{history_relname(vm)}.0",
                     run_dir=run_dir, pidfile=run_dir / "qemu.pid", accel=accel,
                     disk_bytes=disk_bytes, **options)
