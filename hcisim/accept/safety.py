"""What makes a destructive fault on someone's server acceptable: permission, a hard bound,
and rollbacks that always run.

- Permission: a fault runs only with ``--allow-destructive`` and only on a host the user
  named; each refusal is a clear sentence in the report.
- Bound: every fault has a hard upper bound on its duration, enforced on the server itself
  by a dead man's switch armed before (or as) the fault: a detached shell on the server
  that undoes the fault after the bound, even if the controller dies or loses its SSH
  connection because of the very fault it injected.
- Rollback: the hosts backend (:class:`hcisim.lab.hosts.HostsBackend`) repairs every fault
  still on when it is closed, whatever happened, including Ctrl-C, which is held back
  while hosts are being restored.
"""

from __future__ import annotations

from dataclasses import dataclass

from hcisim.lab.faults import mechanism
from hcisim.scenario import Fault

# The mechanisms existing servers survive unattended (hcisim.lab.faults), and their kinds.
SUPPORTED = {"brick_kill": "brick_crash", "link": "nic_loss", "power": "node_power_loss"}
DEFAULT_MAX_FAULT_S = 300.0


@dataclass(frozen=True)
class FaultPolicy:
    """What the user allowed: destructive faults at all, on which hosts, for how long."""

    allow_destructive: bool
    hosts: frozenset[str]
    max_fault_s: float = DEFAULT_MAX_FAULT_S
    power_off_cmd: str | None = None
    power_on_cmd: str | None = None

    def refusal(self, fault: Fault) -> str | None:
        """Why ``fault`` must not run (None: it may)."""
        what = f"{fault.kind} on {fault.target}"
        if not self.allow_destructive:
            return (f"refused {what}: destructive faults need --allow-destructive "
                    "(read-only checks and the baseline ran)")
        if fault.target not in self.hosts:
            return f"refused {what}: {fault.target} is not one of the hosts named in --hosts"
        how = mechanism(fault)
        if how not in SUPPORTED:
            return (f"refused {what}: not supported on existing servers "
                    f"(supported: {', '.join(SUPPORTED.values())})")
        if how == "link" and fault.networks != ("storage",):
            return (f"refused {what}: only the storage NIC is cut on real hosts (the "
                    "management network carries the controller's SSH)")
        if how == "power" and not (self.power_off_cmd and self.power_on_cmd):
            return (f"refused {what}: node power loss needs --power-cmd and --power-on-cmd "
                    "(the run must be able to power the host back on)")
        return None

    def bound_s(self, fault: Fault) -> float:
        """The fault's duration, never more than the hard upper bound."""
        want = fault.duration_s if fault.duration_s is not None else self.max_fault_s
        return min(want, self.max_fault_s)
