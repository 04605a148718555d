"""Small specs and inventories built in code, for hand-computable capacity cases."""

from __future__ import annotations

from typing import Any

from hcisim.capacity import CapacitySpec, InventoryVm
from hcisim.scenario import IoProfile

NICS = [
    {"name": "mgmt0", "gbps": 1, "networks": ["management"]},
    {"name": "stor0", "gbps": 10, "networks": ["storage", "migration"]},
]


def candidate(name: str = "c1", cores: int = 32, ram_gib: float = 256,
              disk_gb: float = 4000, disk_mb_s: float = 2000, iops: float = 100_000,
              gbps: float = 10, disks: int = 1) -> dict[str, Any]:
    return {
        "name": name, "cores": cores, "ram_gib": ram_gib,
        "disks": [{"name": f"brick{i}", "capacity_gb": disk_gb, "bandwidth_mb_s": disk_mb_s,
                   "iops": iops} for i in range(disks)],
        "nics": [NICS[0], {**NICS[1], "gbps": gbps}],
    }


def spec(candidates: list[dict[str, Any]] | None = None, **extra: Any) -> CapacitySpec:
    data: dict[str, Any] = {"inventory": "inventory.csv",
                            "candidates": candidates or [candidate()],
                            "host_overhead": {"ram_gib": 0, "cores": 0},
                            "overcommit": {"memory_pct": 100, "cpu": 1}}
    data.update(extra)
    return CapacitySpec.model_validate(data)


def vm(name: str, ram: float = 8, vcpus: int = 2, disk_gb: float = 100, ha: bool = True,
       host: int | None = None, io: IoProfile | None = None) -> InventoryVm:
    return InventoryVm(name=name, vcpus=vcpus, ram_gib=ram, disk_gb=disk_gb, ha=ha, host=host,
                       io=io)


SEQ_WRITE = IoProfile(read_pct=0, block_kib=1024, mb_s=100, random=False)
MIXED = IoProfile(read_pct=90, block_kib=1024, mb_s=100, random=False)
