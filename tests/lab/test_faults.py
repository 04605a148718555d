"""Each fault kind once on a real cluster, judged in its own window (one run for them all).

scenarios/lab-all-faults.yaml plays every fault on host3 one after the other, with repair
and heal after each; the VMs on host1 and host2 write through host3's bricks. What is
checked, per the reference facts (../shared/reference/semantics.md, lab-notes.md):
- silent losses (brick hang, node hang, NIC loss, partition, power loss) stall the
  survivors' writes for at least the ping-timeout, and for no longer than the model's
  longest stall in the same window plus one ping-timeout (the lab's stalls were measured
  up to 2.3 s above the model's on two loaded cores: reconnects are not instant); a brick
  crash (RST) and a failed disk (EIO) do not, and the failed disk really failed (its
  writes were refused: heal became pending at once);
- a slowed link really slowed the writes that cross it;
- no acknowledged write is lost, and after heal every one is on every data brick;
- pending heal reaches 0; the claims run unchanged on the lab's observations.

Debian packages needed (tests/run.sh installs them): glusterfs-server glusterfs-client fio
xfsprogs iproute2 iptables.
"""

from __future__ import annotations

import fcntl
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hcisim.claims import evaluate
from hcisim.engines import observe
from hcisim.lab import run_lab
from hcisim.lab.netns.layout import unique_name
from hcisim.observations import Observations
from hcisim.observations.vocabulary import check_vocabulary
from hcisim.scenario import Scenario, load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "lab-all-faults.yaml"
pytestmark = [pytest.mark.xdist_group("lab-all-faults"), pytest.mark.slow]
SILENT = ("brick_hang", "node_hang", "nic_loss", "partition", "node_power_loss")


