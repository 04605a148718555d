"""The failure table: which component fails how often, and how long its repair takes.

A table is a mapping of named processes. Each process is an alternating renewal process per
unit it applies to (every host, every brick, every brick disk): up for an exponential time
with the process's annual rate, then down for a repair time drawn from its distribution, and
so on. Planned maintenance is a rolling window per host at a fixed interval. The shipped
default (``hcisim/builtin/failure-table.yaml``) cites where its numbers come from; a user
file overrides it process by process (``rate_per_year: 0`` turns one off).
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, NonNegativeFloat, PositiveFloat, ValidationError, model_validator

from hcisim.scenario.base import Strict
from hcisim.scenario.load import format_validation_error, yaml_mapping

HOURS = 3600.0
YEAR_S = 365.25 * 86400.0

Unit = Literal["host", "brick", "disk"]
FaultKindUsed = Literal["node_power_loss", "node_hang", "nic_loss", "brick_crash", "disk_failure"]
# which unit each fault kind applies to: a fault hits one host, one brick, or one brick disk
UNIT_OF: dict[str, Unit] = {
    "node_power_loss": "host", "node_hang": "host", "nic_loss": "host",
    "brick_crash": "brick", "disk_failure": "disk",
}


class FailureTableError(Exception):
    """A failure table that cannot be used; ``problems`` are ``path: message`` lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid failure table\n" + "\n".join(
            f"  {p}" for p in problems))


class Repair(Strict):
    """Time to repair: ``exponential`` (mean), ``lognormal`` (mean and log-sd ``sigma``) or
    ``fixed``. Lognormal fits field repair times (most short, a long tail of waiting for a
    part); exponential is what the Markov oracle assumes."""

    dist: Literal["exponential", "lognormal", "fixed"] = "exponential"
    mean_h: PositiveFloat
    sigma: NonNegativeFloat = Field(1.0, description="lognormal: sd of log(time)")

    def draw(self, rng: np.random.Generator) -> float:
        """One repair time in seconds."""
        mean_s = self.mean_h * HOURS
        if self.dist == "exponential":
            return float(rng.exponential(mean_s))
        if self.dist == "lognormal":
            mu = math.log(mean_s) - self.sigma**2 / 2.0  # so that the mean is mean_h
            return float(rng.lognormal(mu, self.sigma))
        return mean_s


class FailureProcess(Strict):
    """One kind of unplanned failure of one kind of component."""

    fault: FaultKindUsed
    rate_per_year: NonNegativeFloat = Field(description="failures per unit per year (AFR)")
    repair: Repair
    network: Literal["storage", "management"] = Field(
        "storage", description="nic_loss: the network whose NIC fails")
    heal_after_repair: bool = Field(
        True, description="the operator starts a heal right after the repair")
    source: str = ""

    @property
    def unit(self) -> Unit:
        return UNIT_OF[self.fault]


class Maintenance(Strict):
    """Planned, rolling maintenance: every ``interval_days`` each host in turn is put into
    maintenance (its VMs migrate away, its bricks stop cleanly) for ``window_h``, the next
    host ``gap_h`` after the previous one returns (time to heal). A window that would overlap
    an unplanned failure anywhere in the cluster is postponed by ``gap_h`` (operators do not
    patch a degraded cluster)."""

    interval_days: PositiveFloat = 90.0
    window_h: PositiveFloat = 1.0
    gap_h: PositiveFloat = 24.0
    enabled: bool = True
    source: str = ""


class FailureTable(Strict):
    processes: dict[str, FailureProcess] = Field(default_factory=dict)
    maintenance: Maintenance = Maintenance()

    @model_validator(mode="after")
    def _names(self) -> FailureTable:
        for name in self.processes:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"processes.{name}: use letters, digits, - and _")
        return self

    def with_repair_scaled(self, factor: float) -> FailureTable:
        """The same table with every mean repair time times ``factor`` (what-if: faster
        repair)."""
        procs = {n: p.model_copy(update={"repair": p.repair.model_copy(
            update={"mean_h": p.repair.mean_h * factor})}) for n, p in self.processes.items()}
        return self.model_copy(update={"processes": procs})


def default_table_path() -> Path:
    return Path(str(resources.files("hcisim") / "builtin" / "failure-table.yaml"))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise FailureTableError(str(path), [f"cannot read file: {exc.strerror}"]) from None
    data, why = yaml_mapping(text)
    if data is None:
        raise FailureTableError(str(path), [why or "not a mapping"])
    return data


def table_from_dict(data: dict[str, Any], source: str = "<failure table>") -> FailureTable:
    try:
        return FailureTable.model_validate(data)
    except ValidationError as exc:
        raise FailureTableError(source, format_validation_error(exc)) from None


def load_failure_table(path: Path | None = None) -> FailureTable:
    """The shipped default, with ``path`` (if given) merged over it key by key: a user file
    needs to name only what it changes (``processes: {disk: {rate_per_year: 0.03}}``)."""
    data = _read(default_table_path())
    source = str(default_table_path())
    if path is not None:
        data = _merge(data, _read(path))
        source = str(path)
    return table_from_dict(data, source)
