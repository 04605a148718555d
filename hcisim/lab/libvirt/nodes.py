"""Bring a libvirt lab's machines up and take them down: networks, disks, seeds, domains.

Every object is written to the lab's state file before it is created, and named with the
lab's prefix, so :func:`reclaim` can remove what a killed harness left behind. Domains and
networks are transient (``createXML``): a destroyed one is gone from libvirt, the XML to
start it again is kept in the lab directory.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

from hcisim.lab.errors import LabError
from hcisim.lab.libvirt.hypervisor import started_daemons, stop_started_daemons
from hcisim.lab.libvirt.image import NodeImage
from hcisim.lab.libvirt.layout import MGMT_BASE, PREFIX, STORAGE_BASE, LabPlan, NodePlan
from hcisim.lab.libvirt.render import domain_xml, network_xml, seed_files, write_seed
from hcisim.lab.netns.state import LabState
from hcisim.lab.process import proc_start

STATE_FILE = "state.json"


def new_lab_name() -> str:
    return uuid.uuid4().hex[:6]


def used_slots(conn: Any, workdir: Path) -> set[int]:
    """Slots taken by other labs (state files), libvirt networks or host routes."""
    used: set[int] = set()
    for state in workdir.glob(f"*/{STATE_FILE}"):
        slot = LabState(state).data.get("slot")
        if isinstance(slot, int):
            used.add(slot)
    nets: list[ipaddress.IPv4Network] = []
    for net in conn.listAllNetworks(0):
        with contextlib.suppress(Exception):
            import xml.etree.ElementTree as ET

            for ip in ET.fromstring(net.XMLDesc(0)).iter("ip"):
                addr, prefix = ip.get("address"), ip.get("prefix") or "24"
                if addr and ":" not in addr:
                    nets.append(ipaddress.IPv4Network(f"{addr}/{prefix}", strict=False))
    with contextlib.suppress(Exception):
        out = subprocess.run(["ip", "-j", "-4", "route"], capture_output=True, text=True,
                             timeout=10).stdout
        for r in json.loads(out or "[]"):
            dst = r.get("dst", "")
            if dst and dst != "default":
                nets.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32",
                                                  strict=False))
    for slot in range(256):
        for base in (MGMT_BASE, STORAGE_BASE):
            ours = ipaddress.IPv4Network(f"{base}.{slot}.0/24")
            if any(ours.overlaps(n) for n in nets if n.prefixlen > 0):
                used.add(slot)
    return used


def owner_alive(data: dict[str, Any]) -> bool:
    """Is the harness that made a lab still running? (PID plus its start time.)"""
    pid, started = data.get("owner_pid"), data.get("owner_start")
    if not isinstance(pid, int):
        return False
    return proc_start(pid) == started



def record_owner(state: LabState) -> None:
    state.data["owner_pid"] = os.getpid()
    state.data["owner_start"] = proc_start(os.getpid())
    state.save()


def create_disks(plan: LabPlan, node: NodePlan, image: NodeImage, public_key: str) -> None:
    """The node's root overlay, sparse brick files and seed ISO (in the lab directory)."""
    node.directory.mkdir(parents=True, exist_ok=True)
    for d in (plan.directory, node.directory):
        d.chmod(0o755)  # qemu runs as libvirt-qemu and must reach the files
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                    str(image.disk), str(node.overlay)], check=True, capture_output=True)
    for b in node.bricks:
        with open(b.path, "wb") as fh:
            fh.truncate(int(b.size_gib * 2**30))
    write_seed(seed_files(plan, node, public_key), node.seed)
    node.console_log.touch()


def start_networks(conn: Any, plan: LabPlan, state: LabState) -> None:
    for net in plan.networks:
        state.add("networks", net.name)
        try:
            conn.networkCreateXML(network_xml(net))
        except Exception as exc:
            raise LabError(f"create network {net.name}", str(exc)) from None


