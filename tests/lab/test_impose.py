"""Like for like without a lab: what is imposed for a scenario, and the cgroup files written,
on a fake cgroup tree (the real kernel is exercised by tests/lab/test_impose_lab.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcisim.lab.netns import impose, network
from hcisim.lab.netns.layout import LabLayout
from hcisim.lab.scale import LabScale, as_built
from hcisim.scenario import load_scenario, parse_scenario, with_overrides
from tests.lab.scenarios import small

SHARED_NIC = """
name: shared
hosts:
  - &host
    name: host1
    disks: [{name: b0, capacity_gb: 1, bandwidth_mb_s: 400, iops: 8000}]
    nics: [{name: n0, gbps: 2, networks: [management, storage]}]
  - {<<: *host, name: host2}
  - {<<: *host, name: host3}
volumes:
  - {name: data, type: replica3, size_gb: 0.5,
     bricks: [{host: host1}, {host: host2}, {host: host3}]}
"""


def test_plans_scale_the_hardware_like_the_io() -> None:
    sc = parse_scenario(SHARED_NIC, "shared")
    scale = LabScale(size=1.0, io=0.25)
    assert impose.link_plan(sc, scale)["host2"] == {"storage": 500.0, "management": 500.0}
    assert impose.disk_plan(sc, scale)["host3"]["b0"] == {
        "read_bps": 100_000_000, "write_bps": 100_000_000, "read_iops": 2000,
        "write_iops": 2000}


def test_impose_is_opt_in() -> None:
    assert small().lab.impose is False
    text = SHARED_NIC + "lab: {impose: true}\n"
    assert parse_scenario(text, "shared").lab.impose is True


def test_cgroup_flavour(tmp_path: Path) -> None:
    assert impose.cgroup_flavour(tmp_path)[0] is None
    (tmp_path / "blkio").mkdir()
    (tmp_path / "blkio" / impose.V1_FILES["write_bps"]).write_text("")
    flavour, why = impose.cgroup_flavour(tmp_path)
    assert flavour == "v1" and "buffered writeback" in why
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("memory pids\n")
    assert impose.cgroup_flavour(tmp_path)[0] == "v1"  # hybrid without io: still v1
    (tmp_path / "cgroup.controllers").write_text("cpu io memory\n")
    assert impose.cgroup_flavour(tmp_path) == ("v2", "cgroup v2 io.max")


@pytest.mark.parametrize("flavour", ["v1", "v2"])
def test_limits_written_per_device(tmp_path: Path, flavour: str) -> None:
    if flavour == "v2":
        (tmp_path / "cgroup.controllers").write_text("io\n")
    else:
        (tmp_path / "blkio").mkdir()
    cg = impose.make_cgroup(impose.lab_cgroup("lab1", flavour, tmp_path), "host2", flavour)
    limit = {"read_bps": 10, "write_bps": 20, "read_iops": 3, "write_iops": 4}
    impose.write_limits(cg, flavour, "7:3", limit)
    if flavour == "v1":
        assert cg == tmp_path / "blkio" / "hcisim-lab1" / "host2"
        assert (cg / "blkio.throttle.write_bps_device").read_text() == "7:3 20\n"
        assert (cg / "blkio.throttle.read_iops_device").read_text() == "7:3 3\n"
    else:
        assert (cg / "io.max").read_text() == "7:3 rbps=10 wbps=20 riops=3 wiops=4\n"
        assert (tmp_path / "cgroup.subtree_control").read_text() == "+io\n"
    assert impose.lab_cgroups("lab1", tmp_path)[:1] == [cg]


def test_no_controller_is_reported_not_raised(tmp_path: Path) -> None:
    sc = small()
    lab = LabLayout.make("x", 1, sc.host_names, tmp_path)
    report = impose.apply_disks(lab, sc, LabScale(), root=tmp_path / "nocg")
    assert report["disks"] == {}
    assert report["not_imposed"] == ["disk limits: no blkio (v1) or io (v2) controller "
                                     "mounted"]


def test_unshape_returns_to_the_imposed_rate(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    sc = small()
    lab = LabLayout.make("x", 1, sc.host_names, tmp_path)
    lab.dir.mkdir(parents=True, exist_ok=True)
    calls: list[list[str]] = []
    monkeypatch.setattr(network, "run", lambda step, argv, **kw: calls.append(argv))
    h = lab.host("host1")
    network.unshape(lab, h, ("storage",))
    assert [c[:3] for c in calls] == [["tc", "qdisc", "del"]] * 2
    calls.clear()
    (lab.state_file).write_text('{"imposed_links": {"host1": {"storage": 50.0}}}')
    network.shape(lab, h, ("storage",), 400.0)  # a fault never makes the NIC faster
    assert all("50.000mbit" in c for c in calls) and len(calls) == 2
    calls.clear()
    network.unshape(lab, h, ("storage", "management"))
    assert [c[2] for c in calls] == ["replace", "replace", "del", "del"]
    assert all("10ms" in c for c in calls[:2])  # the NIC's short queue


def test_as_built_carries_the_imposed_hardware() -> None:
    """The model is compared with what the lab imposed: NIC and disk speeds times io, and
    untouched when nothing is imposed."""
    sc = load_scenario(None)
    scale = LabScale.fit(sc)
    assert scale.io < 1
    plain = as_built(sc, scale)
    assert plain.hosts[0].nics == sc.hosts[0].nics
    assert plain.hosts[0].disks[0].bandwidth_mb_s == sc.hosts[0].disks[0].bandwidth_mb_s
    imposed = as_built(with_overrides(sc, {"lab.impose": True}), scale)
    for h0, h1 in zip(sc.hosts, imposed.hosts, strict=True):
        assert [n.gbps for n in h1.nics] == [n.gbps * scale.io for n in h0.nics]
        assert [(d.bandwidth_mb_s, d.iops) for d in h1.disks] == [
            (d.bandwidth_mb_s * scale.io, d.iops * scale.io) for d in h0.disks]
    lab_mbit = impose.link_plan(with_overrides(sc, {"lab.impose": True}), scale)
    h = imposed.hosts[0]
    assert lab_mbit[h.name]["storage"] == pytest.approx(h.storage_gbps() * 1000)
