"""A lab-ha scenario by ``hcisim run --engine lab``: the management plane carries it out.

A scenario with ``lab: {vms: guests, plane: true}`` runs its VMs as real guests started by
the plane's engine (the hosted engine first, then its HA agents), plays its faults on the
lab's clock (t = 0 once the VMs run and the engine polls) and returns the plane's
observations: the fault, engine and lease events, the hosted engine's ``engine_down`` /
``engine_up``, and every VM's ``vm_state`` from the agents' logs, so that ``hcisim
compare`` has the lab's HA timeline beside the model's. At the end the write history of
every guest (all its boots on every host) is checked while the guests still run: the
"ran twice" findings become ``vm_ran_twice`` events, and ``meta['history']`` has each disk's
boots, losses and findings (no heal wait: copies may still be short of a cut brick).
Everything the plane started is stopped on the way out (exceptions and Ctrl-C included).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hcisim.lab.guests.lab import check_vm, vm_history_logs
from hcisim.lab.history import CheckResult, history_summary
from hcisim.lab.plane.run import management_plane
from hcisim.lab.run import placement
from hcisim.lab.schedule import play
from hcisim.observations import Observations
from hcisim.scenario import Scenario

Progress = Callable[[float], None]


def run_plane(sc: Scenario, be: Any, progress: Progress | None = None) -> Observations:
    """Bring the plane up on the built and deployed lab ``be``, play ``sc``, observe."""
    with management_plane(be, sc) as plane:
        plane.start(placement(sc))
        t0 = time.time()  # the HA agents run from here, as the model's from t = 0
        windows = play(sc.faults, t0, sc.duration_s, be.inject, be.restore, progress=progress)
        t_end = time.time()
        cut = {w.fault.target for w in windows if w.end is None}
        checks = guest_histories(sc, be, next((h for h in sc.host_names if h not in cut),
                                              sc.host_names[0]))
        obs = plane.observations(sc, t0, t_end, [(w.start, w.fault) for w in windows], checks)
        obs.meta["history"] = {vm: history_summary(c, t0) for vm, c in checks.items()}
        obs.meta["io_measured"] = False  # no load writers, no heal wait: compare leaves
        # the lab's throughput, stall and heal rows empty instead of 0
        obs.meta["plane"] = {
            "engine_events": len(plane.engine.events),
            "ha_agent_events": len(plane.ha_events()),
            "unrepaired_faults": [w.fault.target for w in windows if w.end is None]}
    if progress:
        progress(1.0)
    return obs


def guest_histories(sc: Scenario, be: Any, reader: str) -> dict[str, CheckResult]:
    """Each guest's disk, every boot of it, read through ``reader``'s mount."""
    return {v.name: check_vm(be, v.name, v.disks[0].volume, reader) for v in sc.vms
            if v.disks and vm_history_logs(be.lab_.dir, v.name)}
