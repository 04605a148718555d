"""A dedicated migration NIC cut mid-migration on real guests (scenarios/lab-migration-nic-
loss.yaml): the lab takes down the destination's own migration link (mig0), not its
storage or management link; the stream stalls, vdsm's progress timeout cancels it, the VM
runs on at the source without a pause, and storage never notices (no ping-timeout stall,
every write on three bricks). Needs root, qemu-system-x86, gcc, apt and the netns lab's packages."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from hcisim.claims.compute import guest_stall_windows, longest
from hcisim.engines import observe
from hcisim.lab.netns.layout import NS_PREFIX
from hcisim.runner import judge
from hcisim.scenario import load_scenario

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SCENARIOS = Path(__file__).parents[2] / "scenarios"


def _links_up(ns: str) -> dict[str, bool]:
    """Interface -> administratively up, inside namespace ``ns``."""
    out = subprocess.run(["ip", "-n", ns, "-o", "link", "show"], capture_output=True,
                         text=True, check=False).stdout
    links = {}
    for line in out.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        flags = line.split("<", 1)[-1].split(">", 1)[0].split(",")
        links[name] = "UP" in flags
    return links


def _watch_host2(stop: threading.Event, samples: list[dict[str, bool]]) -> None:
    """Sample host2's links of the lab this process brings up (its netns lab's name is
    the scenario's, cut, and this PID: ``unique_name``) every 0.2 s until ``stop``."""
    prefix = f"{NS_PREFIX}lab-migr-{os.getpid() % 100000}-"
    while not stop.wait(0.2):
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                               check=False).stdout.split()
        for ns in names:
            if ns.startswith(prefix) and ns.endswith("-host2"):
                samples.append(_links_up(ns))


def test_a_dedicated_migration_nic_cut_cancels_the_migration_and_nothing_else() -> None:
    sc = load_scenario(SCENARIOS / "lab-migration-nic-loss.yaml")
    samples: list[dict[str, bool]] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_host2, args=(stop, samples), daemon=True)
    watcher.start()
    try:
        lab = observe("lab", sc)
    finally:
        stop.set()
        watcher.join()
    # the lab took host2's migration link down, and only it: while mig0 was down its
    # management and storage links were up (the engine and the bricks kept host2)
    cut = [x for x in samples if "mig0" in x and not x["mig0"]]
    assert len(cut) >= 20, samples  # 12 s of cut, a sample every 0.2 s
    assert all(x["mgmt0"] and x["sto0"] for x in cut), cut
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
    start = ev[ev["kind"] == "fault_start"]
    assert start["network"].tolist() == ["migration"] and start["target"].tolist() == ["host2"]
    assert set(got.values()) == {"pass"}, got
    st = lab["vm_state"]
    assert set(st["host"]) == {"host1"} and "paused" not in set(st["state"])
    assert st.sort_values("t_start_s")["state"].iloc[-1] == "running"
    # host2 stays up for the engine and for storage: no host event, no guest stall near
    # the ping-timeout (5 s) a cut storage link would cause (short ones a loaded machine
    # gives are not it), every acknowledged record on all three bricks (a cut storage link
    # would have left host2's brick behind)
    assert not ev["kind"].str.startswith("host_").any()
    assert not lab["vm_io"].empty
    stall_s, _ = longest(guest_stall_windows(lab, "vm1"))
    assert stall_s < 2.5, guest_stall_windows(lab, "vm1")
    history = lab.meta["history"]["vm1"]
    assert history["lost"] == 0 and history["acked"] > 100 and history["min_copies"] == 3
    assert list(observe("model", sc)["migrations"]["outcome"]) == ["aborted"]
