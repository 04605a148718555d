"""Import from a live oVirt engine through its Python SDK (ovirt-engine-sdk-python).

Read: hosts (CPU threads, memory, power management), VMs (memory, vCPUs, HA and its priority,
VM lease, where it runs, pinning, disks with their storage domain), storage domains (which
Gluster volume backs each), the Gluster volumes of every Gluster-service cluster (bricks and
options). :func:`read_engine` asks a live engine; :func:`read_recorded` reads the same API
answers saved as XML files (``curl .../api/hosts`` etc.), with the SDK's own XML readers, so
an import can be repeated offline and tested. Both give an :class:`EngineSnapshot` of the
SDK's types; :func:`engine_facts` turns it into cluster facts.

The API does not say which brick of a volume is an arbiter: give ``--arbiter VOL``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

SDK_MISSING = ("importing from an oVirt engine needs ovirt-engine-sdk-python: "
               "pip install 'hcisim[ovirt]'")
RECORDED = {"hosts": "hosts.xml", "vms": "vms.xml", "storage_domains": "storagedomains.xml",
            "gluster_volumes": "glustervolumes.xml"}
HE_ORIGIN = "managed_hosted_engine"


def _sdk(module: str = "ovirtsdk4") -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportSourceError("oVirt engine", SDK_MISSING) from None


@dataclass
class EngineSnapshot:
    """What the engine said, as the SDK's types (``ovirtsdk4.types``)."""

    source: str
    hosts: list[Any] = field(default_factory=list)
    vms: list[Any] = field(default_factory=list)  # with disk_attachments and their disks
    storage_domains: list[Any] = field(default_factory=list)
    gluster_volumes: list[Any] = field(default_factory=list)  # with their bricks


def read_engine(url: str, username: str, password: str, ca_file: str | None = None,
                insecure: bool = False) -> EngineSnapshot:
    """Ask a live engine (read-only: list calls only)."""
    sdk = _sdk()
    try:
        conn = sdk.Connection(url=url, username=username, password=password,
                              ca_file=ca_file, insecure=insecure)
        try:
            system = conn.system_service()
            snap = EngineSnapshot(url)
            snap.hosts = system.hosts_service().list()
            snap.vms = system.vms_service().list(follow="disk_attachments.disk")
            snap.storage_domains = system.storage_domains_service().list()
            clusters = system.clusters_service()
            for cl in clusters.list():
                if not cl.gluster_service:
                    continue
                volumes = clusters.cluster_service(cl.id).gluster_volumes_service()
                for vol in volumes.list():
                    vol.bricks = volumes.volume_service(vol.id).gluster_bricks_service().list()
                    snap.gluster_volumes.append(vol)
            return snap
        finally:
            conn.close()
    except sdk.Error as exc:
        raise ImportSourceError(url, f"engine API: {exc}") from None


def read_recorded(folder: Path) -> EngineSnapshot:
    """API answers saved as files: hosts.xml (``GET /api/hosts``), vms.xml
    (``/api/vms?follow=disk_attachments.disk``), storagedomains.xml, glustervolumes.xml
    (``/api/clusters/ID/glustervolumes?follow=bricks``)."""
    _sdk("ovirtsdk4.readers")  # registers the readers
    reader = _sdk("ovirtsdk4.reader").Reader
    snap = EngineSnapshot(str(folder))
    for attr, name in RECORDED.items():
        path = folder / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImportSourceError(str(path), f"cannot read file: {exc.strerror} (a recorded "
                                    f"engine folder has {', '.join(RECORDED.values())})"
                                    ) from None
        try:
            got = reader.read(data)
        except Exception as exc:  # the SDK's parser raises its own Error and libxml2 errors
            raise ImportSourceError(str(path), f"not an engine API answer: {exc}") from None
        if not isinstance(got, list):
            raise ImportSourceError(str(path), f"expected a list of {attr} (<{attr}>), "
                                    f"got {type(got).__name__}")
        setattr(snap, attr, got)
    return snap


def _host_name(h: Any) -> str:
    return str(h.address or h.name) if _looks_fqdn(h.address) else str(h.name)


def _looks_fqdn(text: str | None) -> bool:
    return bool(text) and "." in str(text) and not str(text).replace(".", "").isdigit()


def _threads(cpu: Any) -> int | None:
    t = getattr(cpu, "topology", None)
    if t is None or not t.cores:
        return None
    return int((t.sockets or 1) * t.cores * (t.threads or 1))


def _priority(ha: Any) -> str:
    """oVirt's HA priority is an integer: 1 low, 50 medium, 100 high (the UI's three)."""
    p = int(ha.priority or 1) if ha is not None else 1
    return "high" if p >= 75 else "medium" if p >= 25 else "low"


def _volume_of_domain(sd: Any) -> str | None:
    st = sd.storage
    if st is None or str(getattr(st.type, "value", st.type)) != "glusterfs":
        return None
    return str(st.path or "").strip("/").split("/")[-1] or None


