"""The scenario vocabulary: typed, immutable, validated description of a cluster run."""

from hcisim.scenario.claims import ClaimSpec
from hcisim.scenario.cluster import Brick, Disk, Host, Network, Nic, Volume, VolumeOptions
from hcisim.scenario.compute import Compute
from hcisim.scenario.faults import SILENT_FAULTS, Fault, Operation
from hcisim.scenario.load import (
    ScenarioError,
    dump_scenario,
    json_schema,
    load_scenario,
    parse_scenario,
    save_scenario,
    with_overrides,
)
from hcisim.scenario.scenario import Detection, ModelParams, Scenario
from hcisim.scenario.workload import IoProfile, Phase, Vm, VmDisk

__all__ = [
    "SILENT_FAULTS", "Brick", "ClaimSpec", "Compute", "Detection", "Disk", "Fault", "Host",
    "IoProfile", "ModelParams", "Network", "Nic", "Operation", "Phase", "Scenario",
    "ScenarioError", "Vm", "VmDisk", "Volume", "VolumeOptions", "dump_scenario", "json_schema",
    "load_scenario", "parse_scenario", "save_scenario", "with_overrides",
]
