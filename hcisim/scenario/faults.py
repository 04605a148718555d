"""The fault schedule and planned operations, by the same names in model and lab.

A fault is one class per kind (a union tagged by ``kind``, as the claims are): each class has
only the fields that apply to its kind, so ``network:`` on a power loss is refused at load.
What a kind *does* (silent or refused, which networks it cuts, whether compute notices,
whether the host's VMs die, how heal starts afterwards) is one row of :data:`FAULT_TABLE`,
read by the model, every lab backend and the claims; nobody tests ``kind ==`` for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PrivateAttr,
    TypeAdapter,
    model_validator,
)

from hcisim.scenario.base import Strict
from hcisim.scenario.cluster import NetworkRole

FaultKind = Literal[
    "node_power_loss",
    "nic_loss",
    "brick_crash",
    "brick_hang",
    "node_hang",
    "partition",
    "link_slowdown",
    "disk_failure",
]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)

# What compute (the engine's view of a host) makes of a fault; None in the table: nothing.
HostLoss = Literal["power_loss", "hang", "management_cut"]
# What a fault hits on its target host.
FaultScope = Literal["host", "nic", "brick", "disk", "link"]
# A network a fault names: one role, or storage and management together (``all``: not a
# dedicated migration NIC).
NetworkChoice = Literal["storage", "management", "migration", "all"]


def loss_kills_vms(loss: HostLoss) -> bool:
    """Whether a host's VMs stop at once. A hung host's VMs make no progress and sanlock's
    watchdog resets the host, so they count as dead; a management cut leaves them running."""
    return loss != "management_cut"


@dataclass(frozen=True)
class FaultTraits:
    """What one fault kind does, independent of where it is injected.

    ``silent``: peers get no TCP RST or EIO, so client I/O to the lost bricks stalls until
    ping-timeout (power loss, NIC loss, hangs, partitions); a crashed brick or failed disk is
    refused at once. ``cuts``: which of the target's networks stop carrying packets: ``host``
    every one (the host is gone), ``chosen`` the fault's ``network`` field, ``none``.
    ``slows``: the fault's ``network`` keeps working at ``rate_mbit``. ``host_loss``: what
    compute sees (the host stops answering); for a ``chosen`` cut only when the management
    network is among the cut ones. ``full_heal``: the brick's data is gone (disk replaced),
    so everything on it is healed, not only what was written meanwhile. Whether the self-heal
    daemon wakes when the brick returns is not a trait: it follows from its own connections
    (:mod:`hcisim.model.shd`). ``host_window``: claims treat the target host as failed
    while the fault lasts (its VMs are exempt from zero_downtime, its HA VMs restart
    elsewhere). ``glusterd_runs``: the target's glusterd keeps answering its peers (server
    quorum keeps the host).
    """

    scope: FaultScope
    silent: bool
    cuts: Literal["host", "chosen", "none"]
    slows: bool
    host_loss: HostLoss | None
    full_heal: bool
    host_window: bool
    glusterd_runs: bool

    @property
    def reaches_compute(self) -> bool:
        return self.host_loss is not None

    @property
    def kills_vms(self) -> bool:
        return self.host_loss is not None and loss_kills_vms(self.host_loss)


FAULT_TABLE: dict[FaultKind, FaultTraits] = {
    "node_power_loss": FaultTraits("host", silent=True, cuts="host", slows=False,
                                   host_loss="power_loss", full_heal=False,
                                   host_window=True, glusterd_runs=False),
    "node_hang": FaultTraits("host", silent=True, cuts="host", slows=False, host_loss="hang",
                             full_heal=False, host_window=True,
                             glusterd_runs=False),
    "nic_loss": FaultTraits("nic", silent=True, cuts="chosen", slows=False,
                            host_loss="management_cut", full_heal=False,
                            host_window=True, glusterd_runs=True),
    "partition": FaultTraits("link", silent=True, cuts="chosen", slows=False,
                             host_loss="management_cut", full_heal=False,
                             host_window=True, glusterd_runs=True),
    "link_slowdown": FaultTraits("nic", silent=False, cuts="none", slows=True, host_loss=None,
                                 full_heal=False, host_window=True,
                                 glusterd_runs=True),
    "brick_crash": FaultTraits("brick", silent=False, cuts="none", slows=False, host_loss=None,
                               full_heal=False, host_window=False,
                               glusterd_runs=True),
    "brick_hang": FaultTraits("brick", silent=True, cuts="none", slows=False, host_loss=None,
                              full_heal=False, host_window=False,
                              glusterd_runs=True),
    "disk_failure": FaultTraits("disk", silent=False, cuts="none", slows=False, host_loss=None,
                                full_heal=True, host_window=False,
                                glusterd_runs=True),
}

_ALL_ROLES: tuple[NetworkRole, ...] = ("storage", "management")


_ROLE_ORDER: tuple[NetworkRole, ...] = ("storage", "management", "migration")


def network_roles(choice: NetworkChoice) -> tuple[NetworkRole, ...]:
    """The network roles a fault's ``network`` field names (``all``: storage and management)."""
    return _ALL_ROLES if choice == "all" else (choice,)