def start_domain(conn: Any, plan: LabPlan, node: NodePlan, image: NodeImage,
                 state: LabState, guest_layer: Path | None = None) -> None:
    xml = domain_xml(plan, node, image, guest_layer)
    (node.directory / "domain.xml").write_text(xml)
    state.add("domains", node.domain)
    try:
        conn.createXML(xml, 0)
    except Exception as exc:
        raise LabError(f"start node {node.host}", str(exc)) from None


def restart_domain(conn: Any, node: NodePlan) -> None:
    """Power on again after a power loss, from the XML the lab started it with."""
    conn.createXML((node.directory / "domain.xml").read_text(), 0)


def lookup_domain(conn: Any, name: str) -> Any | None:
    try:
        return conn.lookupByName(name)
    except Exception:
        return None


def remove_objects(conn: Any, domains: list[str], networks: list[str]) -> list[str]:
    """Destroy (and undefine, if persistent) named domains and networks; what was removed."""
    removed = []
    for name in domains:
        dom = lookup_domain(conn, name)
        if dom is None:
            continue
        with contextlib.suppress(Exception):
            if dom.isActive():
                dom.destroy()
        with contextlib.suppress(Exception):
            if dom.isPersistent():
                dom.undefine()
        removed.append(f"domain {name}")
    for name in networks:
        try:
            net = conn.networkLookupByName(name)
        except Exception:
            continue
        with contextlib.suppress(Exception):
            if net.isActive():
                net.destroy()
        with contextlib.suppress(Exception):
            if net.isPersistent():
                net.undefine()
        removed.append(f"network {name}")
    return removed


def teardown(conn: Any, directory: Path) -> list[str]:
    """Remove one lab: its domains, networks, ssh masters and directory (overlays, seeds)."""
    state = LabState(directory / STATE_FILE)
    lab = str(state.data.get("lab", directory.name))
    prefix = f"{PREFIX}{lab}-"
    domains = set(state.get_list("domains"))
    networks = set(state.get_list("networks"))
    if conn is not None:
        domains |= {d.name() for d in conn.listAllDomains(0) if d.name().startswith(prefix)}
        networks |= {n.name() for n in conn.listAllNetworks(0) if n.name().startswith(prefix)}
        removed = remove_objects(conn, sorted(domains), sorted(networks))
    else:
        removed = []
    config = directory / "ssh_config"
    if config.exists():
        hosts = [str(h) for h in state.get_list("hosts")]
        for h in hosts:
            subprocess.run(["ssh", "-F", str(config), "-O", "exit", h], capture_output=True,
                           timeout=10, check=False)
    shutil.rmtree(directory, ignore_errors=True)
    removed.append(f"directory {directory}")
    return removed


def reclaim(conn: Any, workdir: Path, include_running: bool = False) -> list[str]:
    """Remove every lab under ``workdir`` whose harness is gone (or all, if asked), plus
    libvirt objects named ``hcisim-<lab>-`` with no lab directory; then the libvirtd and
    virtlogd hcisim started, once no lab is left."""
    removed: list[str] = []
    kept: set[str] = set()
    for directory in sorted(p for p in workdir.glob("*") if p.is_dir()):
        data = LabState(directory / STATE_FILE).data
        if owner_alive(data) and not include_running:
            kept.add(directory.name)
            continue
        removed += teardown(conn, directory)
    if conn is not None:
        orphans_d = [d.name() for d in conn.listAllDomains(0)
                     if d.name().startswith(PREFIX) and _lab_of(d.name()) not in kept]
        orphans_n = [n.name() for n in conn.listAllNetworks(0)
                     if n.name().startswith(PREFIX) and _lab_of(n.name()) not in kept]
        removed += remove_objects(conn, orphans_d, orphans_n)
    if not kept and started_daemons():
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        removed += [f"daemon {d}" for d in stop_started_daemons()]
    return removed


def _lab_of(name: str) -> str:
    return name[len(PREFIX):].split("-", 1)[0]
