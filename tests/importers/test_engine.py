"""An oVirt engine's answers, read by the SDK's own XML readers into ``ovirtsdk4.types``,
become a scenario. The recorded answers (fixtures/engine/*.xml) follow the engine API's
documented XML format (hosts, vms with followed disk attachments, storage domains, Gluster
volumes with bricks)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hcisim.importers.engine import engine_facts, read_recorded
from hcisim.importers.facts import ImportSourceError, write_scenario
from hcisim.scenario import load_scenario
from tests.importers.conftest import FIXTURES

types = pytest.importorskip("ovirtsdk4.types")
RECORDED = FIXTURES / "engine"
GIB_IN_GB = 2**30 / 1e9


def test_recorded_answers_are_sdk_types() -> None:
    snap = read_recorded(RECORDED)
    assert all(isinstance(h, types.Host) for h in snap.hosts)
    assert all(isinstance(v, types.Vm) for v in snap.vms)
    assert all(isinstance(v, types.GlusterVolume) for v in snap.gluster_volumes)
    assert len(snap.gluster_volumes[0].bricks) == 3


def test_engine_inventory_becomes_a_scenario(tmp_path: Path) -> None:
    facts = engine_facts(read_recorded(RECORDED), arbiter_volumes=("vmstore",))
    write_scenario(facts, tmp_path / "ovirt.yaml")
    sc = load_scenario(tmp_path / "ovirt.yaml")
    assert sc.host_names == ("node1.hci.example.com", "node2.hci.example.com",
                             "node3.hci.example.com")
    h1, _, h3 = sc.hosts
    assert h1.cores == 64
    assert h1.ram_gib == pytest.approx(404380008448 / 2**30, abs=0.001)
    assert h1.power_management and not h3.power_management
    assert {v.name: v.type for v in sc.volumes} == {
        "engine": "replica3", "data": "replica3", "vmstore": "arbiter"}
    # a volume's size is its storage domain's available + used
    assert sc.volume("data").size_gb == pytest.approx(2048 * GIB_IN_GB, abs=0.001)
    assert sc.volume("vmstore").options.ping_timeout_s == 20
    assert sc.volume("vmstore").options.shard_block_size_mib == 128
    he, db1, _db2, web1, build1 = sc.vms
    assert he.hosted_engine and sc.compute.hosted_engine.volume == "engine"
    assert (db1.host, db1.vcpus, db1.ram_gib, db1.ha, db1.priority, db1.lease) == (
        "node1.hci.example.com", 8, 32.0, True, "high", True)
    assert db1.disks[0].volume == "data"
    assert db1.disks[0].size_gb == pytest.approx(500 * GIB_IN_GB, abs=0.001)
    assert (web1.priority, web1.lease, web1.disks[0].volume) == ("medium", False, "vmstore")
    assert (build1.ha, build1.priority, build1.pinned_to) == (
        False, "low", ("node3.hci.example.com",))


def test_without_arbiter_flag_volumes_are_replica3() -> None:
    facts = engine_facts(read_recorded(RECORDED))
    assert {v.type for v in facts.volumes} == {"replica3"}


def test_a_missing_answer_names_the_file(tmp_path: Path) -> None:
    shutil.copytree(RECORDED, tmp_path / "rec")
    (tmp_path / "rec" / "vms.xml").unlink()
    with pytest.raises(ImportSourceError, match=r"vms\.xml: cannot read file") as exc:
        read_recorded(tmp_path / "rec")
    assert "hosts.xml, vms.xml, storagedomains.xml, glustervolumes.xml" in str(exc.value)


def test_an_answer_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    shutil.copytree(RECORDED, tmp_path / "rec")
    (tmp_path / "rec" / "hosts.xml").write_text("<host id='x'><name>a</name></host>")
    with pytest.raises(ImportSourceError, match=r"hosts\.xml: expected a list of hosts"):
        read_recorded(tmp_path / "rec")


def test_host_names_the_scenario_refuses_are_renamed_and_said(tmp_path: Path) -> None:
    shutil.copytree(RECORDED, tmp_path / "rec")
    hosts = tmp_path / "rec" / "hosts.xml"
    hosts.write_text(hosts.read_text().replace("<name>node2.hci.example.com</name>",
                                               "<name>HCI_node2</name>")
                     .replace("<address>node2.hci.example.com</address>",
                              "<address>192.0.2.12</address>"))
    facts = engine_facts(read_recorded(tmp_path / "rec"))
    assert [h.name for h in facts.hosts] == ["node1.hci.example.com", "host2",
                                             "node3.hci.example.com"]
    assert any("'HCI_node2' is named 'host2'" in a for a in facts.assumptions)
    given = engine_facts(read_recorded(tmp_path / "rec"), host_names={"HCI_node2": "node2"})
    assert given.hosts[1].name == "node2"
