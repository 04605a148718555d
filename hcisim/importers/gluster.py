"""Import from the Gluster CLI's XML: ``gluster volume info --xml`` (volumes, bricks, set
options), ``gluster volume get VOL all --xml`` (every option the volume runs with) and
``gluster volume status all detail --xml`` (brick filesystem sizes).

Two ways to get them: files saved on a server (:func:`read_files`), or asked of a node's
glusterd through a :class:`hcisim.lab.node.NodeShell` (:func:`read_node`: SSH to a real
server, nsenter into a lab host). The outputs are read by the one Gluster client's parsers
(:mod:`hcisim.lab.gluster`); this module only turns them into cluster facts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeVar

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
from hcisim.lab.gluster import (
    Gluster,
    GlusterError,
    VolumeInfo,
    parse_cli_xml,
    parse_volume_get,
    parse_volume_info,
)

INFO = "gluster volume info --xml"
GET = "gluster volume get VOL all --xml"
STATUS = "gluster volume status all detail --xml"
T = TypeVar("T")


@dataclass
class CliOutput:
    """One command's output and where it came from (a file, or node: command)."""

    source: str
    text: str


@dataclass
class GlusterOutputs:
    info: CliOutput
    gets: dict[str, CliOutput] = field(default_factory=dict)  # volume -> volume get
    status: CliOutput | None = None


