"""Import from a gluster-ansible / oVirt HCI deployment inventory (the YAML the Cockpit
hyperconverged wizard writes and ``hc-ansible-deployment`` reads).

What it says and what we read from it:
- ``hc_nodes: hosts:`` the three servers (names or FQDNs), each with its brick storage:
  ``gluster_infra_mount_devices`` (brick mount point -> LV), ``gluster_infra_thick_lvs``
  (``size``), ``gluster_infra_lv_logicalvols`` (thin LVs, ``lvsize``) and
  ``gluster_infra_thinpools`` (``thinpoolsize``); these may also sit in the group's ``vars``.
- ``gluster_features_hci_volumes`` (in any group's ``vars``): ``volname``, ``brick`` (the
  brick directory on every host), ``arbiter`` (0/1; the third host holds the arbiter brick).
- the hosted engine's ``he_*`` variables (in the inventory or ``he_gluster_vars.json``):
  ``he_mem_size_MB``, ``he_vcpus``, ``he_disk_size_GB``, ``he_storage_domain_path``
  (``/engine`` -> volume ``engine``), ``he_ansible_host_name`` (where it first runs).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from hcisim.importers.facts import (
    BrickFacts,
    ClusterFacts,
    HostFacts,
    HostNames,
    ImportSourceError,
    VolumeFacts,
    binary_bytes,
    gb,
    scenario_name,
)
from hcisim.scenario.load import yaml_mapping

HE_VM_NAME = "HostedEngine"  # the name oVirt gives the hosted engine VM
HE_DEFAULTS = {"he_mem_size_MB": 16384, "he_vcpus": 4, "he_disk_size_GB": 51}


def _load_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ImportSourceError(str(path), f"cannot read file: {exc.strerror}") from None
    data, why = yaml_mapping(text)  # YAML is a superset of JSON: he_gluster_vars.json too
    if data is None:
        raise ImportSourceError(str(path), why or "not a mapping")
    return data


def _groups(inv: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every group of a YAML inventory, top-level or under ``all: children:``."""
    out: dict[str, dict[str, Any]] = {}

    def walk(name: str, group: Any) -> None:
        if not isinstance(group, dict):
            return
        out[name] = group
        for child, sub in (group.get("children") or {}).items():
            walk(child, sub)

    for name, group in inv.items():
        walk(name, group)
    return out


def _lv_sizes(hostvars: dict[str, Any], where: str) -> dict[tuple[str, str], float]:
    """(vg, lv) -> size in bytes, thick and thin LVs."""
    sizes: dict[tuple[str, str], float] = {}
    lists = (("gluster_infra_thick_lvs", "size"), ("gluster_infra_lv_logicalvols", "lvsize"))
    for key, size_key in lists:
        for lv in hostvars.get(key) or []:
            if not isinstance(lv, dict) or "lvname" not in lv or "vgname" not in lv:
                raise ImportSourceError(where, f"{key}: an entry without vgname/lvname: {lv!r}")
            if size_key not in lv:
                continue
            try:
                # lvol's default unit is MiB (m)
                sizes[(lv["vgname"], lv["lvname"])] = binary_bytes(lv[size_key], "m")
            except ValueError as exc:
                raise ImportSourceError(where, f"{key} {lv['lvname']}: {exc}") from None
    return sizes


