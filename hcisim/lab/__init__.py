"""The real lab: GlusterFS, workloads and faults for real, observed in the shared schema.

``run_lab(scenario, backend="netns")`` is what ``hcisim run --engine lab`` calls. Backends
are registered by name in :mod:`hcisim.lab.backend`; ``netns`` is one machine with a network
namespace per host (:mod:`hcisim.lab.netns`).
"""

from hcisim.engines import LabOptions
from hcisim.lab.backend import (
    Backend,
    Sample,
    Workload,
    backend_names,
    open_backend,
)
from hcisim.lab.errors import LabError
from hcisim.lab.run import run_lab
from hcisim.lab.scale import LabScale, as_built

__all__ = [
    "Backend", "LabError", "LabOptions", "LabScale", "Sample", "Workload", "as_built",
    "backend_names", "open_backend", "run_lab",
]
