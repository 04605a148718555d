"""The model's live migration when a fault cuts the migration network (``network:
migration``): a dedicated migration NIC going down stalls the stream and vdsm's progress
timeout cancels it, with no host loss; on a NIC shared with management it is a management
cut, exactly as ``network: management``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.engines import observe
from hcisim.observations import Observations
from hcisim.scenario import parse_scenario

SCENARIOS = Path(__file__).parents[2] / "scenarios"


def _run(name: str, network: str, cut_s: float = 12, run_s: float = 24) -> Observations:
    """The catalogue scenario with its fault on ``network``, lasting ``cut_s``."""
    text = (SCENARIOS / f"{name}.yaml").read_text()
    fault = f"network: {network}, duration_s: {cut_s:g}}}"
    text = text.replace("network: migration, duration_s: 12}", fault)
    text = text.replace("network: management, duration_s: 12}", fault)
    text = text.replace("\nduration_s: 24\n", f"\nduration_s: {run_s:g}\n")
    return observe("model", parse_scenario(text))


def _cut(obs: Observations) -> list[str]:
    """The networks each fault_start event says were cut."""
    ev = obs["events"]
    return ev[ev["kind"] == "fault_start"]["network"].tolist()


def _host_events(obs: Observations, host: str) -> set[str]:
    ev = obs["events"]
    return set(ev[(ev["target"] == host) & ev["kind"].str.startswith("host_")]["kind"])


def test_a_dedicated_migration_nic_cut_aborts_the_migration_and_nothing_else() -> None:
    # a cut long enough for the engine to declare a host non-responsive (and fence it)
    # had it lost its management network: the contrast below shows it would
    obs = _run("lab-migration-nic-loss", "migration", cut_s=400, run_s=600)
    mig = obs["migrations"]
    assert len(mig) == 1
    m = mig.iloc[0]
    assert (m["vm"], m["src_host"], m["dst_host"], m["outcome"]) == (
        "vm1", "host1", "host2", "aborted")
    # the stream stalls at the cut (6 s) and vdsm gives up progress_timeout_s (8 s) after
    # the last new low, sampled every second
    assert 6 + 8 <= float(m["t_end_s"]) <= 6 + 8 + 1 and float(m["downtime_s"]) == 0
    ev = obs["events"]
    end = ev[ev["kind"] == "migration_end"]["detail"].iloc[0]
    assert end.startswith("aborted: no progress within progress_timeout_s"), end
    st = obs["vm_state"]
    assert set(st["host"]) == {"host1"} and "paused" not in set(st["state"])
    assert st.sort_values("t_start_s")["state"].iloc[-1] == "running"
    assert _host_events(obs, "host2") == set()  # never non-responsive, never fenced
    io = obs["vm_io"]
    assert not io.empty and set(io["status"]) == {"ok"}  # storage never noticed
    assert _cut(obs) == ["migration"]


def test_a_management_cut_on_the_same_hosts_still_loses_the_host() -> None:
    """As before: the management NIC down is a host the engine loses; the migration
    network has its own NIC here, so the stream goes on and completes."""
    obs = _run("lab-migration-nic-loss", "management", cut_s=400, run_s=600)
    assert {"host_non_responsive", "host_fenced"} <= _host_events(obs, "host2")
    assert obs["migrations"]["outcome"].tolist() == ["converged"]


def test_migration_on_the_management_nic_is_cut_with_it() -> None:
    """``network: migration`` where migration rides on the management NIC cuts that NIC:
    the model sees a management cut, every table as for ``network: management`` but the
    fault events' network column, which names both networks."""
    mgmt = _run("lab-migration-link-loss", "management")
    mig = _run("lab-migration-link-loss", "migration")
    assert _cut(mig) == ["management,migration"] and _cut(mgmt) == ["management"]
    for name, df in mgmt.tables.items():
        other = mig[name]
        if name == "events":
            df, other = df.drop(columns="network"), other.drop(columns="network")
        pd.testing.assert_frame_equal(df, other, obj=name)
    assert mig["migrations"]["outcome"].tolist() == ["aborted"]