def _brick_lv(hostvars: dict[str, Any], brick: str) -> tuple[str, str] | None:
    """(vg, lv) mounted where ``brick`` lives: the longest mount path containing it."""
    best: tuple[int, tuple[str, str]] | None = None
    for m in hostvars.get("gluster_infra_mount_devices") or []:
        if not isinstance(m, dict) or "path" not in m or "lvname" not in m:
            continue
        mount = PurePosixPath(m["path"])
        if PurePosixPath(brick).is_relative_to(mount) and (
                best is None or len(mount.parts) > best[0]):
            best = (len(mount.parts), (str(m.get("vgname", "")), str(m["lvname"])))
    return None if best is None else best[1]


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def inventory_facts(path: Path, he_vars: Path | None = None, name: str | None = None,
                    host_names: dict[str, str] | None = None) -> ClusterFacts:
    inv = _load_mapping(path)
    groups = _groups(inv)
    src = str(path)
    nodes = groups.get("hc_nodes")
    if nodes is None or not isinstance(nodes.get("hosts"), dict):
        raise ImportSourceError(src, "no `hc_nodes: hosts:` group (a gluster-ansible HCI "
                                "inventory lists its three servers there)")
    group_vars: dict[str, Any] = {}
    for g in groups.values():  # hc_nodes' own vars win over other groups' (e.g. local, gluster)
        if g is not nodes:
            group_vars.update(g.get("vars") or {})
    node_vars = nodes.get("vars") or {}
    group_vars.update(node_vars)
    if he_vars is not None:
        group_vars.update(_load_mapping(he_vars))
    hci_volumes = group_vars.get("gluster_features_hci_volumes")
    if not isinstance(hci_volumes, list) or not hci_volumes:
        raise ImportSourceError(src, "no gluster_features_hci_volumes (volname, brick, "
                                "arbiter) in any group's vars")
    raw_hosts = list(nodes["hosts"])
    if len(raw_hosts) != 3:
        raise ImportSourceError(src, f"hc_nodes has {len(raw_hosts)} hosts "
                                f"({', '.join(map(str, raw_hosts))}); a scenario is a "
                                "three-node cluster")
    facts = ClusterFacts(scenario_name(name or path.stem), src)
    names = HostNames(facts, host_names)
    per_host = {}
    for raw in raw_hosts:
        hostvars = node_vars | (nodes["hosts"][raw] or {})
        host = HostFacts(names(str(raw)))
        facts.hosts.append(host)
        per_host[host.name] = (hostvars, _lv_sizes(hostvars, f"{src}: host {raw}"))
    for i, vol in enumerate(hci_volumes):
        if not isinstance(vol, dict) or not vol.get("volname") or not vol.get("brick"):
            raise ImportSourceError(src, f"gluster_features_hci_volumes[{i}]: needs volname "
                                    f"and brick, got {vol!r}")
        volname, brick = str(vol["volname"]), str(vol["brick"])
        arbiter = _flag(vol.get("arbiter", 0))
        v = VolumeFacts(volname, "arbiter" if arbiter else "replica3", [])
        data_sizes = []
        for j, host in enumerate(facts.hosts):
            hostvars, sizes = per_host[host.name]
            lv = _brick_lv(hostvars, brick)
            if lv is None:
                facts.assumptions.append(f"host {host.name}: no gluster_infra_mount_devices "
                                         f"entry holds brick {brick}; disk {volname} of "
                                         "default capacity")
                disk, size = volname, None
            else:
                disk, size = lv[1], sizes.get(lv)
                if size is None:
                    facts.assumptions.append(f"host {host.name}: LV {lv[1]} has no size, "
                                             "default capacity")
            host.disk(disk, gb(size) if size is not None else None)
            v.bricks.append(BrickFacts(host.name, disk))
            if size is not None and not (arbiter and j == 2):
                data_sizes.append(size)
        if data_sizes:
            v.size_gb = gb(min(data_sizes))
        facts.volumes.append(v)
    _hosted_engine(facts, group_vars)
    facts.assumptions.append("host cores and RAM: scenario defaults (the inventory does not "
                             "say)")
    facts.assumptions.append("volume options: the virt group the deployment applies (the "
                             "scenario's defaults)")
    return facts


def _hosted_engine(facts: ClusterFacts, hv: dict[str, Any]) -> None:
    """The hosted engine VM, when the inventory or he vars describe one."""
    if not any(k.startswith("he_") for k in hv):
        return
    path = str(hv.get("he_storage_domain_path", "/engine"))
    volume = PurePosixPath(path).name or "engine"
    if volume not in {v.name for v in facts.volumes}:
        raise ImportSourceError(facts.source, f"he_storage_domain_path {path}: no volume "
                                f"{volume!r} in gluster_features_hci_volumes")
    values = {}
    for key, default in HE_DEFAULTS.items():
        raw = hv.get(key)
        if raw is None or not str(raw).isdigit():  # absent, or "max" (all the host has)
            facts.assumptions.append(f"{key}: {raw!r} -> {default}")
            values[key] = default
        else:
            values[key] = int(raw)
    first = hv.get("he_ansible_host_name") or hv.get("he_host_address")
    host = None
    if first is not None:
        host = next((h.name for h in facts.hosts if h.name == str(first).lower()), None)
    vm: dict[str, Any] = {
        "name": HE_VM_NAME, "host": host or facts.hosts[0].name,
        "vcpus": values["he_vcpus"], "ram_gib": round(values["he_mem_size_MB"] / 1024, 3),
        "ha": True, "priority": "high", "hosted_engine": True, "boot_s": 300,
        "disks": [{"volume": volume, "size_gb": gb(values["he_disk_size_GB"] * 2**30)}]}
    facts.vms.append(vm)
    facts.hosted_engine_volume = volume
