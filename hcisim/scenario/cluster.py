"""Hosts, networks and Gluster volumes of a hyperconverged cluster."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from hcisim.scenario.base import Strict

NetworkRole = Literal["management", "storage", "migration"]
VolumeType = Literal["replica3", "arbiter"]


class Disk(Strict):
    """A brick disk (or RAID set / LV) of a host."""

    name: str = "brick0"
    capacity_gb: PositiveFloat = 4000.0
    bandwidth_mb_s: PositiveFloat = Field(1000.0, description="sequential bandwidth, MB/s")
    iops: PositiveFloat = Field(100_000.0, description="random IOPS at 4 KiB")
    latency_ms: float = Field(0.1, ge=0, description="service time of one small I/O, ms")


class Nic(Strict):
    """A host NIC (or bond) and the networks it carries."""

    name: str
    gbps: PositiveFloat
    networks: tuple[NetworkRole, ...] = Field(min_length=1)


class Host(Strict):
    # a short name or an FQDN (oVirt engines and inventories name hosts by FQDN)
    name: str = Field(max_length=253,
                      pattern=r"^[a-z][a-z0-9-]{0,62}(\.[a-z0-9][a-z0-9-]{0,62})*$")
    cores: PositiveInt = 32
    ram_gib: PositiveFloat = 256.0
    disks: tuple[Disk, ...] = Field(
        default=(Disk(),), description="brick disks; none ([]): a compute-only host (no "
        "bricks, not in the Gluster pool; its VMs write every copy over its own NIC)")
    nics: tuple[Nic, ...] = Field(min_length=1)
    power_management: bool = Field(
        True, description="the engine can fence this host (IPMI etc.)"
    )

    @model_validator(mode="after")
    def _unique_parts(self) -> Host:
        for what, names in (("disks", [d.name for d in self.disks]),
                            ("nics", [n.name for n in self.nics])):
            dup = {n for n in names if names.count(n) > 1}
            if dup:
                raise ValueError(f"{what}: duplicate name {sorted(dup)[0]!r}")
        return self

    @property
    def compute_only(self) -> bool:
        """No brick disks: the host runs VMs and mounts the volumes, nothing more."""
        return not self.disks

    def disk(self, name: str | None) -> Disk:
        if name is None:
            if not self.disks:
                raise KeyError("(no disks)")
            return self.disks[0]
        for d in self.disks:
            if d.name == name:
                return d
        raise KeyError(name)

    def nic_for(self, role: NetworkRole) -> Nic | None:
        for n in self.nics:
            if role in n.networks:
                return n
        return None

    def storage_gbps(self) -> float:
        nic = self.nic_for("storage")
        assert nic is not None  # guaranteed by Scenario validation
        return nic.gbps


class Network(Strict):
    role: NetworkRole
    rtt_ms: float = Field(0.1, ge=0, description="round-trip time between two hosts, ms")
    mtu: PositiveInt = 9000


# The virt group's keepalive on the bricks' side of every connection
# (/var/lib/glusterd/groups/virt; glusterfs 10.3 extras/group-virt.example:
# server.keepalive-time, -interval, -count; its server.tcp-user-timeout is
# VolumeOptions.tcp_user_timeout_s): the model times the bricks' resets of idle connections
# with them (hcisim.model.keepalive), acceptance demands them of a real volume
# (hcisim.accept.virt). Here, in the vocabulary, because both may import it.
VIRT_SERVER_KEEPALIVE_TIME_S = 10.0
VIRT_SERVER_KEEPALIVE_INTERVAL_S = 2.0
VIRT_SERVER_KEEPALIVE_COUNT = 5


class VolumeOptions(Strict):
    """Gluster options that change behaviour; defaults are the virt group's values."""

    ping_timeout_s: PositiveFloat = Field(20.0, description="network.ping-timeout")
    tcp_user_timeout_s: float = Field(20.0, ge=0, description="server.tcp-user-timeout")
    shard: bool = Field(True, description="features.shard (virt group: on); off: each VM "
                        "disk is one file, healed as a whole image")
    shard_block_size_mib: PositiveInt = Field(64, description="features.shard-block-size")
    shd_max_threads: PositiveInt = Field(8, description="cluster.shd-max-threads")
    heal_timeout_s: PositiveFloat = Field(600.0, description="cluster.heal-timeout (crawl)")
    quorum_type: Literal["auto", "fixed", "none"] = "auto"
    quorum_count: PositiveInt | None = Field(None, description="with quorum_type fixed")
    server_quorum_type: Literal["server", "none"] = "server"
    server_quorum_ratio_pct: float = Field(51.0, gt=0, le=100)
    data_self_heal_algorithm: Literal["full", "diff"] = "full"
    choose_local: bool = False
    eager_lock: bool = True

    @model_validator(mode="after")
    def _fixed_needs_count(self) -> VolumeOptions:
        if self.quorum_type == "fixed" and self.quorum_count is None:
            raise ValueError("quorum_count: required when quorum_type is fixed")
        return self


class Brick(Strict):
    host: str
    disk: str | None = Field(None, description="disk name on the host; first disk if unset")


class Volume(Strict):
    """A replica set of three bricks, one per host. For ``arbiter``, the third is the arbiter."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
    type: VolumeType
    bricks: tuple[Brick, ...]
    size_gb: PositiveFloat = Field(1000.0, description="logical size provisioned for VM disks")
    files: PositiveInt = Field(
        100_000, description="expected file count (shards included), sizes the arbiter brick"
    )
    options: VolumeOptions = VolumeOptions()

    @model_validator(mode="after")
    def _three_bricks(self) -> Volume:
        if len(self.bricks) != 3:
            raise ValueError(
                f"bricks: a {self.type} volume needs exactly 3 bricks, got {len(self.bricks)}"
            )
        hosts = [b.host for b in self.bricks]
        if len(set(hosts)) != 3:
            raise ValueError("bricks: each brick must be on a different host")
        return self

    @property
    def data_bricks(self) -> tuple[Brick, ...]:
        return self.bricks[:2] if self.type == "arbiter" else self.bricks

    def is_arbiter(self, host: str) -> bool:
        return self.type == "arbiter" and self.bricks[2].host == host

    def brick_on(self, host: str) -> Brick | None:
        for b in self.bricks:
            if b.host == host:
                return b
        return None
