"""The libvirt lab's plan, domain/network XML and node seeds, checked by parsing them.

No libvirt needed: these are pure functions of the scenario. (The slow tier,
test_lab_slow.py, lists the Debian packages a real libvirt lab needs.)
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.lab.libvirt.image import NodeImage
from hcisim.lab.libvirt.layout import LabPlan, Machine, mac_of, node_size, plan_lab
from hcisim.lab.libvirt.render import (
    KERNEL_CMDLINE,
    domain_xml,
    network_xml,
    seed_files,
    write_seed,
)
from hcisim.scenario import Scenario, load_scenario

MACHINE = Machine(cores=2, mem_available_mib=23 * 1024)


@pytest.fixture
def sc() -> Scenario:
    return load_scenario(None)  # the built-in three-node HCI scenario


@pytest.fixture
def plan(sc: Scenario, tmp_path: Path) -> LabPlan:
    return plan_lab(sc, "ab12cd", 7, "qemu", MACHINE, workdir=tmp_path)


def image(tmp_path: Path) -> NodeImage:
    return NodeImage("0" * 16, tmp_path / "img")


def test_networks_are_isolated_and_private(plan: LabPlan) -> None:
    """No <forward> (nothing leaves the lab), no DHCP/DNS; only mgmt has a host address."""
    for net in plan.networks:
        root = ET.fromstring(network_xml(net))
        assert root.find("forward") is None
        assert root.find("ip/dhcp") is None
        assert root.find("dns").get("enable") == "no"  # type: ignore[union-attr]
        assert root.findtext("name") == net.name and net.name.startswith("hcisim-ab12cd-")
        bridge = root.find("bridge")
        assert bridge is not None and len(bridge.get("name", "")) <= 15
        assert ipaddress.IPv4Network(net.subnet).is_private
        ip = root.find("ip")
        if net.role == "mgmt":
            assert ip is not None and ip.get("address") == "10.231.7.1"
        else:
            assert ip is None
    assert plan.network("storage").mtu == 9000  # the scenario's storage MTU


def test_domain_has_disks_nics_console_and_direct_kernel_boot(plan: LabPlan,
                                                             tmp_path: Path) -> None:
    img = image(tmp_path)
    for node in plan.nodes:
        root = ET.fromstring(domain_xml(plan, node, img))
        assert root.get("type") == "qemu"
        assert root.findtext("name") == f"hcisim-ab12cd-{node.host}"
        assert root.findtext("vcpu") == "1"
        assert 1024 <= int(root.findtext("memory") or 0) <= 2048
        assert root.findtext("os/kernel") == str(img.kernel)
        assert root.findtext("os/cmdline") == KERNEL_CMDLINE
        disks = root.findall("devices/disk")
        serials = [d.findtext("serial") for d in disks]
        assert serials == ["hcisim-root", "brick-brick0", "hcisim-seed"]
        assert disks[0].find("source").get("file") == str(node.overlay)  # type: ignore[union-attr]
        assert disks[0].find("driver").get("type") == "qcow2"  # type: ignore[union-attr]
        assert disks[2].find("readonly") is not None
        nics = root.findall("devices/interface")
        assert [n.find("source").get("network") for n in nics] == [  # type: ignore[union-attr]
            "hcisim-ab12cd-mgmt", "hcisim-ab12cd-storage"]
        assert [n.find("mac").get("address") for n in nics] == [  # type: ignore[union-attr]
            mac_of(7, node.index, 0), mac_of(7, node.index, 1)]
        serial = root.find("devices/serial")
        assert serial is not None and serial.get("type") == "file"
        assert serial.find("source").get("path") == str(node.console_log)  # type: ignore[union-attr]


def test_kvm_domain_passes_the_host_cpu(sc: Scenario, tmp_path: Path) -> None:
    plan = plan_lab(sc, "k1", 3, "kvm", MACHINE, workdir=tmp_path)
    root = ET.fromstring(domain_xml(plan, plan.nodes[0], image(tmp_path)))
    assert root.get("type") == "kvm"
    assert root.find("cpu").get("mode") == "host-passthrough"  # type: ignore[union-attr]


def test_seed_carries_the_node_settings(plan: LabPlan) -> None:
    import yaml

    key = "ssh-ed25519 AAAATEST hcisim-ab12cd"
    for node in plan.nodes:
        files = seed_files(plan, node, key)
        meta = yaml.safe_load(files["meta-data"])
        assert meta["local-hostname"] == node.host
        user = yaml.safe_load(files["user-data"])
        assert files["user-data"].startswith("#cloud-config")
        assert user["ssh_authorized_keys"] == [key]
        net = yaml.safe_load(files["network-config"])
        eth = net["ethernets"]
        assert eth["mgmt"]["match"]["macaddress"] == node.nic("mgmt").mac
        assert eth["storage"]["addresses"] == [f"{node.storage_address}/24"]
        env = dict(line.split("=", 1) for line in files["node.env"].splitlines()
                   if line and not line.startswith("#"))
        assert env["HCISIM_HOSTNAME"] == f"'{node.host}'"
        assert env["HCISIM_STORAGE_ADDR"] == f"'{node.storage_address}/24'"
        assert env["HCISIM_STORAGE_MTU"] == "'9000'"
        # the first node serves time to the others
        assert env["HCISIM_NTP_SERVER"] == ("''" if node.index == 0
                                            else f"'{plan.nodes[0].mgmt_address}'")
        hosts = files["hosts"].split("\n")
        for other in plan.nodes:  # gluster names resolve to storage addresses
            assert f"{other.storage_address} {other.host}" in hosts
        assert files["authorized_keys"] == key + "\n"


@pytest.mark.skipif(shutil.which("genisoimage") is None and shutil.which("xorriso") is None,
                    reason="genisoimage (apt-get install genisoimage) not installed")
def test_seed_iso_is_labelled_cidata(plan: LabPlan, tmp_path: Path) -> None:
    iso = tmp_path / "seed.iso"
    write_seed({"node.env": "HCISIM_HOSTNAME='host1'\n", "meta-data": "x: 1\n"}, iso)
    data = iso.read_bytes()
    # ISO 9660 primary volume descriptor at sector 16: "CD001", volume id at offset 40
    pvd = data[16 * 2048:17 * 2048]
    assert pvd[1:6] == b"CD001"
    assert pvd[40:72].rstrip() == b"cidata"
    if shutil.which("isoinfo"):
        listing = subprocess.run(["isoinfo", "-R", "-f", "-i", str(iso)], capture_output=True,
                                 text=True).stdout
        assert "/node.env" in listing


@settings(max_examples=50, deadline=None)
@given(slots=st.lists(st.integers(0, 255), min_size=2, max_size=2, unique=True),
       cores=st.integers(1, 64), mem=st.integers(512, 512 * 1024))
def test_labs_in_different_slots_never_share_names_addresses_or_macs(
        slots: list[int], cores: int, mem: int) -> None:
    sc = load_scenario(None)
    machine = Machine(cores, mem)
    a, b = (plan_lab(sc, f"l{s}", s, "qemu", machine, workdir=Path("/nonexistent"))
            for s in slots)
    def facts(p: LabPlan) -> set[str]:
        out = {n.name for n in p.networks} | {n.bridge for n in p.networks}
        for node in p.nodes:
            out |= {node.domain, *(nic.mac for nic in node.nics),
                    *(nic.address for nic in node.nics)}
        return out
    assert not facts(a) & facts(b)
    for p in (a, b):
        assert len(facts(p)) == 2 * 2 + 3 * (1 + 2 + 2)  # all distinct within a lab too
        for node in p.nodes:
            assert 1 <= node.vcpus <= max(1, cores)
            assert 1024 <= node.ram_mib <= 2048


def test_node_size_is_a_share_of_the_machine_not_more_than_the_scenario() -> None:
    assert node_size(Machine(2, 23 * 1024), 3, 32, 256) == (1, 2048)
    assert node_size(Machine(16, 64 * 1024), 3, 32, 256) == (5, 2048)
    assert node_size(Machine(16, 64 * 1024), 3, 2, 1.5) == (2, 1536)
    assert node_size(Machine(1, 2048), 3, 32, 256) == (1, 1024)  # floor: glusterd needs it


def test_bricks_scale_with_the_scenario_disks(sc: Scenario, tmp_path: Path) -> None:
    plan = plan_lab(sc, "s1", 1, "qemu", MACHINE, workdir=tmp_path, brick_gib=4.0)
    assert [b.size_gib for n in plan.nodes for b in n.bricks] == [4.0, 4.0, 4.0]
    assert plan.brick_scale == pytest.approx(4 * 2**30 / 7680e9)


def test_plan_rejects_names_that_do_not_fit_a_bridge(sc: Scenario) -> None:
    with pytest.raises(ValueError, match="lab name"):
        plan_lab(sc, "much-too-long-name", 1, "qemu", MACHINE)
    with pytest.raises(ValueError, match="slot"):
        plan_lab(sc, "ok", 300, "qemu", MACHINE)
