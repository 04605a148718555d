"""Maintenance of Gluster hosts: the engine's refusals, and a rolling maintenance.

A maintenance stops the host's bricks, so the engine first runs its Gluster validations
(:func:`hcisim.placement.maintenance_rules.maintenance_refusal`, from ovirt-engine's
``MaintenanceNumberOfVdssCommand``): refused when stopping them would take a replica set
below quorum, or while a brick of the host holds unsynced entries (heal pending). A refused
maintenance is an ``operation`` event ``maintenance refused: <why>``; the host stays up.

A rolling maintenance (``operations: [{kind: rolling_maintenance, hold_s: ...}]``) takes
every host in scenario order, as the oVirt cluster-upgrade role does one host at a time:
ask for maintenance, and while the engine refuses, ask again every :data:`RETRY_S` (the
role's ``until``/``delay`` loop): so it waits for the heal of the host before (whose bricks
were away) to finish. Once the host is in maintenance it stays ``hold_s`` (the upgrade and
reboot), is activated (bricks started, heal begins) and the next host's turn begins. A host
that cannot be emptied (a VM fits nowhere, a migration is given up) stops the rolling
maintenance there (event ``rolling maintenance stopped``), as the role fails.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from hcisim.placement.maintenance_rules import maintenance_refusal

if TYPE_CHECKING:
    from hcisim.model.compute.process import ComputeModel

Proc = Generator[Any, Any, None]

RETRY_S = 10.0  # the upgrade role asks the engine again this often while it refuses
ENTER_WAIT_S = 1800.0  # and waits this long for a host to reach Maintenance
DEFAULT_HOLD_S = 60.0


def refusal(m: ComputeModel, host: str) -> str | None:
    """Why the engine refuses to put ``host`` into maintenance now (None: accepted)."""
    return maintenance_refusal(host, m.storage.gluster_bricks(), m.storage.unsynced_entries())


def rolling(m: ComputeModel, hold_s: float | None) -> Proc:
    """Every host in turn: maintenance (retried while refused), ``hold_s``, activate."""
    env = m.env
    hold = DEFAULT_HOLD_S if hold_s is None else hold_s
    for host in m.sc.host_names:
        t_asked = env.now
        refused_for: str | None = None
        while True:
            why = refusal(m, host) if m.host_state[host] == "up" else \
                f"{host} is {m.host_state[host]}"
            if why is None:
                break
            if why.split(":")[0] != refused_for:  # once per reason, not per count
                m.rec.event(env.now, "operation", host, f"rolling maintenance waits: {why}",
                            source="engine")
                refused_for = why.split(":")[0]
            if env.now - t_asked > ENTER_WAIT_S:
                m.rec.event(env.now, "operation", host,
                            f"rolling maintenance stopped: {why}", source="engine")
                return
            yield env.timeout(RETRY_S)
        yield env.process(m.migrations.maintenance(host))
        if m.host_state[host] != "maintenance":
            m.rec.event(env.now, "operation", host,
                        f"rolling maintenance stopped: {host} is {m.host_state[host]}",
                        source="engine")
            return
        yield env.timeout(hold)
        m.migrations.activate(host)
    m.rec.event(env.now, "operation", "", "rolling maintenance: done", source="engine")
