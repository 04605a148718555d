"""The fluid SimPy model of a three-node GlusterFS cluster (engine ``model``).

``simulate(scenario)`` builds the model from the scenario (hosts, NICs, disks, bricks,
replica sets, client mounts, VM disks), runs it, and returns the same Observations a lab
produces. docs/model.md states its assumptions and formulas.
"""

from hcisim.model.engine import StorageModel, simulate
from hcisim.model.fluid import FlowNetwork, max_min_fair

__all__ = ["FlowNetwork", "StorageModel", "max_min_fair", "simulate"]
