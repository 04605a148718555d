"""The fault schedule and planned operations, by the same names in model and lab."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, model_validator

from hcisim.scenario.base import Strict

FaultKind = Literal[
    "node_power_loss",
    "nic_loss",
    "brick_crash",
    "node_hang",
    "partition",
    "link_slowdown",
    "disk_failure",
]
# Faults the peers cannot see at once (no TCP RST): I/O stalls until ping-timeout fires.
SILENT_FAULTS: frozenset[str] = frozenset({"node_power_loss", "nic_loss", "node_hang", "partition"})
HOST_FAULTS: frozenset[str] = frozenset(SILENT_FAULTS | {"link_slowdown"})


class Fault(Strict):
    """One fault: ``kind`` hits ``target`` (a host) at ``at_s`` for ``duration_s``.

    ``duration_s`` None means it is never repaired within the run. ``volume`` names the brick
    for ``brick_crash`` (None: every brick of the host); ``disk`` the disk for
    ``disk_failure``; ``network`` the cut network for ``nic_loss``/``partition``/
    ``link_slowdown``; ``peers`` restricts a partition to those hosts.
    """

    at_s: NonNegativeFloat
    kind: FaultKind
    target: str
    duration_s: PositiveFloat | None = None
    network: Literal["storage", "management", "all"] = "storage"
    volume: str | None = None
    disk: str | None = None
    peers: tuple[str, ...] | None = None
    rate_mbit: PositiveFloat | None = Field(None, description="link_slowdown: new link rate")
    heal_after_repair: bool = Field(
        True,
        description="the operator runs `gluster volume heal` right after the repair (as the "
        "lab does); False: heal waits for the self-heal daemon (after a hang: the crawl)",
    )

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Fault:
        if self.kind == "link_slowdown" and self.rate_mbit is None:
            raise ValueError("rate_mbit: required for link_slowdown")
        if self.kind != "link_slowdown" and self.rate_mbit is not None:
            raise ValueError("rate_mbit: only for link_slowdown")
        if self.volume is not None and self.kind != "brick_crash":
            raise ValueError("volume: only for brick_crash")
        if self.disk is not None and self.kind != "disk_failure":
            raise ValueError("disk: only for disk_failure")
        if self.peers is not None and self.kind != "partition":
            raise ValueError("peers: only for partition")
        if self.kind == "nic_loss" and self.network == "all":
            raise ValueError("network: nic_loss cuts one network (storage or management)")
        return self

    @property
    def end_s(self) -> float | None:
        return None if self.duration_s is None else self.at_s + self.duration_s

    @property
    def silent(self) -> bool:
        return self.kind in SILENT_FAULTS


OperationKind = Literal["maintenance", "activate", "migrate"]


class Operation(Strict):
    """A planned action: host maintenance / activate, or migrate ``vm`` to ``host``."""

    at_s: NonNegativeFloat
    kind: OperationKind
    host: str | None = None
    vm: str | None = None

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Operation:
        if self.kind in ("maintenance", "activate") and (self.host is None or self.vm):
            raise ValueError(f"{self.kind}: needs host (and no vm)")
        if self.kind == "migrate" and self.vm is None:
            raise ValueError("migrate: needs vm (host optional: the scheduler picks)")
        return self