def roles_sharing(nics: tuple[tuple[NetworkRole, ...], ...],
                  role: NetworkRole) -> tuple[NetworkRole, ...]:
    """Every network carried by the NICs (their ``networks``) that carry ``role``: what
    goes down with it when those NICs do; empty when no NIC carries ``role``."""
    carried = {r for nic in nics if role in nic for r in nic}
    return tuple(r for r in _ROLE_ORDER if r in carried)


class _Fault(Strict):
    """Fields every fault has: ``kind`` hits host ``target`` at ``at_s`` for ``duration_s``
    (None: never repaired within the run)."""

    at_s: NonNegativeFloat
    kind: FaultKind
    target: str
    duration_s: PositiveFloat | None = None
    # ``network: migration`` names a NIC, not one role: the networks that NIC (or those
    # NICs) of the target carry, set when the scenario is checked (``bind_networks``).
    _bound_networks: tuple[NetworkRole, ...] | None = PrivateAttr(default=None)

    @property
    def end_s(self) -> float | None:
        return None if self.duration_s is None else self.at_s + self.duration_s

    @property
    def traits(self) -> FaultTraits:
        return FAULT_TABLE[self.kind]

    @property
    def silent(self) -> bool:
        return self.traits.silent

    @property
    def networks(self) -> tuple[NetworkRole, ...]:
        """Network roles this fault cuts or slows on its target (``host`` cuts: all). For
        ``network: migration`` in a loaded scenario: every network on the target's NIC(s)
        carrying migration (a migration network on the management NIC takes management
        with it, so compute sees a management cut)."""
        cuts = self.traits.cuts
        if cuts == "host":
            return ("storage", "management", "migration")
        if self._bound_networks is not None:
            return self._bound_networks
        choice: NetworkChoice | None = getattr(self, "network", None)
        return network_roles(choice) if choice is not None else ()

    def bind_networks(self, nics: tuple[tuple[NetworkRole, ...], ...]) -> None:
        """Fix what ``network: migration`` cuts on the target, from its NICs' ``networks``
        (the scenario's check calls it; it refuses a host without a migration NIC). Other
        choices keep naming roles: their meaning does not depend on the NICs."""
        if getattr(self, "network", None) != "migration":
            return
        roles = roles_sharing(nics, "migration")
        if not roles:
            raise ValueError(f"host {self.target!r} has no NIC carrying the migration "
                             "network (its migrations use management: name that)")
        self._bound_networks = roles

    @property
    def host_loss(self) -> HostLoss | None:
        """What compute makes of it (None: it does not reach compute)."""
        loss = self.traits.host_loss
        if loss == "management_cut" and "management" not in self.networks:
            return None
        return loss


class _LosesWrites(_Fault):
    heal_after_repair: bool = Field(
        True,
        description="the operator runs `gluster volume heal` right after the repair (as the "
        "lab does); False: heal waits for the self-heal daemon (after a hang: the crawl)",
    )


