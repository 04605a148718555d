"""brick_hang in the model: a silent loss of one brick; its host, glusterd and VMs stay up."""

from __future__ import annotations

from hcisim.model import simulate
from hcisim.scenario import Scenario

from .test_examples import OLTP, scenario, vm

PING_TIMEOUT_S = 20.0  # the virt group's default


def _stall_s(sc: Scenario, vm_name: str) -> float:
    io = simulate(sc)["vm_io"]
    rows = io[(io["vm"] == vm_name) & (io["status"] == "stalled")]
    return float((rows["t_end_s"] - rows["t_start_s"]).sum())


def test_brick_hang_stalls_clients_until_ping_timeout_and_crash_does_not() -> None:
    vms = [vm("a", "host1", OLTP, 2.0), vm("b", "host2", OLTP, 2.0)]
    hang = scenario(vms, [{"at_s": 100, "kind": "brick_hang", "target": "host2",
                           "volume": "data", "duration_s": 120}], duration=400.0)
    crash = scenario(vms, [{"at_s": 100, "kind": "brick_crash", "target": "host2",
                            "volume": "data", "duration_s": 120}], duration=400.0)
    assert _stall_s(hang, "a") >= PING_TIMEOUT_S  # no RST: wait for ping-timeout
    assert _stall_s(crash, "a") == 0.0  # RST: switch over at once


def test_brick_hang_keeps_server_quorum_and_the_hosts_vms() -> None:
    sc = scenario([vm("b", "host2", OLTP, 2.0)],
                  [{"at_s": 100, "kind": "brick_hang", "target": "host2", "volume": "data",
                    "duration_s": 120}], duration=400.0)
    obs = simulate(sc)
    kinds = set(obs["events"]["kind"])
    assert "server_quorum_lost" not in kinds and "vm_down" not in kinds
    assert "brick_down" in kinds  # the clients did mark the brick down
    assert set(obs["vm_state"]["state"]) == {"running"}
    assert not obs["heal"].empty  # the brick missed writes and was healed
