"""The netns lab's migration link: its own veth per host, its own subnet, and a fault's
networks mapped to the links that really carry them (no root needed: naming only)."""

from __future__ import annotations

from pathlib import Path

from hcisim.lab.netns.layout import LabLayout
from hcisim.lab.netns.network import ROLES, interfaces
from hcisim.scenario import load_scenario

SCENARIOS = Path(__file__).parents[2] / "scenarios"


def test_each_network_has_its_own_link_and_subnet() -> None:
    lab = LabLayout.make("t", 7, ["host1", "host2", "host3"], Path("/nonexistent"))
    h = lab.host("host2")
    assert interfaces(h, ROLES) == ["sto0", "mgmt0", "mig0"]
    assert interfaces(h, ("migration",)) == ["mig0"]  # no longer the storage link
    addrs = [x.address(n) for x in lab.hosts for n in ROLES]
    assert len(set(addrs)) == len(addrs)
    subnets = {n: {x.address(n).rpartition(".")[0] for x in lab.hosts} for n in ROLES}
    assert all(len(s) == 1 for s in subnets.values())
    assert len({next(iter(s)) for s in subnets.values()}) == 3
    # another lab index: no subnet shared with this one
    other = LabLayout.make("u", 8, ["host1"], Path("/nonexistent")).hosts[0]
    assert not {other.address(n) for n in ROLES} & set(addrs)
    assert {h.switch_storage_if, h.switch_mgmt_if, h.switch_mig_if} == {"s1", "m1", "g1"}


def test_a_migration_cut_takes_the_link_of_the_nic_carrying_it() -> None:
    """Dedicated migration NIC: only mig0; migration on the management NIC: mgmt0 (and the
    unused mig0), as the fault's bound networks say."""
    lab = LabLayout.make("t", 0, ["host1", "host2", "host3"], Path("/nonexistent"))
    h = lab.host("host2")
    dedicated = load_scenario(SCENARIOS / "lab-migration-nic-loss.yaml").faults[0]
    assert interfaces(h, dedicated.networks) == ["mig0"]
    shared = load_scenario(SCENARIOS / "lab-migration-link-loss.yaml")
    cut = shared.faults[0].model_copy(update={"network": "migration"})
    cut.bind_networks(tuple(n.networks for n in shared.host("host2").nics))
    assert interfaces(h, cut.networks) == ["mgmt0", "mig0"]