@dataclass
class Run:
    sc: Scenario
    obs: Observations
    model: Observations  # the model on the same scenario: the upper bounds


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Run:
    """One lab run for the whole module, even when xdist spreads its tests over workers:
    the first worker runs it under a lock and saves it, the others load it. Observations
    and logs stay in the session's temporary folder for a post-mortem."""
    sc = load_scenario(SCENARIO)
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if worker_id != "master" else base  # the session's folder
    keep = shared / "lab-all-faults"
    with (shared / "lab-all-faults.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (keep / "observations" / "meta.json").exists():
            return Run(sc, Observations.load(keep), observe("model", sc))
        obs = run_lab(sc, name=unique_name("faults"), heal_wait_s=150, keep_logs=keep / "logs")
        obs.save(keep)
    print(f"lab-all-faults observations and logs: {keep}")
    return Run(sc, obs, observe("model", sc))


def bad_runs(obs: Observations, vm: str) -> list[tuple[float, float]]:
    """Back-to-back stalled/error intervals of one VM merged: (start, end)."""
    io = obs["vm_io"]
    io = io[(io["vm"] == vm) & io["status"].isin(["stalled", "error"])].sort_values("t_start_s")
    runs: list[tuple[float, float]] = []
    for a, b in zip(io["t_start_s"], io["t_end_s"], strict=True):
        if runs and a <= runs[-1][1] + 1e-6:
            runs[-1] = (runs[-1][0], max(runs[-1][1], b))
        else:
            runs.append((float(a), float(b)))
    return runs


def window(obs: Observations, kind: str) -> tuple[float, float]:
    ev = obs["events"]
    start = ev[(ev["kind"] == "fault_start") & (ev["fault_kind"] == kind)]["t_s"]
    end = ev[(ev["kind"] == "fault_end") & (ev["fault_kind"] == kind)]["t_s"]
    assert len(start) == 1 and len(end) == 1, f"{kind} was not played once"
    return float(start.iloc[0]), float(end.iloc[0])


def brick_up_at(obs: Observations, volume: str, host: str, t: float) -> bool:
    vs = obs["volume_state"]
    vs = vs[(vs["volume"] == volume) & (vs["brick"] == host) & (vs["t_s"] <= t)]
    return bool(vs.sort_values("t_s")["up"].iloc[-1]) if not vs.empty else False


def survivor_stalls(r: Run, kind: str, only_if_brick_up: bool = False,
                    obs: Observations | None = None) -> dict[str, float]:
    """Per VM off the faulted host whose volume the fault hits: its longest stall that was
    under way at the fault (in ``obs``, default the lab's).

    ``only_if_brick_up``: leave out VMs whose volume's brick on host3 was already down
    when the fault began (a brick the clients do not use cannot stall them).
    """
    obs = r.obs if obs is None else obs
    t0, _ = window(obs, kind)
    fault = next(f for f in r.sc.faults if f.kind == kind)
    only: str | None = getattr(fault, "volume", None)
    out = {}
    for vm in r.sc.vms:
        if vm.host == "host3" or only not in (None, vm.disks[0].volume):
            continue
        if only_if_brick_up and not brick_up_at(obs, vm.disks[0].volume, "host3", t0):
            continue
        hit = [b - a for a, b in bad_runs(obs, vm.name) if a <= t0 + 1.0 and b > t0]
        out[vm.name] = max(hit, default=0.0)
    return out


def iops(obs: Observations, vms: list[str], start: float, end: float) -> float:
    """Mean read+write IOPS of ``vms`` together over [start, end]."""
    io = obs["vm_io"]
    io = io[io["vm"].isin(vms) & (io["t_start_s"] >= start) & (io["t_end_s"] <= end)]
    ops = ((io["read_iops"] + io["write_iops"]) * (io["t_end_s"] - io["t_start_s"])).sum()
    return float(ops) / (end - start)


@pytest.mark.lab
@pytest.mark.parametrize("kind", SILENT)
def test_silent_loss_stalls_survivors_between_ping_timeout_and_the_model(run: Run,
                                                                         kind: str) -> None:
    ping = run.sc.volumes[0].options.ping_timeout_s
    stalls = survivor_stalls(run, kind, only_if_brick_up=True)
    assert stalls and all(s >= ping for s in stalls.values()), stalls
    bound = max(survivor_stalls(run, kind, obs=run.model).values()) + ping
    assert all(s <= bound for s in stalls.values()), (stalls, bound)


@pytest.mark.lab
def test_kept_logs_carry_the_runs_observations(run: Run, tmp_path_factory: pytest.TempPathFactory,
                                               worker_id: str) -> None:
    """``keep_logs`` keeps the run's tables and meta beside the daemons' logs, with run time 0
    on the hosts' clock: the logs' timestamps read against the fault windows."""
    base = tmp_path_factory.getbasetemp()
    logs = (base.parent if worker_id != "master" else base) / "lab-all-faults" / "logs"
    kept = Observations.load(logs)
    assert float(kept.meta["t0_epoch"]) == float(run.obs.meta["t0_epoch"])
    assert kept["events"].equals(run.obs["events"])
    assert sorted(logs.glob("lab/host*/glusterd.log")), "the daemons' logs beside them"


@pytest.mark.lab
def test_brick_crash_stall_is_under_a_second(run: Run) -> None:
    """A killed brick process answers with a TCP reset: clients fail over at once."""
    stalls = survivor_stalls(run, "brick_crash")
    assert all(s < 1.0 for s in stalls.values()), stalls
    t0, _ = window(run.obs, "brick_crash")
    ev = run.obs["events"]
    down = ev[(ev["kind"] == "brick_down") & (ev["target"] == "data/host3")]["t_s"]
    assert (down >= t0).any() and float(down[down >= t0].min()) - t0 < 1.0


@pytest.mark.lab
def test_disk_failure_returns_errors_not_silence(run: Run) -> None:
    ping = run.sc.volumes[0].options.ping_timeout_s
    stalls = survivor_stalls(run, "disk_failure")
    assert all(s < ping for s in stalls.values()), stalls
    # the failed disk refused its writes: the other bricks blame it and heal is pending for
    # it within a few seconds of the failure (writes that were not refused leave no trace);
    # the heal itself runs once the disk is replaced (the heal table's start is the daemons'
    # first heal, from their log)
    t0, t1 = window(run.obs, "disk_failure")
    vs = run.obs["volume_state"]
    pending = vs[(vs["volume"] == "data") & (vs["brick"] == "host3")
                 & (vs["pending_heal_bytes"] > 0)]["t_s"]
    assert ((pending >= t0) & (pending < min(t1, t0 + ping))).any(), list(pending)
    heal = run.obs["heal"]
    began = heal[(heal["volume"] == "data") & (heal["brick"] == "host3")]["t_start_s"]
    assert (began >= t0).any(), list(began)


@pytest.mark.lab
def test_link_slowdown_slows_the_writes_that_cross_it_and_keeps_io_going(run: Run) -> None:
    t0, t1 = window(run.obs, "link_slowdown")
    io = run.obs["vm_io"]
    during = io[(io["t_start_s"] >= t0) & (io["t_end_s"] <= t1) & (io["vm"] != "web3")]
    assert not (during["status"] == "error").any()
    # db1 and db2 write every block (8 KiB) to host3's data brick through the 1 Mbit/s link
    # (tbf on both ends) and demand 2 x 12 writes/s = 1.6 Mbit/s: their writes fall. Their
    # reads (70 %) need not cross the link (AFR reads one brick): read+write IOPS fell only
    # to 0.78 in session 3. While host3's brick stays connected the write payload cannot
    # exceed the link (15 % for the tbf's burst), judged 1 s inside the window: fio's 1 s
    # samples are placed on the run's grid within about a second, and the backlog released
    # at the repair (40+ writes/s) would land in the window's last cell. A client that marks
    # it down (late ping replies through the 200 ms tbf queue) writes to two bricks and is
    # no longer bound by it. Session 4: 0.35, 0.72, 0.77 of before over the whole window;
    # 0.7 Mbit/s of payload inside it.
    db = ["db1", "db2"]
    slow = write_iops(run.obs, db, t0 + 1.0, t1 - 1.0)
    before = write_iops(run.obs, db, t0 - 10.0, t0)
    connected = all(brick_up_at(run.obs, "data", "host3", t) for t in np.arange(t0, t1, 0.25))
    print(f"\nwrites across the 1 Mbit/s link: {slow:.1f}/s, before {before:.1f}/s; host3's "
          f"data brick {'connected' if connected else 'marked down'} in the window")
    assert 0 < slow < before, (slow, before)
    if connected:
        assert slow * 8 * 1024 * 8 <= 1.15e6, f"{slow:.1f} writes/s of 8 KiB through 1 Mbit/s"


def write_iops(obs: Observations, vms: list[str], start: float, end: float) -> float:
    """Mean write IOPS of ``vms`` together over [start, end]."""
    io = obs["vm_io"]
    io = io[io["vm"].isin(vms) & (io["t_start_s"] >= start) & (io["t_end_s"] <= end)]
    return float((io["write_iops"] * (io["t_end_s"] - io["t_start_s"])).sum()) / (end - start)


@pytest.mark.lab
def test_no_acknowledged_write_lost_and_all_copies_after_heal(run: Run) -> None:
    wr = run.obs["writes"]
    assert wr["acked_bytes"].sum() > 0
    assert wr["lost_bytes"].sum() == 0
    for vol in run.sc.volumes:
        copies = wr[(wr["volume"] == vol.name) & (wr["acked_bytes"] > 0)]["copies"]
        assert (copies == len(vol.data_bricks)).all(), (vol.name, copies.value_counts())
    hist = run.obs.meta["history"]
    assert all(h["lost"] == 0 and h["acked"] > 100 for h in hist.values()), hist


@pytest.mark.lab
def test_heal_reaches_zero(run: Run) -> None:
    assert run.obs.meta["heal_settled_after_run"] is True, run.obs.meta.get("heal_info_at_end")
    vs = run.obs["volume_state"]
    last = vs[vs["t_s"] == vs["t_s"].max()]
    # Every brick connected is already in heal_settled_after_run (the heal tool's fresh
    # connections, two polls in a row). The FUSE clients' own views (volume_state `up`) may
    # still miss a brick back from power loss: their reconnect timer retries every 3 s
    # (rpc-clnt.c rpc_clnt_reconnect), so they are not asserted at the last sample (seen
    # once: host3's vmstore brick, heal settled).
    assert (last["pending_heal_bytes"] == 0).all()
    heal = run.obs["heal"]
    assert (heal["t_end_s"] > heal["t_start_s"]).all()
    assert heal[heal["volume"] == "data"]["bytes"].sum() > 0  # data written while away


@pytest.mark.lab
def test_every_fault_played_and_the_power_loss_took_host3_vms(run: Run) -> None:
    ev = run.obs["events"]
    kinds = sorted(ev[ev["kind"] == "fault_start"]["fault_kind"])
    assert kinds == sorted(f.kind for f in run.sc.faults)
    t0, _ = window(run.obs, "node_power_loss")
    st = run.obs["vm_state"]
    down = st[(st["vm"] == "web3") & (st["state"] == "down")]
    assert len(down) == 1 and abs(float(down["t_start_s"].iloc[0]) - t0) < 0.5


@pytest.mark.lab
def test_claims_run_unchanged_on_lab_observations(run: Run) -> None:
    verdicts = {v.kind: v for v in evaluate(run.sc, run.obs)}
    assert verdicts["replicas"].verdict == "pass"
    assert verdicts["zero_downtime"].verdict == "pass", verdicts["zero_downtime"].evidence
    assert verdicts["no_split_brain"].verdict == "pass", verdicts["no_split_brain"].evidence


@pytest.mark.lab
def test_applied_options_are_read_back(run: Run) -> None:
    applied = run.obs.meta["applied_options"]
    for vol in run.sc.volumes:
        got = applied[vol.name]
        assert got["network.ping-timeout"].split()[0] == "5"
        assert got["features.shard"].split()[0] == "on"  # from the virt group
        assert got["features.shard-block-size"].split()[0] == "4MB"
    assert isinstance(run.obs["vm_io"], pd.DataFrame) and not run.obs["vm_io"].empty


@pytest.mark.lab
def test_observations_speak_the_shared_vocabulary(run: Run) -> None:
    check_vocabulary(run.obs)
    assert run.obs.engine == "lab:netns"
