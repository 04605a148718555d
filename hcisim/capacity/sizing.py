"""Judge every candidate for every volume type, and name the smallest one that passes.

Each check is "measured <= limit" in its own unit, so its headroom is ``1 - measured/limit``
(negative: over the limit) and the plots can put all checks on one axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from hcisim.capacity.layout import GB, file_count, replica_sets, usable_capacity
from hcisim.capacity.placement import HostRoom, Placement, failover, host_room, place
from hcisim.capacity.spec import HOSTS, Candidate, CapacitySpec, InventoryVm
from hcisim.capacity.storage import client_write_bound, heal_estimate, utilisations
from hcisim.scenario.cluster import VolumeType

CHECKS = ("capacity", "n1_placement", "n1_memory", "n1_cpu", "throughput", "iops", "heal",
          "rebuild")


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    measured: float
    limit: float
    unit: str
    reason: str

    @property
    def headroom(self) -> float | None:
        """Share of the limit still free (negative: over it); None for a count of 0 allowed."""
        if self.limit == 0 or math.isinf(self.measured):
            return None if self.limit == 0 else -math.inf
        return 1.0 - self.measured / self.limit

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["headroom"] = self.headroom
        return d


@dataclass
class Assessment:
    candidate: str
    rank: int
    volume_type: VolumeType
    checks: list[Check]
    numbers: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def failures(self) -> list[str]:
        return [f"{c.name}: {c.reason}" for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "rank": self.rank, "volume_type": self.volume_type,
                "passed": self.passed, "checks": [c.to_dict() for c in self.checks],
                "numbers": self.numbers}


def _host(i: int) -> str:
    return f"host{i + 1}"


def compute_checks(spec: CapacitySpec, vms: Sequence[InventoryVm], cand: Candidate,
                   room: HostRoom, placement: Placement) -> tuple[list[Check], dict[str, Any]]:
    """The n+1 checks: they depend on the hosts, not on the volume type."""
    th = spec.thresholds
    fails = [failover(vms, placement, room, f) for f in range(HOSTS)]
    if placement.unplaced:
        names = ", ".join(placement.unplaced[:5])
        fit = Check("n1_placement", False, len(placement.unplaced), 0, "VMs",
                    f"{names} do not fit even with all three hosts up")
    else:
        bad = [f for f in fails if not f.fits]
        worst = max(bad, key=lambda f: len(f.unplaced), default=None)
        if worst is None:
            fit = Check("n1_placement", True, 0, 0, "VMs",
                        "the HA VMs of any one host fit on the other two")
        else:
            others = "+".join(_host(h) for h in range(HOSTS) if h != worst.failed)
            fit = Check("n1_placement", False, len(worst.unplaced), 0, "VMs",
                        f"with {_host(worst.failed)} down, HA VMs "
                        f"{', '.join(worst.unplaced[:5])} do not fit on {others}")
    survivors = HOSTS - 1
    ram_f = max(fails, key=lambda f: f.ram_used_gib)
    ram_limit = survivors * room.ram_gib * (1 - th.memory_free_pct / 100)
    mem = Check("n1_memory", ram_f.ram_used_gib <= ram_limit, ram_f.ram_used_gib, ram_limit,
                "GiB", f"with {_host(ram_f.failed)} down the survivors need "
                f"{ram_f.ram_used_gib:.0f} GiB of {survivors * room.ram_gib:.0f} GiB for VMs "
                f"(keeping {th.memory_free_pct:g}% free)")
    cpu_f = max(fails, key=lambda f: f.vcpus_used)
    cpu_limit = survivors * room.vcpus * (1 - th.cpu_free_pct / 100)
    cpu = Check("n1_cpu", cpu_f.vcpus_used <= cpu_limit, cpu_f.vcpus_used, cpu_limit, "vCPUs",
                f"with {_host(cpu_f.failed)} down the survivors run {cpu_f.vcpus_used:.0f} "
                f"vCPUs on {survivors * room.vcpus:.0f} slots")
    numbers = {
        "vm_ram_gib_per_host": room.ram_gib,
        "vcpu_slots_per_host": room.vcpus,
        "placement": {vm: _host(h) for vm, h in sorted(placement.host_of.items())},
        "failover": [{"failed": _host(f.failed), "ha_vms": list(f.ha_vms), "fits": f.fits,
                      "decided_by": "exact search" if f.exact else "first-fit decreasing",
                      "targets": {vm: _host(h) for vm, h in sorted(f.target_of.items())},
                      "memory_free_pct": 100 * (1 - f.ram_used_gib / max(
                          1e-9, survivors * room.ram_gib)),
                      "cpu_free_pct": 100 * (1 - f.vcpus_used / max(
                          1e-9, survivors * room.vcpus))}
                     for f in fails],
    }
    return [fit, mem, cpu], numbers


def storage_checks(spec: CapacitySpec, vms: Sequence[InventoryVm], cand: Candidate,
                   placement: Placement, vt: VolumeType,
                   files: float) -> tuple[list[Check], dict[str, Any]]:
    th = spec.thresholds
    sets = replica_sets(vt, spec.arbiter_layout)
    use = usable_capacity(spec, cand.raw_gb, vt, files)
    provisioned = sum(vm.disk_gb for vm in vms)
    cap_limit = use.usable_gb * (1 - th.capacity_reserve_pct / 100)
    if not use.fits:
        cap = Check("capacity", False, provisioned, cap_limit, "GB",
                    f"the arbiter brick ({use.arbiter_brick_gb:.1f} GB for {files:.0f} files) "
                    "does not fit on a host's disks")
    else:
        cap = Check("capacity", provisioned <= cap_limit, provisioned, cap_limit, "GB",
                    f"{provisioned:.0f} GB of VM disks on {use.usable_gb:.0f} GB usable "
                    f"(keeping {th.capacity_reserve_pct:g}% free)")
    utils = utilisations(cand, vms, placement, sets, spec.peak_load)
    limit = th.storage_utilization_pct
    worst_bw = max(utils, key=lambda u: max(u.nic, u.disk_bw))
    bw_kind = "storage NIC" if worst_bw.nic >= worst_bw.disk_bw else "disk bandwidth"
    bw = 100 * max(worst_bw.nic, worst_bw.disk_bw)
    thr = Check("throughput", bw <= limit, bw, limit, "%",
                f"{_host(worst_bw.host)} {bw_kind} at {bw:.0f}% ({worst_bw.state})")
    worst_io = max(utils, key=lambda u: u.disk_iops)
    io = 100 * worst_io.disk_iops
    iops = Check("iops", io <= limit, io, limit, "%",
                 f"{_host(worst_io.host)} disk IOPS at {io:.0f}% ({worst_io.state})")
    he = heal_estimate(cand, spec, vms, placement, sets)
    heal = Check("heal", he.heal_s <= th.heal_s, he.heal_s, th.heal_s, "s",
                 f"{_host(he.host)} back after {spec.heal.outage_s:g} s: "
                 f"{he.dirty_bytes / GB:.1f} GB to heal at {he.rate_mb_s:.0f} MB/s "
                 f"(limited by {he.limited_by})")
    rebuild = Check("rebuild", he.rebuild_s <= th.rebuild_s, he.rebuild_s, th.rebuild_s, "s",
                    f"replacing {_host(he.rebuild_host)}'s disks copies "
                    f"{he.rebuild_bytes / GB:.0f} GB at {he.rebuild_rate_mb_s:.0f} MB/s")
    numbers = {
        "raw_gb": use.raw_gb, "usable_gb": use.usable_gb, "provisioned_gb": provisioned,
        "data_brick_gb": use.data_brick_gb, "arbiter_brick_gb": use.arbiter_brick_gb,
        "files": files,
        "client_write_bound_mb_s": {_host(h): client_write_bound(cand, sets, h)
                                    for h in range(HOSTS)},
        "utilisation": [{"state": u.state, "host": _host(u.host), "nic_pct": 100 * u.nic,
                         "disk_bw_pct": 100 * u.disk_bw, "disk_iops_pct": 100 * u.disk_iops}
                        for u in utils],
        "heal": {"outage_s": spec.heal.outage_s, "worst_host": _host(he.host),
                 "bytes": he.dirty_bytes, "rate_mb_s": he.rate_mb_s,
                 "limited_by": he.limited_by, "heal_s": he.heal_s,
                 "reduced_redundancy_s": he.window_s, "rebuild_bytes": he.rebuild_bytes,
                 "rebuild_s": he.rebuild_s,
                 "per_host": [{**r, "host": _host(int(r["host"]))} for r in he.per_host]},
    }
    return [cap, thr, iops, heal, rebuild], numbers


def assess(spec: CapacitySpec, vms: Sequence[InventoryVm]) -> list[Assessment]:
    """Every (candidate, volume type), candidates from smallest to largest."""
    files = file_count(spec, vms)
    out = []
    for rank, cand in enumerate(spec.ranked()):
        room = host_room(spec, cand)
        placement = place(vms, room)
        n1, n1_numbers = compute_checks(spec, vms, cand, room, placement)
        for vt in spec.volume_types:
            st, st_numbers = storage_checks(spec, vms, cand, placement, vt, files)
            checks = sorted([*n1, *st], key=lambda c: CHECKS.index(c.name))
            out.append(Assessment(cand.name, rank, vt, checks, {**st_numbers, **n1_numbers}))
    return out


def smallest(assessments: Sequence[Assessment], vt: VolumeType) -> dict[str, Any]:
    """The first candidate (by rank) passing every check, and why each one before it fails."""
    rows = sorted((a for a in assessments if a.volume_type == vt), key=lambda a: a.rank)
    rejected: list[dict[str, Any]] = []
    for a in rows:
        if a.passed:
            return {"volume_type": vt, "candidate": a.candidate, "rejected": rejected}
        rejected.append({"candidate": a.candidate, "reasons": a.failures()})
    return {"volume_type": vt, "candidate": None, "rejected": rejected}


def inventory_summary(spec: CapacitySpec, vms: Sequence[InventoryVm]) -> dict[str, Any]:
    return {
        "vms": len(vms), "ha_vms": sum(vm.ha for vm in vms),
        "vcpus": sum(vm.vcpus for vm in vms), "ram_gib": sum(vm.ram_gib for vm in vms),
        "disk_gb": sum(vm.disk_gb for vm in vms), "files": file_count(spec, vms),
        "demand_mb_s": sum(vm.io.demand_mb_s for vm in vms if vm.io) * spec.peak_load,
        "demand_iops": sum(vm.io.demand_iops for vm in vms if vm.io) * spec.peak_load,
    }


def size(spec: CapacitySpec, vms: Sequence[InventoryVm]) -> dict[str, Any]:
    """The whole answer as plain data (what ``capacity.json`` holds)."""
    results = assess(spec, vms)
    per_type = [smallest(results, vt) for vt in spec.volume_types]
    ranks = {c.name: i for i, c in enumerate(spec.ranked())}
    passing = [s for s in per_type if s["candidate"] is not None]
    best = min(passing, key=lambda s: ranks[s["candidate"]], default=None)
    return {
        "spec": spec.model_dump(mode="json"),
        "inventory": inventory_summary(spec, vms),
        "assessments": [a.to_dict() for a in results],
        "smallest": per_type,
        "answer": None if best is None else {"candidate": best["candidate"],
                                              "volume_type": best["volume_type"]},
    }
