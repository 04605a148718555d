"""A dedicated migration NIC cut mid-migration on real guests (scenarios/lab-migration-nic-
loss.yaml): the lab takes down the destination's own migration link (mig0), not its
storage or management link; the stream stalls, vdsm's progress timeout cancels it, the VM
runs on at the source without a pause, and storage never notices (every write on three
bricks). Needs root, qemu-system-x86, gcc, apt and the netns lab's packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcisim.engines import observe
from hcisim.runner import judge
from hcisim.scenario import load_scenario

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SCENARIOS = Path(__file__).parents[2] / "scenarios"


def test_a_dedicated_migration_nic_cut_cancels_the_migration_and_nothing_else() -> None:
    sc = load_scenario(SCENARIOS / "lab-migration-nic-loss.yaml")
    lab = observe("lab", sc)
    got = {v.name: v.verdict for v in judge(sc, lab).verdicts}
    mig, ev = lab["migrations"], lab["events"]
    print(mig.to_string(), lab.meta["migrations"], got, ev.to_string(), sep="\n")
    assert len(mig) == 1
    m = mig.iloc[0]
    assert (m["vm"], m["src_host"], m["dst_host"], m["outcome"]) == (
        "vm1", "host1", "host2", "aborted")
    assert lab.meta["migrations"][0]["outcome"] == "cancelled"
    # cancelled by the progress rule: no new low for 8 s, the last one sampled at most a
    # monitor interval (1 s) before the cut at 6 s
    assert float(m["t_end_s"]) >= 6 - 1 + 8
    cut = ev[ev["kind"] == "fault_start"]
    assert cut["network"].tolist() == ["migration"] and cut["target"].tolist() == ["host2"]
    assert set(got.values()) == {"pass"}, got
    st = lab["vm_state"]
    assert set(st["host"]) == {"host1"} and "paused" not in set(st["state"])
    assert st.sort_values("t_start_s")["state"].iloc[-1] == "running"
    # host2 stays up for the engine and for storage: no host event, no stalled guest
    # write, every acknowledged record on all three bricks (a cut storage link would
    # have stalled the writes for ping-timeout and left host2's brick behind)
    assert not ev["kind"].str.startswith("host_").any()
    io = lab["vm_io"]
    assert not io.empty and "stalled" not in set(io["status"])
    history = lab.meta["history"]["vm1"]
    assert history["lost"] == 0 and history["acked"] > 100 and history["min_copies"] == 3
    assert list(observe("model", sc)["migrations"]["outcome"]) == ["aborted"]
