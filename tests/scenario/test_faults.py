"""The fault vocabulary: one class per kind with only its fields, and one table of traits."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from hcisim.scenario import (
    FAULT_KINDS,
    FAULT_TABLE,
    BrickHang,
    NodePowerLoss,
    ScenarioError,
    json_schema,
    make_fault,
    parse_scenario,
)
from hcisim.scenario.faults import FAULT_CLASSES

from .test_load import MINIMAL


def _problems(faults: str) -> list[str]:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(MINIMAL + faults, "f.yaml")
    return exc.value.problems


def test_every_kind_has_a_class_and_a_row() -> None:
    assert set(FAULT_CLASSES) == set(FAULT_TABLE) == set(FAULT_KINDS)
    for kind, cls in FAULT_CLASSES.items():
        assert cls.model_fields["kind"].annotation.__args__ == (kind,)  # type: ignore[union-attr]


def test_a_field_of_another_kind_is_refused_with_path_and_line() -> None:
    problems = _problems("faults:\n  - {at_s: 5, kind: node_power_loss, target: h1,"
                         " network: storage}\n")
    assert len(problems) == 1
    assert problems[0].startswith("faults[0].network: not a field of node_power_loss (line ")


def test_required_field_names_the_kind() -> None:
    assert _problems("faults: [{at_s: 5, kind: brick_hang, target: h1}]\n") == [
        "faults[0].volume: required for brick_hang (line 9)"]


def test_unknown_kind_lists_the_kinds() -> None:
    (p,) = _problems("faults: [{at_s: 5, kind: meteor, target: h1}]\n")
    assert p.startswith("faults[0].kind: must be one of ") and "brick_hang" in p


def test_loaded_faults_are_their_kind_class() -> None:
    sc = parse_scenario(MINIMAL + "faults:\n  - {at_s: 5, kind: node_power_loss, target: h1}\n"
                        "  - {at_s: 9, kind: brick_hang, target: h2, volume: data,"
                        " duration_s: 30}\n")
    loss, hang = sc.faults
    assert isinstance(loss, NodePowerLoss) and isinstance(hang, BrickHang)
    assert hang.end_s == 39 and hang.silent and not hang.traits.reaches_compute
    assert loss.host_loss == "power_loss" and loss.traits.kills_vms


def test_management_is_cut_only_when_the_fault_names_it() -> None:
    storage = make_fault(at_s=0, kind="partition", target="h1")
    both = make_fault(at_s=0, kind="partition", target="h1", network="all")
    assert storage.networks == ("storage",) and storage.host_loss is None
    assert both.networks == ("storage", "management") and both.host_loss == "management_cut"
    assert not both.traits.kills_vms  # a management cut leaves the VMs running


def test_nic_loss_cuts_one_network_only() -> None:
    with pytest.raises(ValidationError):
        make_fault(at_s=0, kind="nic_loss", target="h1", network="all")


def test_table_rows_are_consistent() -> None:
    for kind, t in FAULT_TABLE.items():
        # a fault compute sees as a lost host is a host window for the claims
        assert not t.reaches_compute or t.host_window, kind
        # only a kind whose RST never comes can be silent; a slowdown loses nothing
        assert not (t.slows and (t.silent or t.host_loss)), kind
    assert [k for k, t in FAULT_TABLE.items() if t.full_heal] == ["disk_failure"]
    assert not FAULT_TABLE["brick_hang"].host_window  # the host and its VMs stay up
    assert FAULT_TABLE["brick_hang"].glusterd_runs


def test_json_schema_refuses_a_field_of_another_kind() -> None:
    schema = json.loads(json_schema())
    data = yaml.safe_load(MINIMAL)
    data["faults"] = [{"at_s": 5, "kind": "brick_hang", "target": "h1", "volume": "data"}]
    jsonschema.validate(data, schema)
    data["faults"] = [{"at_s": 5, "kind": "node_power_loss", "target": "h1",
                       "network": "storage"}]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
