"""Elaboration: turn a Scenario into the static parts of the model (build, then run).

Resources (all in one :class:`~hcisim.model.fluid.FlowNetwork`):

- ``HOST/nic/NIC/tx`` and ``.../rx``: a NIC is full duplex, each direction carries
  ``gbps * 125`` MB/s;
- ``HOST/disk/DISK``: the disk's *time*, capacity 1.0. A flow of ``b`` MB/s in blocks of
  ``k`` bytes takes ``b / bandwidth + (b * 1e6 / k) / iops`` of it, so bandwidth-bound and
  IOPS-bound work share one budget (a 4 KiB random flow is IOPS bound, a 1 MiB one is
  bandwidth bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from hcisim.scenario import Disk, IoProfile, Scenario, Volume
from hcisim.scenario.cluster import NetworkRole

MIB = 1024 * 1024
BrickRole = Literal["data", "arbiter"]


def nic_mb_s(gbps: float) -> float:
    """One direction of a NIC in MB/s (10^6 B/s) from its line rate in Gb/s."""
    return gbps * 1000.0 / 8.0


def disk_cost(disk: Disk, block_bytes: float) -> float:
    """Share of the disk's time one MB/s of I/O in ``block_bytes`` blocks takes."""
    return 1.0 / disk.bandwidth_mb_s + (1e6 / block_bytes) / disk.iops


def disk_iops_cost(disk: Disk, block_bytes: float) -> float:
    """Share of disk time per MB/s of client I/O for metadata-only ops (arbiter): IOPS only."""
    return (1e6 / block_bytes) / disk.iops


@dataclass(frozen=True)
class BrickModel:
    volume: str
    host: str
    index: int
    role: BrickRole
    disk: Disk
    disk_resource: str

    @cached_property
    def key(self) -> str:
        return f"{self.volume}/{self.host}"


@dataclass(frozen=True)
class VolumeModel:
    spec: Volume
    bricks: tuple[BrickModel, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    # cached: looked up for every VM disk at every change
    @cached_property
    def data_bricks(self) -> tuple[BrickModel, ...]:
        return tuple(b for b in self.bricks if b.role == "data")

    @cached_property
    def arbiter(self) -> BrickModel | None:
        return next((b for b in self.bricks if b.role == "arbiter"), None)

    @cached_property
    def shard_bytes(self) -> int:
        return self.spec.options.shard_block_size_mib * MIB

    @cached_property
    def _by_host(self) -> dict[str, BrickModel]:
        return {b.host: b for b in self.bricks}

    @cached_property
    def hosts(self) -> frozenset[str]:
        """Hosts holding a brick of the volume (a compute-only host holds none)."""
        return frozenset(self._by_host)

    def brick(self, host: str) -> BrickModel:
        return self._by_host[host]


@dataclass(frozen=True)
class VmDiskModel:
    """One VM disk: a file on a volume, split in shards, with its I/O profile."""

    vm: str
    volume: str
    index: int
    size_bytes: float
    shards: int  # N = ceil(size / shard size)
    profile: IoProfile | None
    hot_shards: int  # shards its writes land on: ceil(size x write_hot_pct / shard size)

    @cached_property
    def key(self) -> str:
        return f"{self.vm}#{self.index}"

    @cached_property
    def flow(self) -> str:
        """Its flow in the FlowNetwork."""
        return f"io:{self.key}"

    @cached_property
    def read_frac(self) -> float:
        return 0.0 if self.profile is None else self.profile.read_pct / 100.0

    @cached_property
    def write_frac(self) -> float:
        return 0.0 if self.profile is None else 1.0 - self.profile.read_pct / 100.0

    @cached_property
    def queue_depth(self) -> int | None:
        """Its profile's queue depth (None: no profile)."""
        return None if self.profile is None else self.profile.queue_depth

    @cached_property
    def block_bytes(self) -> float:
        return 64 * 1024.0 if self.profile is None else self.profile.block_kib * 1024.0

    @cached_property
    def demand_mb_s(self) -> float:
        return 0.0 if self.profile is None else self.profile.demand_mb_s


@dataclass(frozen=True)
class Cluster:
    """Everything about the scenario that does not change during a run."""

    scenario: Scenario
    hosts: tuple[str, ...]
    volumes: dict[str, VolumeModel]
    disks: tuple[VmDiskModel, ...]
    capacities: dict[str, float]  # resource -> capacity
    nics: dict[tuple[str, str], str] = field(default_factory=dict)  # (host, role) -> NIC

    def nic_name(self, host: str, role: NetworkRole) -> str:
        return self.nics[(host, role)]

    def tx(self, host: str, role: NetworkRole = "storage") -> str:
        return f"{host}/nic/{self.nics[(host, role)]}/tx"

    def rx(self, host: str, role: NetworkRole = "storage") -> str:
        return f"{host}/nic/{self.nics[(host, role)]}/rx"

    def migration_role(self, host: str) -> NetworkRole:
        """The network live migrations of ``host`` use: its migration network, else the
        management network (oVirt's default migration network is ovirtmgmt)."""
        return "migration" if (host, "migration") in self.nics else "management"

    @cached_property
    def _disks_by_vm(self) -> dict[str, tuple[VmDiskModel, ...]]:
        by_vm: dict[str, list[VmDiskModel]] = {}
        for d in self.disks:
            by_vm.setdefault(d.vm, []).append(d)
        return {vm: tuple(ds) for vm, ds in by_vm.items()}

    def disks_of_vm(self, vm: str) -> tuple[VmDiskModel, ...]:
        return self._disks_by_vm.get(vm, ())


def elaborate(sc: Scenario) -> Cluster:
    capacities: dict[str, float] = {}
    for h in sc.hosts:
        for nic in h.nics:
            capacities[f"{h.name}/nic/{nic.name}/tx"] = nic_mb_s(nic.gbps)
            capacities[f"{h.name}/nic/{nic.name}/rx"] = nic_mb_s(nic.gbps)
        for hd in h.disks:
            capacities[f"{h.name}/disk/{hd.name}"] = 1.0
    volumes: dict[str, VolumeModel] = {}
    for v in sc.volumes:
        bricks = []
        for i, b in enumerate(v.bricks):
            disk = sc.host(b.host).disk(b.disk)
            role: BrickRole = "arbiter" if v.type == "arbiter" and i == 2 else "data"
            bricks.append(BrickModel(v.name, b.host, i, role, disk,
                                     f"{b.host}/disk/{disk.name}"))
        volumes[v.name] = VolumeModel(v, tuple(bricks))
    disks = []
    for vm in sc.vms:
        for i, d in enumerate(vm.disks):
            opts = sc.volume(d.volume).options
            size = d.size_gb * 1e9
            # unsharded (features.shard off): the image is one file, one heal entry
            shard = opts.shard_block_size_mib * MIB if opts.shard else size
            prof = sc.io_profile(d.io)
            shards = max(1, math.ceil(size / shard))
            hot = size * (prof.write_hot_pct if prof is not None else 100.0) / 100.0
            disks.append(VmDiskModel(vm.name, d.volume, i, size, shards, prof,
                                     min(shards, max(1, math.ceil(hot / shard)))))
    nics: dict[tuple[str, str], str] = {}
    for h in sc.hosts:
        for nic in h.nics:  # the first NIC carrying a network carries it (Host.nic_for)
            for net in nic.networks:
                nics.setdefault((h.name, net), nic.name)
    return Cluster(sc, sc.host_names, volumes, tuple(disks), capacities, nics)
