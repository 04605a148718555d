"""Lab-sized scenarios for calibration and validation: one case is one scenario to run.

Every case is a three-host cluster the netns lab can build on a small machine (2 GB brick
disks, 10 Gb/s NICs, light rate-paced writers that catch up after a stall, as fio does)
with one fault on host2; what varies is the fault, network.ping-timeout, the shard size,
the heal threads, the volume type and the load.
The writers on host1 and host3 see host2's loss through their clients' ping timers; host2
itself is the fault's target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hcisim.scenario import Scenario

SURVIVORS = ("vm1", "vm3")  # VMs on the hosts the fault does not hit
TARGET = "host2"


@dataclass(frozen=True)
class Case:
    """One scenario run of an experiment or a validation case; ``inputs`` are what the
    case varies (and what a fit or a table needs to know about it)."""

    experiment: str
    label: str
    scenario: Scenario
    inputs: dict[str, float | str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reading:
    """One measured value of one trial (before any prediction)."""

    quantity: str
    unit: str
    value: float
    subject: str = ""
    extra: tuple[tuple[str, float | str], ...] = ()


_DISK = {"name": "brick0", "capacity_gb": 2, "bandwidth_mb_s": 200, "iops": 20000,
         "latency_ms": 0.2}
# every lab host's CPU cores as the cases declare them (the netns lab's three hosts share
# the machine's, two here): what heal_core_mb_s is fitted per
LAB_HOST_CORES = 2
# ... and the cores they really have, all together: the machine's (heal_cpu_pool_cores:
# the three daemons' heal shares them, calibration part 5b)
LAB_MACHINE_CORES = 2
_HOST = {"cores": LAB_HOST_CORES, "ram_gib": 8, "disks": [_DISK],
         "nics": [{"name": "mgmt0", "gbps": 10, "networks": ["management"]},
                  {"name": "sto0", "gbps": 10, "networks": ["storage", "migration"]}]}


def lab_scenario(name: str, faults: list[dict[str, Any]], duration_s: float, *,
                 ping_timeout_s: float = 5.0, shard_mib: int = 4, shd_threads: int = 8,
                 volume_type: str = "replica3", iops: float = 60.0, block_kib: int = 8,
                 profile: str | None = None, description: str = "",
                 phases: list[dict[str, Any]] | None = None,
                 disk_mb_s: float | None = None, vm_disk_gb: float = 0.064,
                 compute_only: bool = False, shard: bool = True) -> Scenario:
    """A lab-sized cluster (like scenarios/lab-power-loss.yaml, one volume ``data``) with
    ``faults``; the clients' ping chains have a known phase (the lab mounts just before
    t = 0: the anchor is the profile's ``detection_anchor_s``). ``vm_disk_gb``: each VM's
    disk (what a heal case's backlog scales with: the writers dirty all of it).
    ``compute_only``: a fourth host, host4, with no brick disks (not in the Gluster pool) and
    a VM vm4 of its own, whose client sends every copy over host4's NIC. ``shard`` False:
    ``features.shard off`` (each VM disk one file, healed whole). The hosts share the
    machine's cores for heal (``heal_cpu_pool_cores``), as the netns lab's do."""
    model: dict[str, Any] = {"detection": {"phase": "known"},
                             "heal_cpu_pool_cores": LAB_MACHINE_CORES}
    if profile is not None:
        model["profile"] = profile
    data: dict[str, Any] = {
        "name": name,
        "description": description or f"calibration case {name}",
        "seed": 7,
        "duration_s": duration_s,
        "hosts": [{**_HOST, "name": h,
                   "disks": [{**_DISK, "bandwidth_mb_s": disk_mb_s}]}
                  if disk_mb_s is not None else {**_HOST, "name": h}
                  for h in ("host1", "host2", "host3")]
                 + ([{**_HOST, "name": "host4", "disks": []}] if compute_only else []),
        "networks": [{"role": "management", "rtt_ms": 0.05},
                     {"role": "storage", "rtt_ms": 0.05}],
        "volumes": [{"name": "data", "type": volume_type, "size_gb": 1, "files": 200,
                     "bricks": [{"host": "host1"}, {"host": "host2"}, {"host": "host3"}],
                     "options": {"ping_timeout_s": ping_timeout_s,
                                 "tcp_user_timeout_s": ping_timeout_s,
                                 "shard": shard, "shard_block_size_mib": shard_mib,
                                 "shd_max_threads": shd_threads}}],
        "io_profiles": {"writer": {"read_pct": 30, "block_kib": block_kib, "iops": iops,
                                   "queue_depth": 4, "catch_up": True}},
        "vms": [{"name": vm, "host": host,
                 "disks": [{"volume": "data", "size_gb": vm_disk_gb, "io": "writer"}]}
                for vm, host in (("vm1", "host1"), ("vm2", "host2"), ("vm3", "host3"))
                + ((("vm4", "host4"),) if compute_only else ())],
        "faults": faults,
        "model": model,
    }
    if phases:
        data["phases"] = phases
    return Scenario.model_validate(data)


def fault(kind: str, at_s: float, duration_s: float, **extra: Any) -> dict[str, Any]:
    """A fault on host2 (brick faults: on volume ``data``)."""
    f: dict[str, Any] = {"at_s": round(at_s, 3), "kind": kind, "target": TARGET,
                         "duration_s": round(duration_s, 3), **extra}
    if kind in ("brick_hang", "brick_crash"):
        f.setdefault("volume", "data")
    return f


def offset_s(trial: int, period_s: float, spread: int = 10) -> float:
    """Where trial ``trial`` puts its fault within one ping period (spread over ``spread``
    trials), so that n trials sample the phase of the ping chain."""
    return (trial % spread) * period_s / spread
