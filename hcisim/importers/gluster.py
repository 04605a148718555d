"""Import from the Gluster CLI's XML: ``gluster volume info --xml`` (volumes, bricks, set
options), ``gluster volume get VOL all --xml`` (every option the volume runs with) and,
optionally, ``gluster volume status all detail --xml`` (brick filesystem sizes).

Run those on any server of the trusted pool and save the output to files; the importer reads
only files (it does not log in anywhere).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hcisim.importers.facts import (
    BrickFacts,
    ClusterFacts,
    HostFacts,
    HostNames,
    ImportSourceError,
    VolumeFacts,
    gb,
    scenario_name,
)
from hcisim.importers.options import scenario_options


@dataclass(frozen=True)
class CliBrick:
    host: str
    path: str
    arbiter: bool


@dataclass(frozen=True)
class CliVolume:
    name: str
    type_str: str
    replica_count: int
    arbiter_count: int
    bricks: tuple[CliBrick, ...]
    options: dict[str, str]


def read_cli_xml(path: Path, what: str) -> ET.Element:
    """The ``<cliOutput>`` of a ``gluster ... --xml`` file; a failed command is an error."""
    try:
        root = ET.fromstring(path.read_bytes())
    except OSError as exc:
        raise ImportSourceError(str(path), f"cannot read file: {exc.strerror}") from None
    except ET.ParseError as exc:
        raise ImportSourceError(str(path), f"not XML ({exc}); expected the output of "
                                f"`{what}`") from None
    if root.tag != "cliOutput":
        raise ImportSourceError(str(path), f"<{root.tag}> is not gluster CLI output "
                                f"(<cliOutput>); expected the output of `{what}`")
    if (root.findtext("opRet") or "0").strip() != "0":
        why = root.findtext("opErrstr") or root.findtext("output") or "no reason given"
        raise ImportSourceError(str(path), f"the gluster command failed: {why.strip()}")
    return root


def _int(el: ET.Element, tag: str, source: str, where: str) -> int:
    text = el.findtext(tag)
    if text is None or not text.strip().lstrip("-").isdigit():
        raise ImportSourceError(source, f"{where}: <{tag}> missing or not a number")
    return int(text)


def parse_volume_info(path: Path) -> list[CliVolume]:
    root = read_cli_xml(path, "gluster volume info --xml")
    vols = root.findall("./volInfo/volumes/volume")
    if root.find("volInfo") is None:
        raise ImportSourceError(str(path), "no <volInfo>: not `gluster volume info --xml`")
    out = []
    for i, v in enumerate(vols):
        name = (v.findtext("name") or "").strip()
        if not name:
            raise ImportSourceError(str(path), f"volume {i + 1}: no <name>")
        bricks = []
        for b in v.findall("./bricks/brick"):
            full = (b.findtext("name") or b.text or "").strip()
            host, sep, brick_path = full.rpartition(":")
            if not sep or not host or not brick_path:
                raise ImportSourceError(str(path), f"volume {name}: brick {full!r} is not "
                                        "HOST:/PATH")
            bricks.append(CliBrick(host, brick_path, (b.findtext("isArbiter") or "0") == "1"))
        options = {(o.findtext("name") or ""): (o.findtext("value") or "")
                   for o in v.findall("./options/option")}
        out.append(CliVolume(name, v.findtext("typeStr") or "?",
                             _int(v, "replicaCount", str(path), f"volume {name}"),
                             _int(v, "arbiterCount", str(path), f"volume {name}"),
                             tuple(bricks), options))
    if not out:
        raise ImportSourceError(str(path), "no volumes in the output")
    return out


def parse_volume_get(path: Path) -> dict[str, str]:
    """Every option of ``gluster volume get VOL all --xml`` (name -> value as printed)."""
    root = read_cli_xml(path, "gluster volume get VOL all --xml")
    opts = root.findall("./volGetopts/Opt")
    if not opts:
        raise ImportSourceError(str(path), "no <volGetopts><Opt> entries: not "
                                "`gluster volume get VOL all --xml`")
    return {(o.findtext("Option") or "").strip(): (o.findtext("Value") or "") for o in opts}


@dataclass(frozen=True)
class BrickFs:
    device: str
    size_bytes: int


def parse_volume_status(path: Path) -> dict[tuple[str, str], BrickFs]:
    """(host, brick path) -> brick filesystem, from ``volume status all detail --xml``."""
    root = read_cli_xml(path, "gluster volume status all detail --xml")
    out = {}
    for node in root.findall("./volStatus/volumes/volume/node"):
        size = (node.findtext("sizeTotal") or "").strip()
        host, brick = node.findtext("hostname"), node.findtext("path")
        if host and brick and size.isdigit():
            out[(host, brick)] = BrickFs((node.findtext("device") or "").strip(), int(size))
    if not out:
        raise ImportSourceError(str(path), "no brick sizes (<node><sizeTotal>): not "
                                "`gluster volume status all detail --xml`")
    return out


def _volume_type(v: CliVolume, source: str) -> str:
    if len(v.bricks) != 3 or v.replica_count != 3:
        raise ImportSourceError(source, f"volume {v.name}: {v.type_str} with {len(v.bricks)} "
                                f"bricks (replica {v.replica_count}); hcisim models a volume as "
                                "one replica set of 3 bricks, replica 3 or arbiter (choose "
                                "volumes with --volume)")
    return "arbiter" if v.arbiter_count == 1 else "replica3"


def gluster_facts(info: Path, gets: Mapping[str, Path] | None = None,
                  status: Path | None = None, volumes: Sequence[str] = (),
                  host_names: Mapping[str, str] | None = None,
                  name: str | None = None) -> ClusterFacts:
    """Cluster facts from the CLI outputs; ``gets`` maps a volume name to its ``volume get``."""
    gets = dict(gets or {})
    found = parse_volume_info(info)
    by_name = {v.name: v for v in found}
    for want in [*volumes, *gets]:
        if want not in by_name:
            raise ImportSourceError(str(info), f"no volume {want!r} (has: "
                                    f"{', '.join(sorted(by_name))})")
    chosen = [by_name[v] for v in volumes] if volumes else found
    facts = ClusterFacts(scenario_name(name or info.stem), str(info))
    names = HostNames(facts, dict(host_names or {}))
    sizes = parse_volume_status(status) if status is not None else {}
    for v in chosen:
        vtype = _volume_type(v, str(info))
        bricks = sorted(v.bricks, key=lambda b: b.arbiter)  # the arbiter brick last
        opts = dict(v.options)
        if v.name in gets:
            opts.update(parse_volume_get(gets[v.name]))
        else:
            facts.assumptions.append(f"volume {v.name}: only the options `volume info` lists "
                                     "as set (no `volume get` file)")
        vol = VolumeFacts(v.name, vtype, [], options=scenario_options(opts, v.name,
                                                                      facts.assumptions))
        data_sizes = []
        for b in bricks:
            host_name = names(b.host)
            try:
                host = facts.host(host_name)
            except KeyError:
                host = HostFacts(host_name)
                facts.hosts.append(host)
            fs = sizes.get((b.host, b.path))
            disk_name = (PurePosixPath(fs.device).name if fs and fs.device
                         else PurePosixPath(b.path).parent.name or "brick0")
            host.disk(disk_name, gb(fs.size_bytes) if fs else None)
            vol.bricks.append(BrickFacts(host_name, disk_name))
            if fs and not b.arbiter:
                data_sizes.append(fs.size_bytes)
        if data_sizes:
            vol.size_gb = gb(min(data_sizes))
        else:
            facts.assumptions.append(f"volume {v.name}: size unknown (no `volume status all "
                                     "detail --xml` file), scenario default")
        facts.volumes.append(vol)
    if len(facts.hosts) != 3:
        raise ImportSourceError(str(info), f"the volumes' bricks are on {len(facts.hosts)} "
                                f"servers ({', '.join(h.name for h in facts.hosts)}); a "
                                "scenario is a three-node cluster")
    for h in facts.hosts:
        for d in h.disks:
            if d.capacity_gb is None:
                facts.assumptions.append(f"host {h.name} disk {d.name}: capacity unknown, "
                                         "scenario default")
    facts.assumptions.append("host cores and RAM: scenario defaults (Gluster does not say)")
    return facts
