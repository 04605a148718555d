"""Capacity sizing: which three-node HCI hardware carries a VM inventory with one node down.

Analytic and fluid (no simulation): usable capacity per volume layout, an n+1 bin-packing
check, steady-state NIC/disk utilisation with each layout's write fan-out, and heal/rebuild
times. Formulas: docs/capacity.md and the module docstrings.
"""

from hcisim.capacity.layout import ReplicaSet, Usable, file_count, replica_sets, usable_capacity
from hcisim.capacity.placement import Failover, Placement, failover, host_room, place
from hcisim.capacity.report import write_capacity
from hcisim.capacity.sizing import CHECKS, Assessment, Check, assess, size, smallest
from hcisim.capacity.spec import (
    Candidate,
    CapacitySpec,
    InventoryVm,
    SpecError,
    load_spec,
    parse_spec,
    read_inventory,
)

__all__ = [
    "CHECKS",
    "Assessment",
    "Candidate",
    "CapacitySpec",
    "Check",
    "Failover",
    "InventoryVm",
    "Placement",
    "ReplicaSet",
    "SpecError",
    "Usable",
    "assess",
    "failover",
    "file_count",
    "host_room",
    "load_spec",
    "parse_spec",
    "place",
    "read_inventory",
    "replica_sets",
    "size",
    "smallest",
    "usable_capacity",
    "write_capacity",
]
