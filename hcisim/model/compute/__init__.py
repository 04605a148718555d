"""The oVirt compute model: placement, failover pairs, HA restart, live migration,
maintenance and the hosted engine.

Pure rules (no time): placement and failover live in the shared :mod:`hcisim.placement`
(every engine places VMs the same way); here :mod:`.migration`, :mod:`.ha`. In simulated
time (SimPy):
:class:`.process.ComputeModel`, talking to the storage model only through
:class:`.ports.StoragePort`. Rules, sources and defaults: docs/compute.md.
"""

from hcisim.model.compute.migration import (
    ConstantBandwidth,
    GuestMemory,
    MigrationResult,
    PiecewiseBandwidth,
    migrate,
)
from hcisim.model.compute.ports import MigrationFlow, SteadyStorage, StoragePort
from hcisim.model.compute.process import ComputeModel
from hcisim.placement.failover import (
    FailoverPair,
    ReservationReport,
    failover_pairs,
    failover_rows,
    ha_reservation,
    reservation_summary,
)
from hcisim.placement.inventory import ClusterSpec, HostSpec, VmSpec, cluster_of
from hcisim.placement.scheduler import choose_host, place, schedule_unplaced

__all__ = [
    "ClusterSpec", "ComputeModel", "ConstantBandwidth", "FailoverPair", "GuestMemory", "HostSpec",
    "MigrationFlow", "MigrationResult", "PiecewiseBandwidth", "ReservationReport",
    "SteadyStorage", "StoragePort", "VmSpec", "choose_host", "cluster_of", "failover_pairs",
    "failover_rows", "ha_reservation", "migrate", "place", "reservation_summary",
    "schedule_unplaced",
]
