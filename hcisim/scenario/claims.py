"""Claims a scenario makes, as data with explicit tolerances (a steady-state hypothesis).

The functions that judge them live in :mod:`hcisim.claims`; this is only their spelling.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from hcisim.scenario.base import Strict


class _Claim(Strict):
    name: str | None = Field(None, description="label in reports; default: the kind")
    vms: tuple[str, ...] | None = Field(None, description="VMs it is about; None: all")
    expect: Literal["pass", "fail"] = Field(
        "pass",
        description="fail: the scenario documents a known weakness; the run is as expected "
        "only if this claim fails (a strict expected failure)",
    )


class ZeroDowntime(_Claim):
    """VMs on hosts that did not fail keep running: the stall the guest sees (I/O stalled or
    in error, or paused) <= max_stall_s, and paused <= max_paused_s."""

    kind: Literal["zero_downtime"]
    max_stall_s: NonNegativeFloat = 0.0
    max_paused_s: NonNegativeFloat = 0.0


class VmRestartWithin(_Claim):
    kind: Literal["vm_restart_within"]
    within_s: PositiveFloat


class Replicas(_Claim):
    """Every write acknowledged to a client is on at least ``min_copies`` data bricks."""

    kind: Literal["replicas"]
    min_copies: PositiveInt = 2


class NoSplitBrain(_Claim):
    kind: Literal["no_split_brain"]


class HealWithin(_Claim):
    kind: Literal["heal_within"]
    within_s: PositiveFloat
    volume: str | None = None


class ThroughputAtLeast(_Claim):
    kind: Literal["throughput_at_least"]
    mb_s: NonNegativeFloat
    window_s: tuple[float, float] | None = None
    per: Literal["vm", "group"] = Field(
        "vm", description="vm: each VM gets mb_s; group: the VMs together get mb_s"
    )


class LatencyP99AtMost(_Claim):
    kind: Literal["latency_p99_at_most"]
    ms: PositiveFloat
    window_s: tuple[float, float] | None = None
    per: Literal["vm", "group"] = Field(
        "vm", description="vm: each VM's p99 <= ms; group: p99 of all their I/Os together"
    )


class MigrationWithin(_Claim):
    """Every live migration of the VMs completes (runs on the destination) within within_s."""

    kind: Literal["migration_completes_within"]
    within_s: PositiveFloat


class MigrationDowntimeAtMost(_Claim):
    """Every completed live migration of the VMs stops the guest for at most ``ms``."""

    kind: Literal["migration_downtime_at_most"]
    ms: PositiveFloat


class PausedAtMost(_Claim):
    """No VM is paused (storage I/O error, user) longer than ``max_s``: its longest pause, or
    with ``measure: total`` all its pauses together. Migration switch-overs do not count."""

    kind: Literal["paused_at_most"]
    max_s: NonNegativeFloat = 0.0
    measure: Literal["longest", "total"] = "longest"


class HaReservation(_Claim):
    kind: Literal["ha_reservation"]


class UsableCapacityAtLeast(_Claim):
    kind: Literal["usable_capacity_at_least"]
    gb: PositiveFloat
    volume: str | None = None


ClaimSpec = Annotated[
    ZeroDowntime
    | VmRestartWithin
    | Replicas
    | NoSplitBrain
    | HealWithin
    | ThroughputAtLeast
    | LatencyP99AtMost
    | MigrationWithin
    | MigrationDowntimeAtMost
    | PausedAtMost
    | HaReservation
    | UsableCapacityAtLeast,
    Field(discriminator="kind"),
]