def _file(path: Path) -> CliOutput:
    try:
        return CliOutput(str(path), path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not text"
        raise ImportSourceError(str(path), f"cannot read file: {why}") from None


def read_files(info: Path, gets: Mapping[str, Path] | None = None,
               status: Path | None = None) -> GlusterOutputs:
    return GlusterOutputs(_file(info), {v: _file(p) for v, p in (gets or {}).items()},
                          _file(status) if status is not None else None)


def read_node(gluster: Gluster, volumes: Sequence[str] = ()) -> GlusterOutputs:
    """Ask the node's glusterd (read-only commands), e.g. over SSH."""
    where = gluster.shell.label

    def ask(*args: str) -> CliOutput:
        try:
            return CliOutput(f"{where}: gluster {' '.join(args)}", gluster.text(*args))
        except GlusterError as exc:
            raise ImportSourceError(where, str(exc)) from None

    info = ask("--xml", "volume", "info")
    names = volumes or [v.name for v in _parsed(parse_volume_info, info, INFO)]
    gets = {v: ask("--xml", "volume", "get", v, "all") for v in names}
    return GlusterOutputs(info, gets, ask("--xml", "volume", "status", "all", "detail"))


def _parsed(parse: Callable[[str], T], out: CliOutput, what: str) -> T:
    try:
        return parse(out.text)
    except (GlusterError, ValueError) as exc:  # ValueError: a number that is not one
        raise ImportSourceError(out.source, f"{exc}; expected the output of `{what}`") from None


def brick_sizes(out: CliOutput) -> dict[tuple[str, str], tuple[str, int]]:
    """(host, brick path) -> (device, filesystem size in bytes), from ``volume status all
    detail``."""
    root = _parsed(lambda t: parse_cli_xml(t, "volume status"), out, STATUS)
    sizes = {}
    for node in root.iter("node"):
        size = (node.findtext("sizeTotal") or "").strip()
        host, brick = node.findtext("hostname"), node.findtext("path")
        if host and brick and size.isdigit():
            sizes[(host, brick)] = ((node.findtext("device") or "").strip(), int(size))
    if not sizes:
        raise ImportSourceError(out.source, "no brick sizes (<node><sizeTotal>); expected "
                                f"the output of `{STATUS}`")
    return sizes


def _volumes(out: CliOutput) -> list[VolumeInfo]:
    if "<volInfo" not in out.text:
        # parse_cli_xml says why for a failed command or non-XML; otherwise it is not info
        root = _parsed(lambda t: parse_cli_xml(t, "volume info"), out, INFO)
        raise ImportSourceError(out.source, f"no <volInfo> in <{root.tag}>: expected the "
                                f"output of `{INFO}`")
    vols = _parsed(parse_volume_info, out, INFO)
    if not vols:
        raise ImportSourceError(out.source, "no volumes in the output")
    return vols


def _volume_type(v: VolumeInfo, source: str) -> str:
    if len(v.bricks) != 3 or v.replica_count != 3:
        raise ImportSourceError(source, f"volume {v.name}: {v.type_str} with {len(v.bricks)} "
                                f"bricks (replica {v.replica_count}); hcisim models a volume as "
                                "one replica set of 3 bricks, replica 3 or arbiter (choose "
                                "volumes with --volume)")
    return "arbiter" if v.arbiter_count == 1 else "replica3"


def gluster_facts(outputs: GlusterOutputs, volumes: Sequence[str] = (),
                  host_names: Mapping[str, str] | None = None,
                  name: str | None = None) -> ClusterFacts:
    """Cluster facts from the CLI outputs (``outputs.gets``: a volume's ``volume get``)."""
    src = outputs.info.source
    found = _volumes(outputs.info)
    by_name = {v.name: v for v in found}
    for want in [*volumes, *outputs.gets]:
        if want not in by_name:
            raise ImportSourceError(src, f"no volume {want!r} (has: "
                                    f"{', '.join(sorted(by_name))})")
    chosen = [by_name[v] for v in volumes] if volumes else found
    facts = ClusterFacts(scenario_name(name or Path(src).stem), src)
    names = HostNames(facts, dict(host_names or {}))
    sizes = brick_sizes(outputs.status) if outputs.status is not None else {}
    for v in chosen:
        _add_volume(facts, v, outputs, sizes, names)
    if len(facts.hosts) != 3:
        raise ImportSourceError(src, f"the volumes' bricks are on {len(facts.hosts)} "
                                f"servers ({', '.join(h.name for h in facts.hosts)}); a "
                                "scenario is a three-node cluster")
    for h in facts.hosts:
        for d in h.disks:
            if d.capacity_gb is None:
                facts.assumptions.append(f"host {h.name} disk {d.name}: capacity unknown, "
                                         "scenario default")
    facts.assumptions.append("host cores and RAM: scenario defaults (Gluster does not say)")
    return facts


def _add_volume(facts: ClusterFacts, v: VolumeInfo, outputs: GlusterOutputs,
                sizes: dict[tuple[str, str], tuple[str, int]], names: HostNames) -> None:
    vtype = _volume_type(v, outputs.info.source)
    opts = dict(v.options)
    if v.name in outputs.gets:
        got = _parsed(parse_volume_get, outputs.gets[v.name], GET)
        if not got:
            raise ImportSourceError(outputs.gets[v.name].source, "no <volGetopts><Opt> "
                                    f"entries; expected the output of `{GET}`")
        opts.update(got)
    else:
        facts.assumptions.append(f"volume {v.name}: only the options `volume info` lists "
                                 "as set (no `volume get` output)")
    vol = VolumeFacts(v.name, vtype, [], options=scenario_options(opts, v.name,
                                                                  facts.assumptions))
    data_sizes = []
    for b in sorted(v.bricks, key=lambda b: b.is_arbiter):  # the arbiter brick last
        host_name = names(b.host)
        try:
            host = facts.host(host_name)
        except KeyError:
            host = HostFacts(host_name)
            facts.hosts.append(host)
        device, size = sizes.get((b.host, b.path), ("", None))
        disk_name = PurePosixPath(device).name or PurePosixPath(b.path).parent.name or "brick0"
        host.disk(disk_name, gb(size) if size is not None else None)
        vol.bricks.append(BrickFacts(host_name, disk_name))
        if size is not None and not b.is_arbiter:
            data_sizes.append(size)
    if data_sizes:
        vol.size_gb = gb(min(data_sizes))
    else:
        facts.assumptions.append(f"volume {v.name}: size unknown (no `volume status all "
                                 "detail` output), scenario default")
    facts.volumes.append(vol)


__all__ = ["CliOutput", "GlusterOutputs", "brick_sizes", "gluster_facts", "read_files",
           "read_node"]
