"""The sizing question as data: candidate hosts, a VM inventory, I/O profiles and thresholds.

A spec is a YAML file validated as strictly as a scenario (unknown keys are errors, every
error names its path and line); the inventory is a CSV next to it, validated row by row.
Hosts, disks, NICs, I/O profiles and Gluster volume options are the scenario's own models, so
a candidate reads exactly like a scenario host.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from hcisim.scenario import Host, IoProfile, VolumeOptions
from hcisim.scenario.base import Strict
from hcisim.scenario.cluster import VolumeType
from hcisim.scenario.compute import Compute
from hcisim.scenario.load import validation_problems, yaml_mapping
from hcisim.scenario.profile import DEFAULT_PROFILE, ProfileError, load_profile
from hcisim.scenario.scenario import ModelParams

ArbiterLayout = Literal["rotating", "dedicated"]
HOSTS = 3  # the cluster this project is about: three hyperconverged servers


class SpecError(Exception):
    """A spec or inventory that cannot be used; ``problems`` are ``path: message`` lines."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source}: invalid capacity spec\n{lines}")


class Candidate(Host):
    """One host configuration; the cluster is three identical servers built from it."""

    cost: NonNegativeFloat | None = Field(
        None, description="ranks candidates (smallest first); without costs: the file's order"
    )

    @model_validator(mode="after")
    def _has_storage_and_management(self) -> Self:
        for role in ("storage", "management"):
            if self.nic_for(role) is None:
                raise ValueError(f"nics: no NIC carries the {role} network")
        return self

    @property
    def raw_gb(self) -> float:
        """Brick capacity of one host: every disk holds bricks."""
        return sum(d.capacity_gb for d in self.disks)

    @property
    def disk_mb_s(self) -> float:
        return sum(d.bandwidth_mb_s for d in self.disks)

    @property
    def disk_iops(self) -> float:
        return sum(d.iops for d in self.disks)

    @property
    def storage_mb_s(self) -> float:
        """Storage NIC rate per direction (full duplex), MB/s."""
        return self.storage_gbps() * 1000.0 / 8.0


class HostOverhead(Strict):
    """What a host keeps for itself: vdsm, glusterd/glusterfsd, the kernel."""

    ram_gib: NonNegativeFloat = 16.0
    cores: NonNegativeFloat = 2.0


class Overcommit(Strict):
    memory_pct: PositiveFloat = Compute().memory_overcommit_pct
    cpu: PositiveFloat = Field(Compute().cpu_overcommit, description="vCPUs per physical core")


class FileCount(Strict):
    """How files are counted: shards of each VM disk, plus a fixed number per VM."""

    per_vm: NonNegativeFloat = Field(
        4, description="image base file, .meta, .lease and directory entries per VM"
    )
    fixed: NonNegativeFloat = Field(200, description="storage-domain metadata, OVF store, ISOs")
    arbiter_kib_per_file: PositiveFloat = Field(4.0, description="glusterdocs: ~4 KiB per file")


# the heal costs a spec takes from its calibration profile (spec key -> profile parameter)
HEAL_FROM_PROFILE = {"shd_thread_mb_s": "heal_thread_mb_s", "entry_s": "heal_entry_s",
                     "core_mb_s": "heal_core_mb_s", "concurrency": "heal_concurrency"}


