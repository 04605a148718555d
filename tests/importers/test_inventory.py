"""Deployment inventories (gluster-ansible / Cockpit HCI wizard format) become scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcisim.importers.facts import ImportSourceError, write_scenario
from hcisim.importers.inventory import inventory_facts
from hcisim.scenario import Host, Nic, load_scenario
from tests.importers.conftest import FIXTURES

GIB_IN_GB = 2**30 / 1e9


def test_wizard_inventory_with_he_vars(tmp_path: Path) -> None:
    facts = inventory_facts(FIXTURES / "hc_wizard_inventory.yml",
                            FIXTURES / "he_gluster_vars.json", name="hci")
    out = tmp_path / "hci.yaml"
    written = write_scenario(facts, out)
    sc = load_scenario(out)  # the file on disk is a valid scenario, equal to what was checked
    assert sc == written
    assert sc.host_names == ("node1.hci.example.com", "node2.hci.example.com",
                             "node3.hci.example.com")
    assert [(v.name, v.type) for v in sc.volumes] == [
        ("engine", "replica3"), ("data", "replica3"), ("vmstore", "arbiter")]
    engine, data, vmstore = sc.volumes
    assert engine.size_gb == pytest.approx(100 * GIB_IN_GB, abs=0.001)  # thick LV 100G
    assert data.size_gb == pytest.approx(2048 * GIB_IN_GB, abs=0.001)  # thin LV 2T
    # the arbiter brick (third host, 20G) does not limit the volume's size
    assert vmstore.size_gb == pytest.approx(1000 * GIB_IN_GB, abs=0.001)
    assert vmstore.bricks[2].host == "node3.hci.example.com"
    assert sc.host("node3.hci.example.com").disk("gluster_lv_vmstore").capacity_gb == \
        pytest.approx(20 * GIB_IN_GB, abs=0.001)
    assert all(b.disk == "gluster_lv_data" for b in data.bricks)
    (he,) = sc.vms
    assert he.hosted_engine and he.ha and he.priority == "high"
    assert (he.host, he.vcpus, he.ram_gib) == ("node1.hci.example.com", 4, 16.0)
    assert he.disks[0].volume == "engine"
    assert sc.compute.hosted_engine.volume == "engine"
    header = out.read_text().split("\nname:")[0]
    assert "he_disk_size_GB: None -> 51" in header  # the guess is written down


def test_gluster_ansible_inventory_short_names_and_a_missing_mount() -> None:
    facts = inventory_facts(FIXTURES / "gluster_inventory.yml")
    assert [h.name for h in facts.hosts] == ["host1", "host2", "host3"]
    vmstore = facts.volumes[2]
    assert vmstore.type == "replica3"
    assert [b.disk for b in vmstore.bricks] == ["gluster_lv_vmstore", "gluster_lv_vmstore",
                                               "vmstore"]
    assert vmstore.size_gb == pytest.approx(300 * GIB_IN_GB, abs=0.001)
    assert any("host3" in a and "/gluster_bricks/vmstore/vmstore" in a
               for a in facts.assumptions)
    assert facts.vms == []  # no he_* variables: no hosted engine VM invented


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace("hc_nodes:", "nodes:", 1), "no `hc_nodes: hosts:` group"),
    (lambda t: t.replace("gluster_features_hci_volumes:", "other_volumes:"),
     "no gluster_features_hci_volumes"),
    (lambda t: t.replace("    host3:\n", "    host3:\n      x: 1\n    host4:\n"),
     "hc_nodes has 4 hosts"),
    (lambda t: t.replace("size: 100G", "size: lots"), "not a size: 'lots'"),
    (lambda t: t.replace("hc_nodes:", "hc_nodes: [", 1), "not valid YAML"),
])
def test_bad_inventories_name_the_file_and_the_problem(tmp_path: Path, edit: object,
                                                        message: str) -> None:
    bad = tmp_path / "inv.yml"
    assert callable(edit)
    bad.write_text(edit((FIXTURES / "gluster_inventory.yml").read_text()))
    with pytest.raises(ImportSourceError) as exc:
        inventory_facts(bad)
    assert str(exc.value).startswith(str(bad))
    assert message in str(exc.value)


def test_host_names_may_be_fqdns() -> None:
    nics = (Nic(name="s", gbps=10, networks=("storage",)),)
    assert Host(name="node1.hci.example.com", nics=nics).name == "node1.hci.example.com"
    for bad in ("Node1", "1node", "a..b", "node1.", "-x", "a" * 64):
        with pytest.raises(ValueError):
            Host(name=bad, nics=nics)
