"""``network: migration`` on a fault: the NIC(s) carrying migration go down, with every
network they carry, and a host without such a NIC is refused at load."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.scenario import ScenarioError, make_fault, parse_scenario
from hcisim.scenario.cluster import NetworkRole

ROLES: tuple[NetworkRole, ...] = ("storage", "management", "migration")


def _scenario(nics: str, fault: str) -> str:
    host = "  - {name: %s, nics: " + nics + "}\n"
    return ("name: t\nhosts:\n" + "".join(host % h for h in ("h1", "h2", "h3"))
            + "volumes:\n  - {name: data, type: replica3, bricks: [{host: h1}, {host: h2},"
            " {host: h3}]}\nfaults:\n  - " + fault + "\n")


DEDICATED = ("[{name: sto0, gbps: 10, networks: [storage]}, {name: mgmt0, gbps: 1,"
             " networks: [management]}, {name: mig0, gbps: 10, networks: [migration]}]")
ON_MGMT = ("[{name: sto0, gbps: 10, networks: [storage]}, {name: mgmt0, gbps: 1,"
           " networks: [management, migration]}]")
NONE = ("[{name: sto0, gbps: 10, networks: [storage]}, {name: mgmt0, gbps: 1,"
        " networks: [management]}]")


def test_a_dedicated_migration_nic_cut_is_not_a_host_loss() -> None:
    sc = parse_scenario(_scenario(DEDICATED, "{at_s: 5, kind: nic_loss, target: h2,"
                                  " network: migration, duration_s: 10}"))
    (f,) = sc.faults
    assert f.networks == ("migration",)
    assert f.host_loss is None and not f.traits.kills_vms


def test_migration_on_the_management_nic_takes_management_with_it() -> None:
    sc = parse_scenario(_scenario(ON_MGMT, "{at_s: 5, kind: nic_loss, target: h2,"
                                  " network: migration}"))
    (f,) = sc.faults
    assert f.networks == ("management", "migration")
    assert f.host_loss == "management_cut"


@pytest.mark.parametrize("fault", [
    "{at_s: 5, kind: nic_loss, target: h3, network: migration}",
    "{at_s: 5, kind: partition, target: h3, network: migration}",
    "{at_s: 5, kind: link_slowdown, target: h3, network: migration, rate_mbit: 100}",
])
def test_a_host_without_a_migration_nic_is_refused_with_path_and_line(fault: str) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(_scenario(NONE, fault), "t.yaml")
    assert exc.value.problems == [
        "faults[0].network: host 'h3' has no NIC carrying the migration network (its "
        "migrations use management: name that) (line 9)"]


def test_partition_and_slowdown_take_the_migration_network() -> None:
    sc = parse_scenario(_scenario(DEDICATED, "{at_s: 5, kind: link_slowdown, target: h1,"
                                  " network: migration, rate_mbit: 100}"))
    assert sc.faults[0].networks == ("migration",) and sc.faults[0].host_loss is None
    sc = parse_scenario(_scenario(ON_MGMT, "{at_s: 5, kind: partition, target: h1,"
                                  " network: migration, peers: [h2]}"))
    assert sc.faults[0].networks == ("management", "migration")


def test_other_choices_keep_naming_their_roles() -> None:
    """Unchanged for storage, management and all (the model's outputs for them stay bit for
    bit the same): a storage NIC that also carries migration still reads ``storage``."""
    shared = ("[{name: sto0, gbps: 10, networks: [storage, migration]},"
              " {name: mgmt0, gbps: 1, networks: [management]}]")
    for choice, roles in (("storage", ("storage",)), ("management", ("management",))):
        sc = parse_scenario(_scenario(shared, f"{{at_s: 5, kind: nic_loss, target: h1,"
                                      f" network: {choice}}}"))
        assert sc.faults[0].networks == roles
    sc = parse_scenario(_scenario(DEDICATED, "{at_s: 5, kind: partition, target: h1,"
                                  " network: all}"))
    assert sc.faults[0].networks == ("storage", "management")


def test_an_unbound_fault_names_the_role_only() -> None:
    """Outside a scenario (no host to read NICs from) the fault says what it names."""
    assert make_fault(at_s=0, kind="nic_loss", target="h1", network="migration"
                      ).networks == ("migration",)


# A host's NICs: each role on one of up to three NICs (storage and management required by
# the scenario's check; migration optionally on none).
_placement = st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(-1, 2))


@settings(max_examples=60, deadline=None)
@given(_placement)
def test_the_cut_is_every_network_on_the_migration_nic(place: tuple[int, int, int]) -> None:
    on: dict[int, list[str]] = {}
    for role, nic in zip(ROLES, place, strict=True):
        if nic >= 0:
            on.setdefault(nic, []).append(role)
    nics = "[" + ", ".join(f"{{name: n{i}, gbps: 10, networks: [{', '.join(rs)}]}}"
                           for i, rs in sorted(on.items())) + "]"
    text = _scenario(nics, "{at_s: 5, kind: nic_loss, target: h1, network: migration}")
    if place[2] < 0:
        with pytest.raises(ScenarioError, match="no NIC carrying the migration network"):
            parse_scenario(text)
        return
    (f,) = parse_scenario(text).faults
    expected = tuple(r for r in ROLES if r in on[place[2]])
    assert f.networks == expected
    assert (f.host_loss == "management_cut") == ("management" in expected)


def test_a_fault_made_for_a_scenario_is_bound_like_its_own() -> None:
    """``hcisim lab fault`` and a lab reading its active faults back make them through the
    scenario: a shared NIC's cut is restored whole, not only its migration part."""
    sc = parse_scenario(_scenario(ON_MGMT, "{at_s: 5, kind: nic_loss, target: h2,"
                                  " network: migration}"))
    (f,) = sc.faults
    again = sc.make_fault(**f.model_dump(mode="json"))
    assert again.networks == f.networks == ("management", "migration")
    assert again.host_loss == "management_cut"
    bare = parse_scenario(_scenario(NONE, "{at_s: 5, kind: nic_loss, target: h2}"))
    with pytest.raises(ValueError, match="host 'h2' has no NIC carrying the migration"):
        bare.make_fault(at_s=0, kind="nic_loss", target="h2", network="migration")
    assert bare.make_fault(at_s=0, kind="nic_loss", target="h2").networks == ("storage",)
