"""Catalogue scenarios with real guests (``lab: {vms: guests}``), end to end through
:mod:`hcisim.engines`: the lab boots a qemu guest per VM, plays the scenario, and the
scenario's claims are judged on what the lab observed, as ``hcisim run --engine lab`` does.
Needs root, qemu-system-x86, gcc, apt and the netns lab's packages.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hcisim.compare import compare_observations
from hcisim.engines import observe
from hcisim.observations import Observations
from hcisim.runner import judge
from hcisim.scenario import load_scenario

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SCENARIOS = Path(__file__).parents[2] / "scenarios"


def verdicts(obs_sc: str) -> tuple[Observations, dict[str, str]]:
    sc = load_scenario(SCENARIOS / obs_sc)
    obs = observe("lab", sc)
    result = judge(sc, obs)
    return obs, {v.name: v.verdict for v in result.verdicts}


PAGE = 4096
BRICK_DOWN_S = 8.0  # lab-guests-node-loss: host2 loses power at 8 s for 10 s


def lost_rows(obs: Observations) -> list[tuple[str, float, float, float, int]]:
    w = obs["writes"]
    lost = w[w["lost_bytes"] > 0]
    return [(str(vm), float(a), float(b), float(n), int(c)) for vm, a, b, n, c in zip(
        lost["vm"], lost["t_start_s"], lost["t_end_s"], lost["lost_bytes"], lost["copies"],
        strict=True)]


def afr_stale_page_signature(obs: Observations, brick_gone_s: float,
                             writers: set[str] | None = None) -> bool:
    """The loss Gluster 10.3's stale page read leaves: only records written after a brick
    went (``brick_gone_s``: it missed them) by VMs that wrote on (``writers``, None: any),
    at most one 4 KiB page per VM, and no VM ran twice; anything else is not that defect
    and fails the test."""
    rows = lost_rows(obs)
    per_vm: dict[str, float] = {}
    for vm, t0, _, lost_b, _ in rows:
        if (writers is not None and vm not in writers) or t0 < brick_gone_s - 1.0:
            return False
        per_vm[vm] = per_vm.get(vm, 0.0) + lost_b
    twice = any(h.get("ran_twice") for h in obs.meta["history"].values())
    return bool(rows) and not twice and all(b <= PAGE for b in per_vm.values())


def test_survivors_ride_through_a_node_loss_as_guests() -> None:
    obs, got = verdicts("lab-guests-node-loss.yaml")
    st = obs["vm_state"]
    print(st.to_string(), obs.meta["guest_boot_s"], got, sep="\n")
    # vm2 died with host2 (SIGKILL of its qemu, frozen before the cut so that it never saw
    # its storage go); the survivors only ever ran. The harness's part: checked before the
    # Gluster defect below may end the test
    vm2 = st[st["vm"] == "vm2"].sort_values("t_start_s")
    assert list(vm2["state"]) == ["running", "down"]
    assert 7.5 < float(vm2["t_start_s"].iloc[1]) < 10
    for vm in ("vm1", "vm3"):
        assert set(st[st["vm"] == vm]["state"]) == {"running"}
    # the survivors' guests saw their writes stall while host2's brick was silently gone
    io = obs["vm_io"]
    stalled = io[io["vm"].isin(["vm1", "vm3"]) & (io["status"] == "stalled")]
    assert not stalled.empty and float(stalled["t_start_s"].min()) >= 7.5
    if (got["acknowledged on two bricks"] == "fail"
            and afr_stale_page_signature(obs, BRICK_DOWN_S, {"vm1", "vm3"})):
        # Gluster 10.3, not the harness (docs/guests.md, "Acknowledged writes lost around a
        # brick's return"; tests/guests/test_quorum_loss_rmw.py): host2's brick returns at
        # 18 s while vm1/vm3 write; a stale 4 KiB page read from it is written back
        pytest.xfail(f"lost after host2's return, at most one page per VM: "
                     f"{lost_rows(obs)}; history {obs.meta['history']}")
    assert set(got.values()) == {"pass"}, got
    history = obs.meta["history"]
    assert all(h["lost"] == 0 and h["acked"] > 100 for h in history.values()), history


def test_scenario_migration_runs_on_the_guests_and_compares_with_the_model() -> None:
    sc = load_scenario(SCENARIOS / "lab-migration-light.yaml")
    lab = observe("lab", sc)
    got = {v.name: v.verdict for v in judge(sc, lab).verdicts}
    mig = lab["migrations"]
    print(mig.to_string(), lab.meta["migrations"], got, sep="\n")
    assert len(mig) == 1
    m = mig.iloc[0]
    assert (m["vm"], m["src_host"], m["dst_host"], m["outcome"]) == (
        "vm1", "host1", "host2", "converged")
    start, end, down = (float(m[k]) for k in ("t_start_s", "t_end_s", "downtime_s"))
    assert 5 <= start < end < sc.duration_s
    assert 0 < down < end - start
    assert int(m["rounds"]) >= 1 and float(m["transferred_mb"]) > 20
    st = lab["vm_state"]
    last = st[st["vm"] == "vm1"].sort_values("t_start_s").iloc[-1]
    assert (last["host"], last["state"]) == ("host2", "running")
    assert set(got.values()) == {"pass"}, got
    table = compare_observations(sc, observe("model", sc), lab)
    print(table.to_string())
    moved = table[(table["metric"] == "migration_moved") & (table["subject"] == "vm1:1")]
    assert moved[["model", "lab"]].to_numpy().tolist() == [[1.0, 1.0]]
    # nothing acknowledged is lost, the migrated guest included: this failed in 2 of 2 runs
    # (2 and 5 of ~1,550 records) while qemu 7.2's TCG migration lost guest RAM writes
    # (its dirty-bitmap fast path, see hcisim.lab.guests.qemu.tcg_ram_kib)
    history = lab.meta["history"]
    assert all(h["acked"] > 100 and h["lost"] == 0 and h["min_copies"] == 3
               for h in history.values()), (history, lab.meta["migrations"])
    assert lab.meta["ram_errors"] == {"vm1": 0, "vm2": 0}  # the guests' RAM came along whole


def _operations(obs: Observations) -> list[tuple[str, str]]:
    """(target, outcome) of every operation the engine carried out, in time order."""
    ev = obs["events"]
    ev = ev[(ev["kind"] == "operation") & (ev["source"] == "engine")].sort_values("t_s")
    return [(str(t), str(d).split(":")[0]) for t, d in zip(ev["target"], ev["detail"],
                                                           strict=True)]


def test_maintenance_evacuates_host1_refuses_host2_and_heals_as_the_model_says() -> None:
    """lab-maintenance: host1 into maintenance under load (vm1, vm2 live-migrate away, no
    pause, its bricks stop), host2's refused meanwhile (quorum), host1 activated: its brick
    heals. The lab plane's story is the model's, operation by operation."""
    sc = load_scenario(SCENARIOS / "lab-maintenance.yaml")
    lab = observe("lab", sc)
    got = {v.name: v.verdict for v in judge(sc, lab).verdicts}
    mig = lab["migrations"]
    print(mig.to_string(), _operations(lab), lab.meta["operation_errors"], got, sep="\n")
    assert lab.meta["operation_errors"] == []
    assert set(got.values()) == {"pass"}, got
    assert sorted(mig["vm"]) == ["vm1", "vm2"] and set(mig["src_host"]) == {"host1"}
    assert (mig["outcome"] == "converged").all() and "host1" not in set(mig["dst_host"])
    expected = [("host1", "maintenance"), ("host2", "maintenance refused"),
                ("host1", "activate")]
    assert _operations(lab) == expected
    assert _operations(observe("model", sc)) == expected
    st = lab["vm_state"]
    paused = st[st["state"] == "paused"]
    assert set(paused["reason"]) <= {"migration"}, paused  # only the switch-overs
    last = st.sort_values("t_start_s").groupby("vm").last()
    assert dict(last["host"]) == {**dict(zip(mig["vm"], mig["dst_host"], strict=True)),
                                  "vm3": "host2"}
    # what the guests wrote while host1's brick was stopped is on all three bricks after
    # the run: host1's was healed after its return (the heal table has it only when a poll
    # caught the entries pending: a few shards heal within a second here)
    ev = lab["events"]
    entered = float(ev[ev["detail"] == "maintenance: entered"]["t_s"].iloc[0])
    back = float(ev[ev["detail"] == "activate: up"]["t_s"].iloc[0])
    history = lab.meta["history"]
    # host1's bricks stop once the evacuation is over; the same Gluster 10.3 defect as on a
    # node loss (a stale page read from host1's returned brick, written back by qemu's
    # read-modify-write) took 16 records in one of CI's runs: XFAIL on its exact signature
    stopped = float(mig["t_end_s"].max())
    if (any(h["lost"] for h in history.values())
            and afr_stale_page_signature(lab, stopped)):
        pytest.xfail(f"lost after host1's brick stopped, at most one page per VM: "
                     f"{lost_rows(lab)}; history {history}")
    w = lab["writes"]
    away = w[(w["t_start_s"] >= entered) & (w["t_end_s"] <= back)]
    assert float(away["acked_bytes"].sum()) > 0 and (away["copies"] == 3).all(), away
    assert lab.meta["heal_settled_after_run"]
    assert all(h["lost"] == 0 and h["min_copies"] == 3 for h in history.values()), history


@pytest.mark.parametrize("name", ["lab-migration-busy-slow", "lab-migration-link-loss"])
def test_a_migration_that_cannot_finish_is_cancelled_and_the_vm_runs_on(name: str) -> None:
    """busy-slow: the guest re-dirties faster than the shaped 0.5 Gb/s link sends;
    link-loss: the destination's migration NIC goes down mid-stream. vdsm's rules cancel
    both; the VM never stops and stays on host1; the model gives both up too."""
    sc = load_scenario(SCENARIOS / f"{name}.yaml")
    lab = observe("lab", sc)
    got = {v.name: v.verdict for v in judge(sc, lab).verdicts}
    mig = lab["migrations"]
    print(mig.to_string(), lab.meta["migrations"], got, sep="\n")
    assert len(mig) == 1 and mig["outcome"].iloc[0] == "aborted"
    assert lab.meta["migrations"][0]["outcome"] == "cancelled"
    assert set(got.values()) == {"pass"}, got
    st = lab["vm_state"]
    assert set(st["host"]) == {"host1"} and "paused" not in set(st["state"])
    assert st.sort_values("t_start_s")["state"].iloc[-1] == "running"
    model = observe("model", sc)["migrations"]
    assert list(model["outcome"]) == ["aborted"]
    assert lab.meta["history"]["vm1"]["lost"] == 0
