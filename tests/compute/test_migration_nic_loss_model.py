"""The model's live migration when a fault cuts the migration network (``network:
migration``): a dedicated migration NIC going down stalls the stream and vdsm's progress
timeout cancels it, with no host loss; on a NIC shared with management it is a management
cut, exactly as ``network: management``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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
