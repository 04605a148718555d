"""Gluster CLI XML (captured from the netns lab's Gluster 10.3) becomes a scenario.

Fixtures: ``gluster volume info --xml``, ``volume get VOL all --xml`` for engine, data and
vmstore, ``volume status all detail --xml`` and a failed ``volume get nosuch all --xml``,
run against ``hcisim lab up scenarios/lab-power-loss.yaml`` (replica 3 engine and data,
vmstore with an arbiter, ping-timeout 5 s, shard block 4 MB, 2 GB brick disks).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hcisim.importers.facts import ImportSourceError, write_scenario
from hcisim.importers.gluster import CliOutput, GlusterOutputs, gluster_facts, read_files
from hcisim.scenario import load_scenario
from tests.importers.conftest import FIXTURES

LAB = {"10.213.0.11": "host1", "10.213.0.12": "host2", "10.213.0.13": "host3"}
GETS = {v: FIXTURES / f"lab-volume-get-{v}.xml" for v in ("engine", "data", "vmstore")}


def test_lab_volumes_with_options_and_sizes(tmp_path: Path) -> None:
    facts = gluster_facts(read_files(FIXTURES / "lab-volume-info.xml", GETS,
                                     FIXTURES / "lab-volume-status-detail.xml"),
                          host_names=LAB, name="lab")
    write_scenario(facts, tmp_path / "lab.yaml")
    sc = load_scenario(tmp_path / "lab.yaml")
    lab = load_scenario(Path("scenarios/lab-power-loss.yaml"))
    assert sc.host_names == lab.host_names
    assert {v.name: v.type for v in sc.volumes} == {v.name: v.type for v in lab.volumes}
    vmstore = sc.volume("vmstore")
    assert vmstore.bricks[2].host == "host3"  # the brick Gluster marks isArbiter
    for v in sc.volumes:
        want = lab.volume(v.name).options
        assert v.options.ping_timeout_s == want.ping_timeout_s == 5
        assert v.options.tcp_user_timeout_s == want.tcp_user_timeout_s == 5
        assert v.options.shard_block_size_mib == want.shard_block_size_mib == 4
        assert v.options.quorum_type == "auto" and v.options.eager_lock
        # a 2 GB loop device, less the XFS metadata: sizeTotal 1932890112 bytes
        assert v.size_gb == pytest.approx(1.933)
    assert sc.host("host2").disks[0].name == "loop1"


def test_volume_get_lists_every_option_with_its_default() -> None:
    from hcisim.lab.gluster import parse_volume_get

    opts = parse_volume_get(GETS["data"].read_text())
    assert len(opts) == 336  # <count>342</count>: Gluster 10.3 prints a few names twice
    assert opts["cluster.lookup-unhashed"] == "on"  # printed "on (DEFAULT)"


def test_without_get_status_or_names_the_gaps_are_written_down() -> None:
    facts = gluster_facts(read_files(FIXTURES / "lab-volume-info.xml"), volumes=("data",))
    assert [v.name for v in facts.volumes] == ["data"]
    assert [h.name for h in facts.hosts] == ["host1", "host2", "host3"]  # IPs are not names
    text = "\n".join(facts.assumptions)
    assert "host '10.213.0.12' is named 'host2'" in text
    assert "volume data: size unknown" in text
    assert "only the options `volume info` lists" in text
    # volume info lists the options that were set: those still arrive
    assert facts.volumes[0].options["ping_timeout_s"] == 5


def test_a_failed_gluster_command_is_reported_with_its_reason() -> None:
    nosuch = FIXTURES / "lab-volume-get-nosuch.xml"
    with pytest.raises(ImportSourceError) as exc:
        gluster_facts(read_files(FIXTURES / "lab-volume-info.xml", {"data": nosuch}))
    assert f"{nosuch}: volume get: Volume nosuch does not exist" in str(exc.value)


@pytest.mark.parametrize(("content", "message"), [
    ("not xml at all", "no XML in the output"),
    ("<html><body/></html>", "no XML in the output"),
    ("<cliOutput><opRet>0</opRet></cliOutput>", "no <volInfo> in <cliOutput>"),
])
def test_wrong_files_are_named(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "info.xml"
    bad.write_text(content)
    with pytest.raises(ImportSourceError, match=message) as exc:
        gluster_facts(read_files(bad))
    assert str(bad) in str(exc.value)


def test_volume_get_output_given_as_volume_info_is_refused() -> None:
    with pytest.raises(ImportSourceError, match="expected the output of `gluster volume info"):
        gluster_facts(read_files(GETS["data"]))


def test_unknown_volume_is_refused() -> None:
    with pytest.raises(ImportSourceError, match="no volume 'nope' \\(has: data, engine, "
                                                "vmstore\\)"):
        gluster_facts(read_files(FIXTURES / "lab-volume-info.xml"), volumes=("nope",))


def test_a_chosen_host_name_must_be_valid() -> None:
    with pytest.raises(ImportSourceError, match=r"--host-name 10\.213\.0\.11=Host_1: not a valid"):
        gluster_facts(read_files(FIXTURES / "lab-volume-info.xml"),
                      host_names={"10.213.0.11": "Host_1"})


def test_outputs_from_a_node_are_read_like_files() -> None:
    """read_node's result (a node's answers) goes through the same parsing as files."""
    outputs = GlusterOutputs(
        CliOutput("host1: gluster --xml volume info", (FIXTURES / "lab-volume-info.xml")
                  .read_text()),
        {"vmstore": CliOutput("host1: gluster --xml volume get vmstore all",
                              GETS["vmstore"].read_text())})
    facts = gluster_facts(outputs, volumes=("vmstore",), name="node")
    assert facts.volumes[0].type == "arbiter"
    assert facts.source == "host1: gluster --xml volume info"
