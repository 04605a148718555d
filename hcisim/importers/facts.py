"""What an importer learned about a real cluster, and how it becomes a scenario file.

Every importer (deployment inventory, Gluster CLI XML, oVirt engine) fills the same
:class:`ClusterFacts`; one function turns them into scenario YAML, validates it with the
scenario loader and writes it. Whatever a source does not say is left at the scenario's
default and listed as an assumption in the file's header, so a reader sees what was guessed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hcisim.scenario import Scenario, parse_scenario

HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}(\.[a-z0-9][a-z0-9-]{0,62})*$")
SCENARIO_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
# Gluster sizes (shard-block-size etc.) and LVM sizes are powers of two.
_BINARY_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20,
                 "g": 2**30, "gb": 2**30, "t": 2**40, "tb": 2**40, "p": 2**50, "pb": 2**50}


class ImportSourceError(Exception):
    """A source the importer cannot use; the message names the source and what is missing."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


@dataclass
class DiskFacts:
    name: str
    capacity_gb: float | None = None


@dataclass
class HostFacts:
    name: str
    disks: list[DiskFacts] = field(default_factory=list)
    cores: int | None = None
    ram_gib: float | None = None
    power_management: bool | None = None

    def disk(self, name: str, capacity_gb: float | None = None) -> DiskFacts:
        """The disk called ``name``, added if new (a larger capacity seen later wins)."""
        for d in self.disks:
            if d.name == name:
                if capacity_gb is not None:
                    d.capacity_gb = max(d.capacity_gb or 0.0, capacity_gb)
                return d
        d = DiskFacts(name, capacity_gb)
        self.disks.append(d)
        return d


@dataclass
class BrickFacts:
    host: str
    disk: str | None = None


@dataclass
class VolumeFacts:
    name: str
    type: str  # replica3 | arbiter; for arbiter the third brick is the arbiter
    bricks: list[BrickFacts]
    size_gb: float | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClusterFacts:
    name: str
    source: str
    hosts: list[HostFacts] = field(default_factory=list)
    volumes: list[VolumeFacts] = field(default_factory=list)
    vms: list[dict[str, Any]] = field(default_factory=list)
    hosted_engine_volume: str | None = None
    assumptions: list[str] = field(default_factory=list)

    def host(self, name: str) -> HostFacts:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)


def binary_bytes(text: str | int | float, default_unit: str = "") -> float:
    """``100G`` / ``4MB`` / ``512`` (in ``default_unit``) as bytes; ValueError if not a size."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    if not m:
        raise ValueError(f"not a size: {text!r}")
    unit = (m.group(2) or default_unit).lower().removesuffix("ib").removesuffix("i")
    if unit not in _BINARY_UNITS:
        raise ValueError(f"unknown size unit in {text!r}")
    return float(m.group(1)) * _BINARY_UNITS[unit]


def gb(n_bytes: float) -> float:
    """Bytes as the scenario's ``_gb`` (10^9 bytes), rounded to what a reader can check."""
    return round(n_bytes / 1e9, 3)


class HostNames:
    """Scenario host names for the names a source uses (FQDNs, short names, IP addresses).

    Names are lower-cased (DNS is case-insensitive). An IP address (or a name the scenario
    does not accept, e.g. with ``_``) gets ``--host-name ADDR=NAME`` from the user, or
    ``host1``..``host3`` in order of first appearance, and the choice is recorded as an
    assumption.
    """

    def __init__(self, facts: ClusterFacts, given: dict[str, str] | None = None) -> None:
        self._facts = facts
        self._given = {k.lower(): v for k, v in (given or {}).items()}
        self._known: dict[str, str] = {}

    def __call__(self, raw: str) -> str:
        key = raw.strip().lower()
        if key in self._known:
            return self._known[key]
        name = self._given.get(key)
        if name is None:
            if HOST_NAME.match(key) and not _is_address(key):
                name = key
            else:
                name = f"host{len(self._known) + 1}"
                self._facts.assumptions.append(
                    f"host {raw!r} is named {name!r} (give --host-name {raw}=NAME to choose)")
        if not HOST_NAME.match(name):
            raise ImportSourceError(self._facts.source, f"--host-name {raw}={name}: not a "
                                    "valid host name (lower-case letters, digits, '-', dots "
                                    "between labels)")
        self._known[key] = name
        return name


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def scenario_name(text: str) -> str:
    """A scenario name (``[A-Za-z0-9_.-]``, 64 characters) made from a file or cluster name."""
    name = SCENARIO_NAME.sub("-", text).strip("-.") or "imported"
    if not name[0].isalnum():
        name = "imported-" + name
    return name[:64]


def scenario_dict(facts: ClusterFacts) -> dict[str, Any]:
    """The scenario as plain data, only with what the source said (defaults stay implicit)."""
    hosts = []
    for h in facts.hosts:
        host: dict[str, Any] = {"name": h.name}
        if h.cores is not None:
            host["cores"] = h.cores
        if h.ram_gib is not None:
            host["ram_gib"] = h.ram_gib
        if h.disks:
            host["disks"] = [{"name": d.name} | ({} if d.capacity_gb is None
                                                else {"capacity_gb": d.capacity_gb})
                             for d in h.disks]
        host["nics"] = [{"name": "mgmt0", "gbps": 1, "networks": ["management"]},
                        {"name": "stor0", "gbps": 10, "networks": ["storage", "migration"]}]
        if h.power_management is not None:
            host["power_management"] = h.power_management
        hosts.append(host)
    volumes = []
    for v in facts.volumes:
        vol: dict[str, Any] = {"name": v.name, "type": v.type,
                               "bricks": [{"host": b.host} | ({"disk": b.disk} if b.disk else {})
                                          for b in v.bricks]}
        if v.size_gb is not None:
            vol["size_gb"] = v.size_gb
        if v.options:
            vol["options"] = dict(v.options)
        volumes.append(vol)
    data: dict[str, Any] = {"name": facts.name, "description": f"imported from {facts.source}",
                            "hosts": hosts, "volumes": volumes}
    if facts.vms:
        data["vms"] = facts.vms
    if facts.hosted_engine_volume is not None:
        data["compute"] = {"hosted_engine": {"volume": facts.hosted_engine_volume}}
    return data


def scenario_text(facts: ClusterFacts) -> str:
    head = [f"# Imported by `hcisim import` from {facts.source}.",
            "# Not in the source, so assumed (scenario defaults unless said otherwise):",
            "#   NICs: 1 GbE management, 10 GbE storage + migration; network RTTs, disk",
            "#   bandwidth/IOPS, VM I/O profiles, faults and claims are not imported."]
    head += [f"#   {a}" for a in facts.assumptions]
    body = yaml.safe_dump(scenario_dict(facts), sort_keys=False, width=100)
    return "\n".join(head) + "\n" + body


def write_scenario(facts: ClusterFacts, out: Path) -> Scenario:
    """Validate the imported scenario with the scenario loader, then write it to ``out``.

    Raises :class:`hcisim.scenario.ScenarioError` (naming the imported source) when what the
    source describes is not a cluster hcisim can model; nothing is written then.
    """
    text = scenario_text(facts)
    sc = parse_scenario(text, f"scenario imported from {facts.source}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return sc