def engine_facts(snap: EngineSnapshot, arbiter_volumes: tuple[str, ...] = (),
                 host_names: dict[str, str] | None = None,
                 name: str | None = None) -> ClusterFacts:
    facts = ClusterFacts(scenario_name(name or "ovirt"), snap.source)
    names = HostNames(facts, host_names)
    by_id: dict[str, str] = {}
    for h in snap.hosts:
        host = HostFacts(names(_host_name(h)), cores=_threads(h.cpu))
        if h.memory:
            host.ram_gib = round(h.memory / 2**30, 3)
        if h.power_management is not None:
            host.power_management = bool(h.power_management.enabled)
        facts.hosts.append(host)
        by_id[h.id] = host.name
        if host.cores is None or host.ram_gib is None:
            facts.assumptions.append(f"host {host.name}: CPU topology or memory not given")
    if len(facts.hosts) != 3:
        raise ImportSourceError(snap.source, f"the engine has {len(facts.hosts)} hosts "
                                f"({', '.join(h.name for h in facts.hosts)}); a scenario is a "
                                "three-node cluster")
    for v in snap.gluster_volumes:
        facts.volumes.append(_volume(v, by_id, facts, snap.source, arbiter_volumes))
    volumes = {v.name: v for v in facts.volumes}
    for sd in snap.storage_domains:
        vol = _volume_of_domain(sd)
        if vol in volumes and sd.available is not None and sd.used is not None:
            volumes[vol].size_gb = gb(sd.available + sd.used)
    domain_volume = {sd.id: _volume_of_domain(sd) for sd in snap.storage_domains}
    for vm in snap.vms:
        facts.vms.append(_vm(vm, by_id, domain_volume, facts))
    he = [vm for vm in facts.vms if vm.get("hosted_engine")]
    if he and he[0].get("disks"):
        facts.hosted_engine_volume = he[0]["disks"][0]["volume"]
    return facts


def _volume(v: Any, by_id: dict[str, str], facts: ClusterFacts, source: str,
            arbiter_volumes: tuple[str, ...]) -> VolumeFacts:
    bricks = list(v.bricks or [])
    if len(bricks) != 3 or (v.replica_count or 0) != 3:
        kind = getattr(v.volume_type, "value", v.volume_type)
        raise ImportSourceError(source, f"Gluster volume {v.name}: {kind} with {len(bricks)} "
                                f"bricks (replica {v.replica_count}); hcisim models one replica "
                                "set of 3 bricks")
    out = VolumeFacts(str(v.name), "arbiter" if v.name in arbiter_volumes else "replica3", [])
    for b in bricks:
        host = by_id.get(b.server_id)
        if host is None:
            raise ImportSourceError(source, f"Gluster volume {v.name}: brick {b.name} is on "
                                    f"server {b.server_id}, not one of the engine's hosts")
        brick_dir = str(b.brick_dir or str(b.name).rpartition(":")[2])
        disk = brick_dir.rstrip("/").split("/")[-2] if brick_dir.count("/") > 1 else "brick0"
        facts.host(host).disk(disk)
        out.bricks.append(BrickFacts(host, disk))
    opts = {str(o.name): str(o.value) for o in (v.options or [])}
    out.options = scenario_options(opts, out.name, facts.assumptions)
    return out


def _vm(vm: Any, by_id: dict[str, str], domain_volume: dict[str, str | None],
        facts: ClusterFacts) -> dict[str, Any]:
    out: dict[str, Any] = {"name": vm.name}
    status = str(getattr(vm.status, "value", vm.status))
    if vm.host is not None and vm.host.id in by_id and status != "down":
        out["host"] = by_id[vm.host.id]
    threads = _threads(vm.cpu)
    if threads:
        out["vcpus"] = threads
    if vm.memory:
        out["ram_gib"] = round(vm.memory / 2**30, 3)
    ha = vm.high_availability
    out["ha"] = bool(ha is not None and ha.enabled)
    out["priority"] = _priority(ha)
    out["lease"] = vm.lease is not None and vm.lease.storage_domain is not None
    if str(getattr(vm.origin, "value", vm.origin)) == HE_ORIGIN:
        out["hosted_engine"] = True
    pp = vm.placement_policy
    if pp is not None and pp.hosts:
        pinned = [by_id[h.id] for h in pp.hosts if h.id in by_id]
        if pinned:
            out["pinned_to"] = pinned
    disks = []
    for att in vm.disk_attachments or []:
        d = att.disk
        domains = list(d.storage_domains or []) if d is not None else []
        vol = domain_volume.get(domains[0].id) if domains else None
        if d is None or vol is None:
            facts.assumptions.append(f"VM {vm.name}: a disk not on a Gluster storage domain "
                                     "(or not followed) is left out")
            continue
        disk: dict[str, Any] = {"volume": vol}
        if d.provisioned_size:
            disk["size_gb"] = gb(d.provisioned_size)
        disks.append(disk)
    if disks:
        out["disks"] = disks
    return out
