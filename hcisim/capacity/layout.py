"""Where bytes live: replica sets per volume type, usable capacity and arbiter brick size.

A layout is a list of replica sets over hosts 0..2, each holding an equal share of the files
(DHT hashes names over the sets). Every later formula (capacity, write fan-out, heal) walks
this list, so replica 3 and both arbiter layouts share one set of equations.

- ``replica3``: one set, three data bricks. Usable = raw / 3 (raw = all hosts together).
- ``arbiter``, ``rotating``: three sets; set *i* has its arbiter on host *i* and data on the
  other two, so every host holds two data bricks and one arbiter brick. With ``A`` the arbiter
  brick and ``R`` a host's raw capacity, each data brick is ``(R - A) / 2`` and
  usable = 3 x (R - A) / 2 = (raw of the data bricks) / 2 = raw / 2 - the arbiters' share.
- ``arbiter``, ``dedicated``: one set, data on hosts 0 and 1, arbiter on host 2 (the oVirt HCI
  wizard's shape). Usable = raw of the two data bricks / 2 = R; the third disk holds only the
  arbiter brick.

Files (what the arbiter brick is sized by): with sharding each VM disk of ``S`` bytes is
``ceil(S / shard)`` files (the base file holds the first shard, ``.shard/`` the rest; an
unsharded volume, ``shard: false``: one file), plus
``files.per_vm`` per VM (image, .meta, .lease, directories) and ``files.fixed`` for the
storage domain. The arbiter holds ~4 KiB per file of its set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hcisim.capacity.spec import HOSTS, ArbiterLayout, CapacitySpec, InventoryVm
from hcisim.scenario import VolumeOptions
from hcisim.scenario.cluster import VolumeType

GB = 1e9
MIB = 1024**2
KIB = 1024


@dataclass(frozen=True)
class ReplicaSet:
    """One replica set: its data bricks' hosts, its arbiter's host, its share of files."""

    data: tuple[int, ...]
    arbiter: int | None
    weight: float

    def holds_data(self, host: int) -> bool:
        return host in self.data


def replica_sets(volume_type: VolumeType, arbiter_layout: ArbiterLayout) -> list[ReplicaSet]:
    hosts = tuple(range(HOSTS))
    if volume_type == "replica3":
        return [ReplicaSet(hosts, None, 1.0)]
    if arbiter_layout == "dedicated":
        return [ReplicaSet(hosts[:2], hosts[2], 1.0)]
    return [ReplicaSet(tuple(h for h in hosts if h != a), a, 1.0 / HOSTS) for a in hosts]


def disk_files(disk_gb: float, shard_mib: int) -> int:
    """Files one sharded VM disk becomes: one per shard (the base file is shard 0)."""
    return max(1, math.ceil(disk_gb * GB / (shard_mib * MIB)))


def image_files(disk_gb: float, options: VolumeOptions) -> int:
    """Files one VM disk becomes on a volume: its shards, or one (``shard: false``)."""
    return disk_files(disk_gb, options.shard_block_size_mib) if options.shard else 1


def file_count(spec: CapacitySpec, vms: Sequence[InventoryVm]) -> float:
    images = sum(image_files(vm.disk_gb, spec.volume_options) for vm in vms if vm.disk_gb > 0)
    return images + spec.files.per_vm * len(vms) + spec.files.fixed


@dataclass(frozen=True)
class Usable:
    """Capacity of one volume type on one candidate, all in GB (10^9 bytes)."""

    raw_gb: float  # all brick disks of the three hosts
    usable_gb: float
    arbiter_brick_gb: float  # per arbiter brick (0 for replica 3)
    data_brick_gb: float  # per data brick
    files: float
    fits: bool  # the arbiter brick fits beside (or instead of) the data bricks


def usable_capacity(spec: CapacitySpec, raw_host_gb: float, volume_type: VolumeType,
                    files: float) -> Usable:
    """Usable capacity for three hosts of ``raw_host_gb`` each (formulas: module docstring)."""
    raw = HOSTS * raw_host_gb
    if volume_type == "replica3":
        return Usable(raw, raw / 3, 0.0, raw_host_gb, files, True)
    sets = replica_sets(volume_type, spec.arbiter_layout)
    arbiter_gb = files / len(sets) * spec.files.arbiter_kib_per_file * KIB / GB
    if spec.arbiter_layout == "dedicated":
        data_raw = 2 * raw_host_gb
        return Usable(raw, data_raw / 2, arbiter_gb, raw_host_gb, files,
                      arbiter_gb <= raw_host_gb)
    data_brick = max(0.0, (raw_host_gb - arbiter_gb) / 2)
    data_raw = HOSTS * 2 * data_brick
    return Usable(raw, data_raw / 2, arbiter_gb, data_brick, files, arbiter_gb < raw_host_gb)
