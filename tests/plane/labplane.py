"""One bring-up for the plane's lab tests: a netns lab built and deployed (or one a module
shares), the management plane on it, the scenario's VMs started where the shared placement
puts them (the hosted engine first, then its HA agents), the engine polling. Leaving takes
the plane down, and the lab too unless it was given."""

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
def built_lab(sc: Scenario, name: str) -> Iterator[NetnsBackend]:
    with NetnsBackend(sc, name=unique_name(name)) as be:
        be.build()
        be.deploy()
        yield be


@contextlib.contextmanager
def running_plane(sc: Scenario, name: str, be: NetnsBackend | None = None
                  ) -> Iterator[tuple[NetnsBackend, Plane]]:
    """``be``: a lab built for a scenario with the same hosts and volumes as ``sc``."""
    with contextlib.ExitStack() as stack:
        lab = be if be is not None else stack.enter_context(built_lab(sc, name))
        plane = stack.enter_context(management_plane(lab, sc))
        plane.start(placement(sc))
        time.sleep(2 * sc.compute.fencing.vds_refresh_rate_s)
        yield lab, plane
