"""How a scenario is shrunk to fit this machine, stated as two factors and applied openly.

A lab cannot hold terabytes or drive 10 GbE from two cores, so it runs a scaled copy of the
scenario: sizes (brick disks, volumes, VM disks) times ``size``, I/O demand (IOPS or MB/s of
every profile; with ``lab: {impose: true}`` the NIC and disk speeds the lab imposes) times
``io``. :func:`as_built` gives that copy as a Scenario, so the model can
be compared with the lab on exactly what the lab ran.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hcisim.scenario import IoProfile, Scenario, with_overrides

MAX_IMAGE_BYTES = 4 * 2**30  # sparse, so this is an upper bound of what a brick can hold
MIN_VM_DISK_BYTES = 16 * 2**20
MAX_VM_DISK_BYTES = 256 * 2**20
IO_BUDGET_MB_S = 40.0  # all VMs together; beyond this two shared cores measure themselves
IO_BUDGET_IOPS = 2000.0


@dataclass(frozen=True)
class LabScale:
    size: float = 1.0
    io: float = 1.0

    @classmethod
    def fit(cls, sc: Scenario, size: float | None = None, io: float | None = None) -> LabScale:
        """Factors that make ``sc`` fit: given ones are kept, missing ones computed."""
        if size is None:
            biggest = max(d.capacity_gb for h in sc.hosts for d in h.disks) * 1e9
            size = min(1.0, MAX_IMAGE_BYTES / biggest)
        if io is None:
            mb_s = iops = 0.0
            for vm in sc.vms:
                for d in vm.disks:
                    p = sc.io_profile(d.io)
                    if p is not None:
                        mb_s += p.demand_mb_s
                        iops += p.demand_iops
            peak = max((ph.load for ph in sc.phases), default=1.0) or 1.0
            io = min(1.0, IO_BUDGET_MB_S / max(mb_s * peak, 1e-9),
                     IO_BUDGET_IOPS / max(iops * peak, 1e-9))
        return cls(size=size, io=io)

    def image_bytes(self, sc: Scenario, host: str, disk: str) -> int:
        cap = sc.host(host).disk(disk).capacity_gb * 1e9 * self.size
        return int(min(cap, MAX_IMAGE_BYTES))

    def vm_disk_bytes(self, size_gb: float) -> int:
        b = size_gb * 1e9 * self.size
        b = min(max(b, MIN_VM_DISK_BYTES), MAX_VM_DISK_BYTES)
        return int(b // (1 << 20)) * (1 << 20)

    def profile(self, p: IoProfile) -> IoProfile:
        if p.iops is not None:
            return p.model_copy(update={"iops": p.iops * self.io})
        assert p.mb_s is not None
        return p.model_copy(update={"mb_s": p.mb_s * self.io})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def as_built(sc: Scenario, scale: LabScale) -> Scenario:
    """``sc`` as the lab really runs it: sizes and demands scaled, and with ``lab: {impose:
    true}`` the NICs' and brick disks' speeds too (the lab imposed them times ``io``);
    everything else equal."""
    if scale.size == 1.0 and scale.io == 1.0:
        return sc
    over: dict[str, Any] = {}
    for i, h in enumerate(sc.hosts):
        for j, d in enumerate(h.disks):
            over[f"hosts[{i}].disks[{j}].capacity_gb"] = \
                scale.image_bytes(sc, h.name, d.name) / 1e9
            if sc.lab.impose:  # the lab imposed these times io (hcisim.lab.netns.impose)
                over[f"hosts[{i}].disks[{j}].bandwidth_mb_s"] = d.bandwidth_mb_s * scale.io
                over[f"hosts[{i}].disks[{j}].iops"] = d.iops * scale.io
        if sc.lab.impose:
            for j, n in enumerate(h.nics):
                over[f"hosts[{i}].nics[{j}].gbps"] = n.gbps * scale.io
    for i, v in enumerate(sc.volumes):
        over[f"volumes[{i}].size_gb"] = max(v.size_gb * scale.size, 1e-3)
    for name, p in sc.io_profiles.items():
        sp = scale.profile(p)
        over[f"io_profiles.{name}"] = sp.model_dump(mode="json")
    for i, vm in enumerate(sc.vms):
        for j, vd in enumerate(vm.disks):
            over[f"vms[{i}].disks[{j}].size_gb"] = scale.vm_disk_bytes(vd.size_gb) / 1e9
            if isinstance(vd.io, IoProfile):
                over[f"vms[{i}].disks[{j}].io"] = scale.profile(vd.io).model_dump(mode="json")
    return with_overrides(sc, over)
