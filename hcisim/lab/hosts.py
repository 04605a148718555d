"""The ``hosts`` backend: existing servers over SSH, broken only in ways they survive.

How it breaks a node (the :class:`hcisim.lab.faults.Machine` of existing servers): power
through the user's own commands (a BMC, run on the controller, never logged: they may hold
credentials), a link through a dead man's switch on the server itself, bricks with the
shared mechanism. Freezing a node, slowing or partitioning its links and failing its disks
are refused: a server cannot be trusted to come back from them unattended.

The switch is a detached shell (``setsid nohup sh -c '...; sleep N; <undo>'``) that outlives
the SSH session and the controller, so a fault returns even if the controller dies or loses
its SSH connection because of the very fault it injected. The acceptance policy around it
(permission, bounds, the rollback ledger) is :mod:`hcisim.accept`; ``hosts+ssh://h1,h2,h3``
in the engine registry runs it through :func:`run_hosts`.
"""

from __future__ import annotations

import importlib
import shlex
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hcisim.lab.errors import LabError
from hcisim.lab.gluster import Gluster
from hcisim.lab.node import NodeShell, SshError, connect, sh
from hcisim.lab.wait import wait_until
from hcisim.observations import Observations
from hcisim.scenario import Scenario
from hcisim.scenario.cluster import NetworkRole


def deadman_command(pidfile: str, inject: str, undo: str, bound_s: float) -> str:
    """A detached shell on the server: ``inject``, sleep the bound, ``undo``.

    It lives in its own session (setsid) with no terminal and no inherited descriptors, so
    neither the end of the SSH session nor the death of the controller stops it. Its PID
    (also its process group) goes to ``pidfile`` so that the controller can disarm it after
    undoing the fault itself.
    """
    body = (f"echo $$ > {shlex.quote(pidfile)}; {inject}; sleep {max(1, round(bound_s))}; "
            f"{undo}; rm -f {shlex.quote(pidfile)}")
    return (f"S=$(command -v setsid || true); $S nohup sh -c {shlex.quote(body)} "
            f">/dev/null 2>&1 </dev/null & sleep 0.2; test -s {shlex.quote(pidfile)}")


def disarm_command(pidfile: str) -> str:
    """Stop a dead man's switch (its whole process group) once the controller has undone
    the fault itself; harmless if it already fired."""
    q = shlex.quote(pidfile)
    return (f"if [ -s {q} ]; then p=$(cat {q}); case $p in *[!0-9]*|'') ;; "
            f"*) kill -TERM -- -$p 2>/dev/null || kill -TERM $p 2>/dev/null;; esac; fi; "
            f"rm -f {q}")


def link_is_up(shell: NodeShell, ifname: str) -> bool:
    res = shell.run(["ip", "-o", "link", "show", "dev", ifname], 30)
    flags = res.stdout.split("<", 1)[-1].split(">", 1)[0].split(",")
    return res.ok and "UP" in flags


@dataclass
class HostsMachine:
    """See :class:`hcisim.lab.faults.Machine`. ``storage_if`` names each server's storage
    NIC; ``switch`` is (pidfile, bound) for the next link cut, set by the acceptance run."""

    shells: Mapping[str, NodeShell]
    socks: Mapping[str, str | None]
    storage_if: Callable[[str], str | None]
    power_off_cmd: str | None = None
    power_on_cmd: str | None = None
    addresses: Mapping[str, str] = field(default_factory=dict)  # host -> address for {address}
    boot_s: float = 600.0
    switch: tuple[str, float] | None = None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    def shell(self, host: str) -> NodeShell:
        return self.shells[host]

    def gluster(self, host: str) -> Gluster:
        return Gluster(self.shells[host], self.socks.get(host))

    def address(self, host: str, role: NetworkRole) -> str:
        raise LabError(f"partition {host}", "not supported on existing servers")

    def _power_cmd(self, template: str | None, host: str) -> bool:
        if template is None:
            return False
        cmd = template.format(host=host, address=self.addresses.get(host, host))
        try:
            done = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=120,
                                  check=False)
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def power(self, host: str, on: bool) -> None:
        if not on:
            if not self._power_cmd(self.power_off_cmd, host):
                raise LabError(f"power off {host}", "the power-off command failed")
            return
        if not self._power_cmd(self.power_on_cmd, host):
            raise LabError(f"power on {host}", "the power-on command failed")
        def answers() -> bool:
            connect(self.shells[host])
            return True

        if not wait_until(answers, self.boot_s, 5.0, clock=self.clock, sleep=self.sleep,
                          ignore=(SshError,)):
            raise LabError(f"power on {host}", f"no SSH within {self.boot_s:.0f} s")
        for v in self.gluster(host).run("volume", "list").stdout.split():
            self.gluster(host).start_force(v)

    def link(self, host: str, roles: tuple[NetworkRole, ...], up: bool) -> None:
        ifname = self.storage_if(host) if roles == ("storage",) else None
        if ifname is None:
            raise LabError(f"cut a link of {host}", "only the storage NIC is cut on servers")
        shell, q = self.shells[host], shlex.quote(ifname)
        if up:
            shell.run(["ip", "link", "set", ifname, "up"], 30)
            if not link_is_up(shell, ifname):
                raise LabError(f"bring {ifname} up on {host}", "it is still down")
            return
        if self.switch is None:
            raise LabError(f"cut {ifname} on {host}", "no dead man's switch was armed")
        pidfile, bound = self.switch
        # The switch is the fault: link down, sleep the bound, link up, on the server itself.
        cmd = deadman_command(pidfile, f"ip link set {q} down", f"ip link set {q} up", bound)
        if not shell.run(sh(cmd), 30).ok:
            raise LabError(f"cut {ifname} on {host}", "the switch did not start")

    def freeze(self, host: str, frozen: bool) -> None:
        raise LabError(f"hang {host}", "not supported on existing servers")

    def shape(self, host: str, roles: tuple[NetworkRole, ...], rate_mbit: float | None) -> None:
        raise LabError(f"slow down {host}", "not supported on existing servers")

    def disk(self, host: str, disk: str, failed: bool) -> None:
        raise LabError(f"fail a disk of {host}", "not supported on existing servers")

    def before_brick_start(self, host: str, volumes: list[str]) -> None:
        pass


def run_hosts(sc: Scenario, hosts: tuple[str, ...], options: Any,
              progress: Callable[[float], None] | None = None) -> Observations:
    """``hosts+ssh://h1,h2,h3``: the acceptance run on existing servers (checks, baseline,
    and, when ``options.allow_destructive``, the scenario's faults on the timeline)."""
    accept = importlib.import_module("hcisim.accept")
    policy: dict[str, Any] = {"allow_destructive": options.allow_destructive,
                              "power_off_cmd": options.power_off_cmd,
                              "power_on_cmd": options.power_on_cmd}
    if options.max_fault_s is not None:
        policy["max_fault_s"] = options.max_fault_s
    ssh = accept.SshOptions(identity=options.identity, known_hosts=options.known_hosts,
                            trust_new_hosts=options.trust_new_hosts)
    targets = accept.parse_targets(",".join(f"ssh://{h}" for h in hosts))
    run = accept.accept(sc, targets, ssh, accept.AcceptOptions(**policy))
    obs: Observations = run.observations
    return obs