class NodePowerLoss(_LosesWrites):
    """The host loses power: VMs, bricks, glusterd and clients stop without a word."""

    kind: Literal["node_power_loss"]


class NodeHang(_LosesWrites):
    """The whole host freezes (kernel, VMs, glusterd, bricks, clients): TCP stays open."""

    kind: Literal["node_hang"]


class NicLoss(_LosesWrites):
    """The host's NIC carrying the storage, the management or the migration network goes
    down (and every network on it with it: ``networks`` names them for ``migration``)."""

    kind: Literal["nic_loss"]
    network: Literal["storage", "management", "migration"] = "storage"


class Partition(_LosesWrites):
    """Packets between the host and ``peers`` (None: every other host) are dropped."""

    kind: Literal["partition"]
    network: NetworkChoice = "storage"
    peers: tuple[str, ...] | None = None


class LinkSlowdown(_Fault):
    """The host's link on ``network`` runs at ``rate_mbit`` (no data is missed)."""

    kind: Literal["link_slowdown"]
    network: NetworkChoice = "storage"
    rate_mbit: PositiveFloat = Field(description="the new link rate, Mbit/s")

    @property
    def heal_after_repair(self) -> bool:
        return False  # nothing missed, nothing to heal


class BrickCrash(_LosesWrites):
    """The brick process of ``volume`` (None: every brick of the host) is killed (RST)."""

    kind: Literal["brick_crash"]
    volume: str | None = None


class BrickHang(_LosesWrites):
    """The brick process of ``volume`` is stopped (SIGSTOP): its TCP connections stay open,
    so its clients stall until ping-timeout; glusterd and the host's clients keep running."""

    kind: Literal["brick_hang"]
    volume: str


class DiskFailure(_LosesWrites):
    """Disk ``disk`` (None: the host's first) fails; its bricks come back empty (full heal)."""

    kind: Literal["disk_failure"]
    disk: str | None = None


Fault = Annotated[
    NodePowerLoss | NodeHang | NicLoss | Partition | LinkSlowdown | BrickCrash | BrickHang
    | DiskFailure,
    Field(discriminator="kind"),
]
FAULT_CLASSES: dict[FaultKind, type[Fault]] = {
    "node_power_loss": NodePowerLoss, "node_hang": NodeHang, "nic_loss": NicLoss,
    "partition": Partition, "link_slowdown": LinkSlowdown, "brick_crash": BrickCrash,
    "brick_hang": BrickHang, "disk_failure": DiskFailure,
}
_FAULT_ADAPTER: TypeAdapter[Fault] = TypeAdapter(Fault)


def make_fault(**fields: Any) -> Fault:
    """One fault from its fields, ``kind`` choosing the class (validated like a scenario's)."""
    return _FAULT_ADAPTER.validate_python(fields)


OperationKind = Literal["maintenance", "activate", "migrate", "rolling_maintenance"]


class Operation(Strict):
    """A planned action: host maintenance / activate, migrate ``vm`` to ``host``, or a
    rolling maintenance of every host in turn (waiting for heal between hosts)."""

    at_s: NonNegativeFloat
    kind: OperationKind
    host: str | None = None
    vm: str | None = None
    hold_s: PositiveFloat | None = Field(
        None, description="rolling_maintenance: how long each host stays in maintenance "
        "(the upgrade and reboot; default 60 s)")

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Operation:
        if self.kind == "rolling_maintenance" and (self.host or self.vm):
            raise ValueError("rolling_maintenance: takes every host in turn (no host, no vm)")
        if self.hold_s is not None and self.kind != "rolling_maintenance":
            raise ValueError(f"{self.kind}: hold_s is for rolling_maintenance only")
        if self.kind in ("maintenance", "activate") and (self.host is None or self.vm):
            raise ValueError(f"{self.kind}: needs host (and no vm)")
        if self.kind == "migrate" and self.vm is None:
            raise ValueError("migrate: needs vm (host optional: the scheduler picks)")
        return self