class Heal(Strict):
    """The outage whose heal is sized, and what bounds the self-heal daemons. The daemons'
    costs are the model's (:mod:`hcisim.model.healrate`), from a calibration profile unless
    the spec sets them, so that the planner's heal rate is the model's on the same hosts."""

    outage_s: PositiveFloat = Field(600.0, description="how long the node stays away")
    profile: str = Field(
        DEFAULT_PROFILE, description="calibration profile the heal costs below come from "
        "(as a scenario's model.profile: a shipped name or a profile file)")
    shd_thread_mb_s: PositiveFloat = Field(
        ModelParams().heal_thread_mb_s,
        description="one shd thread copying one shard (the profile's heal_thread_mb_s)",
    )
    entry_s: NonNegativeFloat = Field(
        ModelParams().heal_entry_s,
        description="fixed cost per healed shard and thread (the profile's heal_entry_s)")
    core_mb_s: NonNegativeFloat = Field(
        ModelParams().heal_core_mb_s,
        description="most MB/s heal gets per CPU core of the healing daemons' hosts; 0: no "
        "CPU cap (the profile's heal_core_mb_s)")
    concurrency: NonNegativeFloat = Field(
        ModelParams().heal_concurrency,
        description="how much the CPU rate per core falls with each shard in flight per core "
        "beyond one (the profile's heal_concurrency)")
    share: float = Field(
        ModelParams().heal_share, gt=0, le=1,
        description="largest share of the target's NIC/disk heal may take",
    )
    write_footprint_pct: float = Field(
        100.0, gt=0, le=100,
        description="share of each disk that random writes land on (100: spread everywhere)",
    )
    fill_pct: float = Field(
        100.0, gt=0, le=100, description="share of provisioned disk holding data (rebuild)"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_profile(cls, data: Any) -> Any:
        """Every heal cost the spec leaves out, from its profile (a bad profile is an error
        at ``heal.profile``)."""
        if not isinstance(data, dict):
            return data
        ref = data.get("profile", DEFAULT_PROFILE)
        if not isinstance(ref, str):
            return data  # the field's own validation reports the type
        try:
            params = load_profile(ref).parameters
        except ProfileError as exc:
            raise ValueError(f"profile: {exc}") from None
        return {**{key: float(getattr(params, name)) for key, name in HEAL_FROM_PROFILE.items()},
                **data}


class Thresholds(Strict):
    """Targets a candidate must meet; each failing one is named in the answer."""

    capacity_reserve_pct: float = Field(20.0, ge=0, lt=100, description="keep this much free")
    memory_free_pct: float = Field(5.0, ge=0, lt=100, description="free RAM left with n-1")
    cpu_free_pct: float = Field(0.0, ge=0, lt=100, description="free vCPU slots left with n-1")
    storage_utilization_pct: float = Field(
        70.0, gt=0, le=100, description="highest NIC/disk utilisation allowed, any host"
    )
    heal_s: PositiveFloat = Field(3600.0, description="longest heal after the outage")
    rebuild_s: PositiveFloat = Field(86400.0, description="longest rebuild of a replaced disk")


class CapacitySpec(Strict):
    name: str = Field("capacity", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    inventory: str = Field(description="VM inventory CSV, relative to the spec file")
    candidates: tuple[Candidate, ...] = Field(min_length=1)
    volume_types: tuple[VolumeType, ...] = Field(("replica3", "arbiter"), min_length=1)
    arbiter_layout: ArbiterLayout = Field(
        "rotating",
        description="rotating: three replica sets, each host arbiter of one; "
        "dedicated: one replica set, the third host is the arbiter",
    )
    volume_options: VolumeOptions = VolumeOptions()
    io_profiles: dict[str, IoProfile] = Field(default_factory=dict)
    peak_load: PositiveFloat = Field(1.0, description="multiplies every VM's I/O demand")
    host_overhead: HostOverhead = HostOverhead()
    overcommit: Overcommit = Overcommit()
    files: FileCount = FileCount()
    heal: Heal = Heal()
    thresholds: Thresholds = Thresholds()

    @model_validator(mode="after")
    def _ranked(self) -> Self:
        names = [c.name for c in self.candidates]
        for i, n in enumerate(names):
            if names.index(n) != i:
                raise ValueError(f"candidates[{i}].name: duplicate name {n!r}")
        costs = [c.cost is None for c in self.candidates]
        if any(costs) and not all(costs):
            i = costs.index(True)
            raise ValueError(f"candidates[{i}].cost: give every candidate a cost, or none")
        return self

    def ranked(self) -> list[Candidate]:
        """Candidates from smallest to largest: by cost, else in the order written."""
        order = list(self.candidates)
        if order[0].cost is not None:
            order.sort(key=lambda c: c.cost or 0.0)
        return order


class InventoryVm(Strict):
    """One row of the inventory CSV."""

    name: str = Field(min_length=1)
    vcpus: PositiveInt
    ram_gib: PositiveFloat
    disk_gb: NonNegativeFloat
    ha: bool = False
    host: int | None = Field(None, ge=1, le=HOSTS, description="1-3: where it runs today")
    io: IoProfile | None = None


INLINE_IO = ("read_pct", "block_kib", "iops", "mb_s", "queue_depth", "random")


def parse_spec(text: str, source: str = "<spec>") -> CapacitySpec:
    data, why = yaml_mapping(text)
    if data is None:
        raise SpecError(source, [(why or "").replace(
            "not a mapping of keys", "a spec is a mapping (inventory, candidates, ...)")])
    try:
        return CapacitySpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, [str(p) for p in validation_problems(exc, text, CapacitySpec)]
                        ) from None


def read_inventory(path: Path, profiles: dict[str, IoProfile]) -> tuple[InventoryVm, ...]:
    """Rows of the CSV; ``io`` names a profile of the spec, or the row gives inline fields."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(str(path), [f"cannot read file: {exc.strerror}"]) from None
    reader = csv.DictReader(text.splitlines())
    columns = reader.fieldnames or []
    known = {"name", "vcpus", "ram_gib", "disk_gb", "ha", "host", "io", *INLINE_IO}
    problems = [f"header: unknown column {c!r}" for c in columns if c not in known]
    problems += [f"header: missing column {c!r}" for c in ("name", "vcpus", "ram_gib", "disk_gb")
                 if c not in columns]
    if problems:
        raise SpecError(str(path), problems)
    vms: list[InventoryVm] = []
    for line, row in enumerate(reader, start=2):
        cells = {k: v.strip() for k, v in row.items() if k is not None and v and v.strip()}
        inline = {k: cells.pop(k) for k in INLINE_IO if k in cells}
        data: dict[str, object] = dict(cells)
        ref = cells.get("io")
        if ref is not None and inline:
            problems.append(f"line {line}: io: give a profile name or inline fields, not both")
            continue
        if ref is not None:
            if ref not in profiles:
                problems.append(f"line {line}: io: unknown io profile {ref!r}")
                continue
            data["io"] = profiles[ref]
        elif inline:
            data["io"] = inline
        try:
            vms.append(InventoryVm.model_validate(data))
        except ValidationError as exc:
            problems += [f"line {line}: {p}" for p in validation_problems(exc, None, InventoryVm)]
    names = [v.name for v in vms]
    problems += [f"name: duplicate VM {n!r}" for n in sorted({n for n in names
                                                               if names.count(n) > 1})]
    if not vms and not problems:
        problems.append("no VMs in the inventory")
    if problems:
        raise SpecError(str(path), problems)
    return tuple(vms)


def load_spec(path: str | Path) -> tuple[CapacitySpec, tuple[InventoryVm, ...]]:
    """The spec at ``path`` and its inventory (found relative to the spec file)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError(str(p), [f"cannot read file: {exc.strerror}"]) from None
    spec = parse_spec(text, str(p))
    return spec, read_inventory(p.parent / spec.inventory, spec.io_profiles)
