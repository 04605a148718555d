"""One bring-up for the plane's lab tests: a netns lab built and deployed, the management
plane on it, the scenario's VMs started where the shared placement puts them (the hosted
engine first, then its HA agents), the engine polling. Everything goes down on leaving."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from hcisim.lab.netns.backend import NetnsBackend
from hcisim.lab.netns.layout import unique_name
from hcisim.lab.plane.run import Plane, management_plane
from hcisim.lab.run import placement
from hcisim.scenario import Scenario


@contextlib.contextmanager
def running_plane(sc: Scenario, name: str) -> Iterator[tuple[NetnsBackend, Plane]]:
    with NetnsBackend(sc, name=unique_name(name)) as be:
        be.build()
        be.deploy()
        with management_plane(be, sc) as plane:
            plane.start(placement(sc))
            time.sleep(2 * sc.compute.fencing.vds_refresh_rate_s)
            yield be, plane
