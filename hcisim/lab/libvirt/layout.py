"""The plan of a libvirt lab: names, networks, addresses, MACs, disks and sizes of its nodes.

Pure data computed from the scenario and the machine, before anything is created, so the
XML and seed generation can be tested without libvirt. Every libvirt object of a lab is named
``hcisim-<lab>-...``; ``hcisim lab down`` finds a killed run's leftovers by that prefix.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from hcisim.scenario import Scenario

PREFIX = "hcisim-"
DEFAULT_WORKDIR = Path("/var/lib/hcisim/labs")
# Lab subnets: management 10.231.<slot>.0/24, storage 10.232.<slot>.0/24, one slot per lab.
MGMT_BASE = "10.231"
STORAGE_BASE = "10.232"
FIRST_NODE_OCTET = 11
MIN_RAM_MIB, MAX_RAM_MIB = 1024, 2048
DEFAULT_BRICK_GIB = 4.0


@dataclass(frozen=True)
class Machine:
    """What the hypervisor host offers; node sizes are scaled to it."""

    cores: int
    mem_available_mib: int

    @classmethod
    def here(cls) -> Machine:
        avail_kib = 0
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail_kib = int(line.split()[1])
        return cls(cores=os.cpu_count() or 1, mem_available_mib=avail_kib // 1024)


@dataclass(frozen=True)
class NetworkPlan:
    role: str  # mgmt | storage (also the NIC name inside the node)
    name: str
    bridge: str
    subnet: ipaddress.IPv4Network
    mtu: int
    host_address: str | None  # the hypervisor's address on it (mgmt only: to reach sshd)

    @property
    def prefix(self) -> int:
        return self.subnet.prefixlen

    def node_address(self, index: int) -> str:
        return str(self.subnet.network_address + FIRST_NODE_OCTET + index)


@dataclass(frozen=True)
class NicPlan:
    role: str
    network: str
    mac: str
    address: str
    prefix: int
    mtu: int


@dataclass(frozen=True)
class BrickDiskPlan:
    """A scenario disk of a host, as a sparse raw file attached to its node."""

    disk: str
    path: Path
    target: str
    size_gib: float

    @property
    def serial(self) -> str:
        return f"brick-{self.disk}"[:20]  # virtio-blk serials hold 20 bytes


@dataclass(frozen=True)
class NodePlan:
    host: str
    index: int
    domain: str
    domain_type: str
    vcpus: int
    ram_mib: int
    directory: Path
    nics: tuple[NicPlan, ...]
    bricks: tuple[BrickDiskPlan, ...]

    @property
    def overlay(self) -> Path:
        return self.directory / "root.qcow2"

    @property
    def seed(self) -> Path:
        return self.directory / "seed.iso"

    @property
    def console_log(self) -> Path:
        return self.directory / "console.log"

    def nic(self, role: str) -> NicPlan:
        return next(n for n in self.nics if n.role == role)

    @property
    def mgmt_address(self) -> str:
        return self.nic("mgmt").address

    @property
    def storage_address(self) -> str:
        return self.nic("storage").address

    def brick(self, disk: str | None) -> BrickDiskPlan:
        return self.bricks[0] if disk is None else next(b for b in self.bricks if b.disk == disk)


@dataclass(frozen=True)
class LabPlan:
    lab: str
    slot: int
    directory: Path
    networks: tuple[NetworkPlan, ...]
    nodes: tuple[NodePlan, ...]
    brick_scale: float = field(default=1.0)  # brick size here / scenario capacity

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.lab}-"

    def network(self, role: str) -> NetworkPlan:
        return next(n for n in self.networks if n.role == role)

    def node(self, host: str) -> NodePlan:
        for n in self.nodes:
            if n.host == host:
                return n
        raise KeyError(f"lab {self.lab} has no node {host!r}")


def node_size(machine: Machine, nodes: int, scenario_cores: int,
              scenario_ram_gib: float) -> tuple[int, int]:
    """(vCPUs, RAM MiB) of one node: a fair share of the machine, never above the scenario's.

    Half of the available memory is shared by the nodes (the rest stays for the host, qemu's
    own overhead and whatever else runs), clamped to 1-2 GiB: enough for glusterd, bricks, a
    FUSE client and fio; more only slows the emulated boot.
    """
    vcpus = max(1, min(scenario_cores, machine.cores // nodes))
    share = machine.mem_available_mib // 2 // nodes
    ram = max(MIN_RAM_MIB, min(MAX_RAM_MIB, share, int(scenario_ram_gib * 1024)))
    return vcpus, ram


def mac_of(slot: int, node: int, nic: int) -> str:
    """Locally administered (52:54:00, qemu's range) and unique per lab slot, node and NIC."""
    return f"52:54:00:{slot:02x}:{node:02x}:{nic:02x}"


def plan_lab(sc: Scenario, lab: str, slot: int, domain_type: str, machine: Machine,
             workdir: Path = DEFAULT_WORKDIR, brick_gib: float = DEFAULT_BRICK_GIB) -> LabPlan:
    """The plan of lab ``lab`` for ``sc`` in subnet slot ``slot`` (0-255).

    The largest scenario disk becomes a ``brick_gib`` sparse file, the others in proportion.
    """
    if not 0 <= slot <= 255:
        raise ValueError(f"slot {slot}: must be 0-255")
    if not lab.isalnum() or len(lab) > 8:
        raise ValueError(f"lab name {lab!r}: 1-8 letters or digits (bridge names hold 15)")
    directory = workdir / lab
    mtus = {n.role: n.mtu for n in sc.networks}
    networks = (
        NetworkPlan("mgmt", f"{PREFIX}{lab}-mgmt", f"hc-{lab}-m",
                    ipaddress.IPv4Network(f"{MGMT_BASE}.{slot}.0/24"),
                    mtus.get("management", 1500), f"{MGMT_BASE}.{slot}.1"),
        NetworkPlan("storage", f"{PREFIX}{lab}-storage", f"hc-{lab}-s",
                    ipaddress.IPv4Network(f"{STORAGE_BASE}.{slot}.0/24"),
                    mtus.get("storage", 1500), None),
    )
    largest = max(d.capacity_gb for h in sc.hosts for d in h.disks)
    nodes = []
    for i, host in enumerate(sc.hosts):
        vcpus, ram = node_size(machine, len(sc.hosts), host.cores, host.ram_gib)
        ndir = directory / host.name
        nics = tuple(NicPlan(net.role, net.name, mac_of(slot, i, j), net.node_address(i),
                             net.prefix, net.mtu) for j, net in enumerate(networks))
        bricks = tuple(
            BrickDiskPlan(d.name, ndir / f"{d.name}.raw", f"vd{chr(ord('b') + k)}",
                          round(brick_gib * d.capacity_gb / largest, 2))
            for k, d in enumerate(host.disks))
        nodes.append(NodePlan(host.name, i, f"{PREFIX}{lab}-{host.name}", domain_type, vcpus,
                              ram, ndir, nics, bricks))
    return LabPlan(lab, slot, directory, networks, tuple(nodes),
                   brick_scale=brick_gib / (largest * 1e9 / 2**30))
