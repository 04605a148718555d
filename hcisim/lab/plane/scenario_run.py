"""A lab-ha scenario by ``hcisim run --engine lab``: the management plane carries it out.

A scenario with ``lab: {vms: guests, plane: true}`` runs its VMs as real guests started by
the plane's engine (the hosted engine first, then its HA agents), plays its faults on the
lab's clock (t = 0 once the VMs run and the engine polls) and returns the plane's
observations: the fault, engine and lease events, the hosted engine's ``engine_down`` /
``engine_up``, and every VM's ``vm_state`` from the agents' logs, so that ``hcisim
compare`` has the lab's HA timeline beside the model's. Everything the plane started is
stopped on the way out (exceptions and Ctrl-C included).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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
        obs = plane.observations(sc, t0, t_end, [(w.start, w.fault) for w in windows])
        obs.meta["io_measured"] = False  # no load writers, no heal wait: compare leaves
        # the lab's throughput, stall and heal rows empty instead of 0
        obs.meta["plane"] = {
            "engine_events": len(plane.engine.events),
            "ha_agent_events": len(plane.ha_events()),
            "unrepaired_faults": [w.fault.target for w in windows if w.end is None]}
    if progress:
        progress(1.0)
    return obs
