"""The HCI fencing policy (vdsm ``can_fence_host``): what it changes in the model.

A host that loses only its management link keeps its Gluster brick: with oVirt's default
policy the engine powers it off (its brick goes with it) and restarts its HA VMs
elsewhere; with the HCI policy it is not fenced and every VM runs on. A power loss takes
the brick down, so the policy lets that fence through.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hcisim.model import StorageModel
from hcisim.observations import Observations
from hcisim.placement.ha_rules import gluster_fence_veto
from hcisim.scenario import Scenario, load_scenario, with_overrides
from hcisim.scenario.compute import Fencing

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
HCI = {"compute.fencing.skip_fencing_if_gluster_bricks_up": True,
       "compute.fencing.skip_fencing_if_gluster_quorum_not_met": True}
OFF = {"compute.fencing.skip_fencing_if_gluster_bricks_up": False,
       "compute.fencing.skip_fencing_if_gluster_quorum_not_met": False}


def mgmt_cut(**over: object) -> Scenario:
    return with_overrides(load_scenario(SCENARIOS / "lab-ha-mgmt-cut.yaml"), dict(over))


def kinds(obs: Observations, target: str) -> list[str]:
    ev = obs["events"]
    return list(ev[ev["target"] == target]["kind"])


def last_state(obs: Observations, vm: str) -> tuple[str, str]:
    st_ = obs["vm_state"]
    row = st_[st_["vm"] == vm].sort_values("t_start_s").iloc[-1]
    return str(row["state"]), str(row["host"])


@pytest.mark.parametrize(("policy", "what"), [
    ({"skip_fencing_if_gluster_bricks_up": True}, "brick of host3 on data is ONLINE"),
    ({"skip_fencing_if_gluster_quorum_not_met": True}, None),  # the other two bricks are up
])
def test_veto_rule_is_vdsms(policy: dict[str, bool], what: str | None) -> None:
    f = Fencing(**policy)  # type: ignore[arg-type]
    up = {"data": [("host1", True), ("host2", True), ("host3", True)]}
    veto = gluster_fence_veto(f, "host3", up)
    assert (veto is None) if what is None else (veto is not None and what in veto)


def test_quorum_rule_counts_only_online_bricks() -> None:
    f = Fencing(skip_fencing_if_gluster_quorum_not_met=True)
    one_down = {"data": [("host1", True), ("host2", False), ("host3", True)]}
    veto = gluster_fence_veto(f, "host3", one_down)
    assert veto is not None and "quorum" in veto  # host1 alone is below ceil(3 / 2)
    # host3's brick already offline: nothing goes down with the fence, it may go on
    assert gluster_fence_veto(f, "host3", {"data": [("host1", True), ("host2", False),
                                                    ("host3", False)]}) is None
    assert gluster_fence_veto(Fencing(), "host3", one_down) is None  # oVirt's default: off


def test_default_policy_fences_a_management_cut_host_and_restarts_its_ha_vms() -> None:
    obs = StorageModel(mgmt_cut(**OFF)).run()
    assert "host_fenced" in kinds(obs, "host3") and "fence_skipped" not in kinds(obs, "host3")
    for vm in ("db1", "app1"):  # HA: restarted on a survivor
        state, host = last_state(obs, vm)
        assert state == "running" and host in ("host1", "host2")
    assert last_state(obs, "scratch")[0] == "down"  # not HA: the fence killed it


def test_hci_policy_skips_the_fence_while_the_brick_is_up() -> None:
    sc = mgmt_cut(**HCI)
    obs = StorageModel(sc).run()
    ev = obs["events"]
    skipped = ev[(ev["kind"] == "fence_skipped") & (ev["target"] == "host3")]
    assert len(skipped) == 1 and "ONLINE" in str(skipped["detail"].iloc[0])
    assert "host_non_responsive" in kinds(obs, "host3")
    assert "host_fenced" not in kinds(obs, "host3")
    for vm in ("db1", "app1", "scratch"):  # every VM runs on, where it was, never down
        st_ = obs["vm_state"]
        assert set(st_[st_["vm"] == vm]["state"]) == {"running"}
        assert last_state(obs, vm) == ("running", "host3")


def test_hci_quorum_policy_alone_skips_the_fence_when_a_peer_brick_is_down() -> None:
    # host2's brick crashed before the cut: fencing host3 would leave host1's brick alone
    crash = {"at_s": 30, "kind": "brick_crash", "target": "host2", "volume": "data"}
    sc = mgmt_cut(**{**OFF, "compute.fencing.skip_fencing_if_gluster_quorum_not_met": True})
    sc = with_overrides(sc, {"faults": [crash, sc.faults[0].model_dump(exclude_none=True)]})
    obs = StorageModel(sc).run()
    ev = obs["events"]
    skipped = ev[(ev["kind"] == "fence_skipped") & (ev["target"] == "host3")]
    assert len(skipped) == 1 and "quorum" in str(skipped["detail"].iloc[0])
    # without the crash the same policy lets the fence through
    plain = StorageModel(mgmt_cut(**{**OFF,
                                     "compute.fencing.skip_fencing_if_gluster_quorum_not_met":
                                     True})).run()
    assert "host_fenced" in kinds(plain, "host3")


def test_hci_policy_lets_a_power_loss_fence_through() -> None:
    sc = with_overrides(load_scenario(SCENARIOS / "lab-ha-power-loss.yaml"), dict(HCI))
    obs = StorageModel(sc).run()
    assert "host_fenced" in kinds(obs, "host3") and "fence_skipped" not in kinds(obs, "host3")
    assert last_state(obs, "db1")[0] == "running" and last_state(obs, "db1")[1] != "host3"