def _variant(fault: str) -> Observations:
    """lab-migration-nic-loss with another fault on host2's migration network."""
    text = (SCENARIOS / "lab-migration-nic-loss.yaml").read_text()
    old = "{at_s: 6, kind: nic_loss, target: host2, network: migration, duration_s: 12}"
    assert old in text
    return observe("model", parse_scenario(text.replace(old, fault)))


def test_a_partition_of_the_migration_network_stalls_it_too() -> None:
    obs = _variant("{at_s: 6, kind: partition, target: host2, network: migration,"
                   " peers: [host1], duration_s: 12}")
    assert obs["migrations"]["outcome"].tolist() == ["aborted"]
    assert _host_events(obs, "host2") == set()


def test_a_slower_migration_nic_makes_the_migration_longer() -> None:
    base = _variant("{at_s: 20, kind: brick_crash, target: host3}")  # after the migration
    slow = _variant("{at_s: 4, kind: link_slowdown, target: host2, network: migration,"
                    " rate_mbit: 250, duration_s: 15}")
    fast, slowed = base["migrations"].iloc[0], slow["migrations"].iloc[0]
    assert fast["outcome"] == slowed["outcome"] == "converged"
    assert float(slowed["t_end_s"]) > float(fast["t_end_s"]) + 1


@settings(max_examples=15, deadline=None)
@given(at_s=st.floats(3.2, 9.0), cut_s=st.floats(1.0, 30.0))
def test_a_migration_nic_cut_never_loses_the_host_or_moves_the_vm_half_way(
        at_s: float, cut_s: float) -> None:
    """Wherever the cut falls in the migration and however long it lasts: no host event,
    the VM runs on exactly one host, and it is on host2 only if the migration converged."""
    obs = _variant(f"{{at_s: {at_s!r}, kind: nic_loss, target: host2, network: migration,"
                   f" duration_s: {cut_s!r}}}")
    assert _host_events(obs, "host2") == set()
    # a cut repaired just before the progress timeout lets the stream go on: the migration
    # may still run when the run ends (24 s): its row says so, ended at the run's end
    mig = obs["migrations"]
    assert len(mig) == 1
    outcome = str(mig["outcome"].iloc[0])
    if outcome == "running":
        assert float(mig["t_end_s"].iloc[0]) == 24.0
        assert not (obs["events"]["kind"] == "migration_end").any()
    st_ = obs["vm_state"].sort_values("t_start_s")
    assert "paused" not in set(st_["state"]) or outcome == "converged"
    assert st_["host"].iloc[-1] == ("host2" if outcome == "converged" else "host1")
    assert st_["state"].iloc[-1] == "running"


def test_a_migration_still_under_way_at_the_end_has_its_row_as_it_stands() -> None:
    """Cut at 6 s for 7.5 s: the stream resumes 0.5 s before vdsm's progress timeout and
    the run ends (16 s) before the copy does. The row: running, ended at 16 s, the RAM
    sent so far (less than the whole RAM of the same migration run to its end), no
    downtime; no migration_end event; the VM still on its source."""
    obs = _run("lab-migration-nic-loss", "migration", cut_s=7.5, run_s=16)
    longer = _run("lab-migration-nic-loss", "migration", cut_s=7.5, run_s=120)
    m, done = obs["migrations"].iloc[0], longer["migrations"].iloc[0]
    assert (m["outcome"], float(m["t_end_s"]), float(m["downtime_s"])) == ("running", 16.0, 0.0)
    assert done["outcome"] == "converged" and float(done["t_end_s"]) > 16.0
    assert 0 < float(m["transferred_mb"]) < float(done["transferred_mb"])
    assert 1 <= int(m["rounds"]) <= int(done["rounds"])
    assert float(m["t_start_s"]) == float(done["t_start_s"])
    assert not (obs["events"]["kind"] == "migration_end").any()
    st_ = obs["vm_state"].sort_values("t_start_s")
    assert st_["host"].iloc[-1] == "host1" and st_["state"].iloc[-1] == "migrating"
