"""oVirt compute settings: scheduling policy, fencing/HA timeouts, migration, hosted engine.

Every default is the oVirt/vdsm default named in ../shared/reference/semantics.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from hcisim.scenario.base import Strict

SchedulingPolicy = Literal["evenly_distributed", "vm_evenly_distributed", "power_saving", "none"]
MigrationPolicy = Literal["minimal_downtime", "suspend_workload_if_needed", "post_copy"]


class AffinityGroup(Strict):
    name: str
    vms: tuple[str, ...] = Field(min_length=2)
    positive: bool = Field(False, description="True: together on one host; False: apart")
    enforcing: bool = True


class Fencing(Strict):
    vds_connection_timeout_s: PositiveFloat = 20.0
    vds_timeout_s: PositiveFloat = 180.0
    vds_refresh_rate_s: PositiveFloat = Field(
        3.0, description="VdsRefreshRate: how often the engine polls a host (the lab's engine)"
    )
    soft_fencing_s: NonNegativeFloat = Field(30.0, description="ssh restart of vdsm attempt")
    reset_vds_timeout_s: PositiveFloat = Field(60.0, description="TimeoutToResetVdsInSeconds")
    per_vm_delay_s: NonNegativeFloat = 0.5
    spm_delay_s: NonNegativeFloat = 20.0
    lease_io_timeout_s: int = Field(
        10, ge=1, le=60, description="sanlock io_timeout of the VM leases (lockspace -o): "
        "holders killed 8 x it after the last renewal, lease free 8 x it + 60 s after "
        "(hcisim.placement.ha_rules.lease_timeline; model and lab)"
    )
    kill_paused_s: PositiveFloat = Field(80.0, description="vdsm vm_kill_paused_time")
    disable_fence_at_startup_s: NonNegativeFloat = Field(
        300.0, description="engine DisableFenceAtStartupInSec: no fencing this long after start"
    )
    skip_fencing_if_gluster_bricks_up: bool = Field(
        False, description="cluster fencing policy (off in oVirt, required by RHHI): no fence "
        "while a brick of the host is ONLINE"
    )
    skip_fencing_if_gluster_quorum_not_met: bool = Field(
        False, description="cluster fencing policy (off in oVirt, required by RHHI): no fence "
        "when taking the host's ONLINE bricks down would lose a replica set's quorum"
    )


class Migration(Strict):
    policy: MigrationPolicy = "minimal_downtime"
    max_bandwidth_mb_s: PositiveFloat = Field(52.0 * 1.048576, description="vdsm 52 MiB/s")
    max_outgoing: PositiveInt = 2
    max_incoming: PositiveInt = 2
    downtime_ms: PositiveFloat = Field(500.0, description="final allowed downtime")
    downtime_steps: PositiveInt = 5
    suspend_downtime_ms: PositiveFloat = Field(5000.0, description="suspend_workload_if_needed")
    progress_timeout_s: PositiveFloat = Field(240.0, description="vdsm migration_progress_timeout")
    max_rounds: PositiveInt = 30
    monitor_interval_s: PositiveFloat = Field(
        10.0, description="vdsm migration_monitor_interval: progress sampled this often")
    downtime_delay_per_gib_s: NonNegativeFloat = Field(
        75.0, description="vdsm migration_downtime_delay: downtime steps over this per GiB")
    max_time_per_gib_s: NonNegativeFloat = Field(
        64.0, description="vdsm migration_max_time_per_gib_mem (0: no limit)")
    setup_ms: NonNegativeFloat = Field(
        20.0, description="qemu setup before the first page: bitmaps, first dirty sync")
    sync_ms_per_gib: NonNegativeFloat = Field(
        2.0, description="qemu migration_bitmap_sync per GiB of guest RAM, once per round")
    switchover_ms: NonNegativeFloat = Field(
        15.0, description="qemu's fixed part of the downtime: vm_stop (vCPUs paused, disks "
        "drained and flushed) and device state")
    send_buffer_mb: NonNegativeFloat = Field(
        4.194304, description="the stream's TCP send buffer (Linux net.ipv4.tcp_wmem max, "
        "4 MiB): full while the link is slower than the cap; its bytes cross the link after "
        "the VM stops, before the destination runs")


class HostedEngine(Strict):
    volume: str = "engine"
    base_score: int = 3400
    host_data_wait_s: PositiveFloat = Field(60.0, description="data the agents need first")
    agent_loop_s: PositiveFloat = 10.0
    takeover_margin: int = 800
    boot_s: PositiveFloat = Field(300.0, description="engine VM boot until the engine answers")


class HaRestart(Strict):
    """How the engine restarts HA VMs (AutoStartVmsRunner; ovirt-engine config defaults)."""

    priority_block_max_s: NonNegativeFloat = Field(
        600.0, description="MaxTimeAutoStartBlockedOnPriority: lower priority waits at most"
    )
    retry_short_s: PositiveFloat = Field(30.0, description="RetryToRunAutoStartVmShortInterval")
    retry_short_tries: NonNegativeInt = Field(
        10, description="NumOfTriesToRunFailedAutoStartVmInShortIntervals"
    )
    retry_long_s: PositiveFloat = Field(1800.0, description="RetryToRunAutoStartVmLongInterval")


class Compute(Strict):
    scheduling_policy: SchedulingPolicy = "evenly_distributed"
    affinity_groups: tuple[AffinityGroup, ...] = ()
    fencing: Fencing = Fencing()
    migration: Migration = Migration()
    hosted_engine: HostedEngine = HostedEngine()
    ha_restart: HaRestart = HaRestart()
    memory_overcommit_pct: PositiveFloat = 100.0
    cpu_overcommit: PositiveFloat = Field(4.0, description="vCPUs per core the filter allows")
    high_vm_count: PositiveInt = Field(10, description="vm_evenly_distributed: HighVmCount")
    migration_threshold: PositiveInt = Field(
        5, description="vm_evenly_distributed: MigrationThreshold"
    )
    spm_vm_grace: NonNegativeInt = Field(5, description="vm_evenly_distributed: SpmVmGrace")
