"""Scenario files: validation names the bad field, defaults resolve, saving round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.scenario import (
    Scenario,
    ScenarioError,
    dump_scenario,
    json_schema,
    load_scenario,
    parse_scenario,
    with_overrides,
)

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = sorted((ROOT / "scenarios").glob("*.yaml"))

MINIMAL = """
name: t
hosts:
  - {name: h1, nics: [{name: n, gbps: 10, networks: [storage, management]}]}
  - {name: h2, nics: [{name: n, gbps: 10, networks: [storage, management]}]}
  - {name: h3, nics: [{name: n, gbps: 10, networks: [storage, management]}]}
volumes:
  - {name: data, type: replica3, bricks: [{host: h1}, {host: h2}, {host: h3}]}
"""


def _with(extra: str) -> str:
    return MINIMAL + extra


def _problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(text, "t.yaml")
    return exc.value.problems


def test_minimal_scenario_gets_virt_group_defaults() -> None:
    sc = parse_scenario(MINIMAL)
    opts = sc.volume("data").options
    assert (opts.ping_timeout_s, opts.shard_block_size_mib, opts.shd_max_threads) == (20, 64, 8)
    assert opts.quorum_type == "auto" and opts.server_quorum_type == "server"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL.replace("type: replica3", "type: replica4"),
         "volumes[0].type: must be replica3 or arbiter"),
        (MINIMAL.replace("{host: h3}", "{host: h9}"), "volumes[0].bricks[2].host: unknown host"),
        (MINIMAL.replace("{host: h3}", ""), "volumes[0].bricks: a replica3 volume needs exactly 3"),
        (MINIMAL.replace("type: replica3", "type: arbiter").replace(", {host: h3}", ""),
         "volumes[0].bricks: a arbiter volume needs exactly 3 bricks, got 2"),
        (_with("colour: red\n"), "colour: unknown key"),
        (MINIMAL.replace("gbps: 10", "gbps: fast", 1), "hosts[0].nics[0].gbps"),
        (_with("faults: [{at_s: 5, kind: node_power_loss, target: h7}]\n"),
         "faults[0].target: unknown host 'h7'"),
        (_with("faults: [{at_s: 5, kind: meteor, target: h1}]\n"), "faults[0].kind: must be"),
        (_with("faults: [{at_s: 5, kind: brick_crash, target: h1, volume: nope}]\n"),
         "faults[0].volume: unknown volume 'nope'"),
        (_with("vms: [{name: a, host: h1, disks: [{volume: other}]}]\n"),
         "vms[0].disks[0].volume: unknown volume 'other'"),
        (_with("vms: [{name: a, disks: [{volume: data, io: nope}]}]\n"),
         "vms[0].disks[0].io: unknown io profile 'nope'"),
        (_with("io_profiles: {p: {read_pct: 50}}\n"), "io_profiles.p: give exactly one of"),
        (_with("claims: [{kind: heal_within, within_s: 5, volume: zz}]\n"),
         "claims[0].volume: unknown volume 'zz'"),
        (_with("faults: [{at_s: 5, kind: link_slowdown, target: h1}]\n"),
         "faults[0].rate_mbit: required for link_slowdown"),
    ],
)
def test_bad_input_names_the_field(text: str, expected: str) -> None:
    problems = _problems(text)
    assert any(expected in p for p in problems), problems


def test_errors_carry_the_yaml_line() -> None:
    problems = _problems(MINIMAL.replace("type: replica3", "type: raid5"))
    # line 8: MINIMAL opens with a blank line
    assert problems == ["volumes[0].type: must be replica3 or arbiter (line 8)"]


def test_not_yaml_and_not_a_mapping() -> None:
    assert "not valid YAML" in _problems("name: [unclosed")[0]
    assert "mapping" in _problems("- just\n- a list\n")[0]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read file"):
        load_scenario(tmp_path / "nope.yaml")


def test_scenario_is_immutable() -> None:
    sc = parse_scenario(MINIMAL)
    with pytest.raises(ValueError):
        sc.hosts[0].cores = 4  # type: ignore[misc]


@pytest.mark.parametrize("path", CATALOGUE, ids=lambda p: p.name)
def test_catalogue_round_trips(path: Path) -> None:
    """Saving the resolved scenario and loading it again gives the very same scenario."""
    sc = load_scenario(path)
    again = parse_scenario(dump_scenario(sc))
    assert again == sc


@pytest.mark.parametrize("path", CATALOGUE, ids=lambda p: p.name)
def test_json_schema_accepts_the_catalogue(path: Path) -> None:
    schema = json.loads(json_schema())
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_json_schema_rejects_a_bad_type() -> None:
    schema = json.loads(json_schema())
    data = yaml.safe_load(MINIMAL.replace("type: replica3", "type: raid5"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


@settings(max_examples=40, deadline=None)
@given(ram=st.floats(1, 4096), gbps=st.sampled_from([1, 10, 25, 100]),
       vtype=st.sampled_from(["replica3", "arbiter"]))
def test_overrides_change_only_what_they_name(ram: float, gbps: float, vtype: str) -> None:
    base = load_scenario()
    sc = with_overrides(base, {"hosts[1].ram_gib": ram, "hosts[0].nics[1].gbps": gbps,
                               "volumes[1].type": vtype})
    assert sc.hosts[1].ram_gib == ram and sc.hosts[0].ram_gib == base.hosts[0].ram_gib
    assert sc.hosts[0].nics[1].gbps == gbps and sc.volumes[1].type == vtype
    assert sc.volumes[0] == base.volumes[0]


def test_override_of_unknown_path_is_an_error() -> None:
    with pytest.raises(ScenarioError, match="no such field"):
        with_overrides(load_scenario(), {"hosts[0].colour": 1})
    with pytest.raises(ScenarioError, match=r"hosts\[0\].ram_gib"):
        with_overrides(load_scenario(), {"hosts[0].ram_gib": -5})


def test_default_scenario_is_the_classic_hci_setup() -> None:
    sc: Scenario = load_scenario()
    assert len(sc.hosts) == 3 and all(h.ram_gib >= 32 for h in sc.hosts)
    assert {v.name for v in sc.volumes} == {"engine", "data", "vmstore"}
    assert all(v.type == "replica3" for v in sc.volumes)
    for h in sc.hosts:
        storage, mgmt = h.nic_for("storage"), h.nic_for("management")
        assert storage is not None and mgmt is not None and storage is not mgmt
        assert storage.gbps >= 10
    assert len(sc.vms) >= 12
    assert [f.kind for f in sc.faults] == ["node_power_loss"]
