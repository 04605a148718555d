"""Properties of whole simulations over random clusters, workloads and faults (hypothesis).

Each one is an invariant from semantics.md or an exact oracle computed from the tables
independently of the model's own bookkeeping.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings

from hcisim.model import simulate
from hcisim.model.elaborate import MIB, nic_mb_s
from hcisim.model.heal import POST_OP_DELAY_S
from hcisim.observations import Observations, summarize
from hcisim.scenario import IoProfile, Scenario, Vm

from .cases import HOSTS, scenarios, single_fault

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
EPS = 1e-6


def quorum_at(obs: Observations, volume: str, times: np.ndarray,
              eps: float = EPS) -> np.ndarray:
    """The volume's client quorum (volume_state) at each of ``times`` (a state recorded up
    to ``eps`` after a time counts as its state)."""
    vs = obs["volume_state"]
    q = vs[vs["volume"] == volume].groupby("t_s")["quorum"].all().sort_index()
    idx = np.searchsorted(q.index.to_numpy(float), times + eps, side="right") - 1
    assert (idx >= 0).all()
    return q.to_numpy(bool)[idx]


def covering(rows: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """Boolean matrix: row j's interval covers time i."""
    t0 = rows["t_start_s"].to_numpy(float)
    t1 = rows["t_end_s"].to_numpy(float)
    return (t0[None, :] <= times[:, None]) & (t1[None, :] > times[:, None])


@SETTINGS
@given(scenarios())
def test_no_write_acknowledged_without_quorum(sc: Scenario) -> None:
    obs = simulate(sc)
    wr = obs["writes"]
    acked = wr[wr["acked_bytes"] > 0]
    event(f"acknowledged writes: {'some' if len(acked) else 'none'}")
    assert acked["quorum"].all()
    assert (acked["copies"] >= 1).all()
    for vol in sc.volumes:
        mine = acked[acked["volume"] == vol.name]
        # the volume had quorum (brick count) through each interval: the model splits
        # intervals at every state change, so its midpoint tells (not t_start + EPS: two
        # faults 7e-93 s apart made a 7e-93 s interval whose t_start + EPS lies after both)
        mid = (mine["t_start_s"].to_numpy(float) + mine["t_end_s"].to_numpy(float)) / 2
        assert quorum_at(obs, vol.name, mid, eps=0.0).all()
        assert (mine["copies"] <= len(vol.data_bricks)).all()
    assert summarize(obs, [], [v.name for v in sc.volumes])["volumes"][
        sc.volumes[0].name]["acked_without_quorum_bytes"] == 0


@SETTINGS
@given(scenarios())
def test_write_throughput_bounds(sc: Scenario) -> None:
    """Per host: sum of VM writes x (remote data copies) <= storage NIC (the client sends
    each byte to every remote data brick; copies - 1 of them at least are remote). Per VM:
    writes <= the slowest disk it writes to, and never more than demanded."""
    obs = simulate(sc)
    io = obs["vm_io"]
    wr = obs["writes"]
    assert (io["read_mb_s"] + io["write_mb_s"] <= io["demand_mb_s"] + EPS).all()
    checked = 0
    for vm in sc.vms:
        vol = sc.volume(vm.disks[0].volume)
        bw = [sc.host(b.host).disk(b.disk).bandwidth_mb_s for b in vol.data_bricks]
        rows = io[(io["vm"] == vm.name) & (io["write_mb_s"] > 0)]
        w = wr[(wr["vm"] == vm.name) & (wr["acked_bytes"] > 0)]
        if rows.empty:
            continue
        # the writes row under each vm_io row says how many data bricks it wrote to: all
        # of them (the bound is the slowest disk), or fewer (the slowest one up is unknown
        # here, so the fastest of the volume bounds it)
        cover = covering(w, rows["t_start_s"].to_numpy(float))
        copies = (cover * w["copies"].to_numpy(float)[None, :]).max(axis=1, initial=0.0)
        every = copies == len(bw)
        bound = np.where(every, min(bw), max(bw))
        assert (rows["write_mb_s"].to_numpy(float) <= bound + EPS).all(), vm.name
        checked += int(every.sum())
    event(f"write rows bound by the slowest data disk: {'some' if checked else 'none'}")
    cuts = np.array(sorted(set(io["t_start_s"]) | set(io["t_end_s"])))
    if len(cuts) < 2:
        return
    mids = (cuts[:-1] + cuts[1:]) / 2
    host_of = {vm.name: vm.host for vm in sc.vms}
    for h in HOSTS:
        if any(f.kind == "link_slowdown" and f.target == h for f in sc.faults):
            continue  # a slowed link is tighter still; the plain bound is checked here
        names = [vm for vm, where in host_of.items() if where == h]
        rows = io[io["vm"].isin(names)].reset_index(drop=True)
        wrows = wr[wr["vm"].isin(names)].reset_index(drop=True)
        event(f"VMs on {h}: {'some' if len(rows) else 'none'}")
        if rows.empty:
            continue
        copies = np.zeros((len(mids), len(rows)))
        cover_w = covering(wrows, mids)
        for j, r in enumerate(rows.itertuples()):
            same = ((wrows["vm"] == r.vm) & (wrows["volume"] == r.volume)).to_numpy()
            c = cover_w[:, same] * wrows["copies"].to_numpy(float)[same][None, :]
            copies[:, j] = c.max(axis=1) if same.any() else 0.0
        sent = covering(rows, mids) * rows["write_mb_s"].to_numpy(float)[None, :]
        per_mid = (sent * np.maximum(copies - 1, 0)).sum(axis=1)
        assert (per_mid <= nic_mb_s(sc.host(h).storage_gbps()) * (1 + 1e-6) + EPS).all()


def _stalls(obs: Observations, sc: Scenario) -> dict[str, float]:
    s = summarize(obs, [v.name for v in sc.vms], [])
    return {vm: float(v["max_io_stall_s"]) for vm, v in s["vms"].items()}


@SETTINGS
@given(single_fault(("brick_crash", "disk_failure"), min_duration=1.0))
def test_no_stall_on_brick_crash(sc: Scenario) -> None:
    """A killed brick (TCP RST) or a failed disk (EIO) is switched over at once."""
    obs = simulate(sc)
    assert not obs["vm_io"]["status"].isin(["stalled"]).any()
    assert max(_stalls(obs, sc).values(), default=0.0) == 0.0


def _profile_of(sc: Scenario, vm: Vm) -> IoProfile:
    prof = sc.io_profile(vm.disks[0].io)
    assert prof is not None
    return prof


def _missed(obs: Observations, vm: str, volume: str, n_data: int,
            t0: float) -> list[tuple[float, float]]:
    """The intervals after ``t0`` in which ``vm``'s acknowledged writes reached fewer than
    the ``n_data`` data bricks (the writes table, i.e. its own client's view: clients on
    different hosts reconnect on their own timers, so they take a returning brick back at
    different instants; the volume's ``brick_up`` is the last of them)."""
    wr = obs["writes"]
    rows = wr[(wr["vm"] == vm) & (wr["volume"] == volume) & (wr["t_end_s"] > t0)
              & (wr["copies"] > 0) & (wr["copies"] < n_data)]
    return [(max(a, t0), b) for a, b in zip(rows["t_start_s"].to_numpy(float),
                                             rows["t_end_s"].to_numpy(float), strict=True)]


def _interrupted(sc: Scenario, obs: Observations, volume: str, vm: Vm, brick: str | None,
                 t0: float) -> float:
    """Writes of ``vm``'s disk on ``volume`` whose post-op never came (its writer died or
    lost quorum: a ``writes_interrupted`` event after ``t0``): its demand's write I/Os in
    the last POST_OP_DELAY_S, dirty on ``brick`` unless it is the volume's last data brick
    (the source of their heal)."""
    vol = sc.volume(volume)
    if brick is None or brick == vol.data_bricks[-1].host:
        return 0.0
    ev = obs["events"]
    at = ev[(ev["kind"] == "writes_interrupted") & (ev["target"] == f"{volume}/{vm.name}")
            & (ev["t_s"] >= t0)]["t_s"]
    prof = _profile_of(sc, vm)
    writes = 0.0
    for t in at.to_numpy(float):
        load = 1.0
        for ph in sc.phases:
            if ph.start_s <= t and (ph.vms is None or vm.name in ph.vms):
                load = ph.load
        write_mb_s = prof.demand_mb_s * load * (1 - prof.read_pct / 100)
        writes += write_mb_s * 1e6 * POST_OP_DELAY_S / (prof.block_kib * 1024)
    return writes


def _expected_shards(sc: Scenario, obs: Observations, volume: str, t0: float,
                     within: tuple[float, float] | None = None, brick: str | None = None,
                     ) -> tuple[int, int, dict[str, float]]:
    """Dirty shards from the vm_io table: per disk, write I/Os after t0 while its writes
    missed a data brick (``_missed``) -> ceil(N (1 - (1 - 1/N)^k)) (random) or
    ceil(min(N, bytes / shard)) (sequential), with N the shards of the disk's write hot set
    (write_hot_pct of it). Second value: how many disks sit within float noise of an
    integer (may round either way); third: per VM, when its writes reached every data
    brick again (only VMs whose writes missed one). ``within``: only the writes in that
    interval (a heal episode's). ``brick``: the brick whose shards are counted, with the
    writes interrupted writers left dirty on it (:func:`_interrupted`)."""
    io = obs["vm_io"]
    vol = sc.volume(volume)
    shard = vol.options.shard_block_size_mib * MIB
    total = near = 0
    back: dict[str, float] = {}
    for vm in sc.vms:
        d = vm.disks[0]
        if d.volume != volume:
            continue
        prof = _profile_of(sc, vm)
        rows = io[(io["vm"] == vm.name) & (io["status"] == "ok")]
        windows = _missed(obs, vm.name, volume, len(vol.data_bricks), t0)
        if windows:
            back[vm.name] = max(b for _, b in windows)
        if within is not None:
            windows = [(max(a, within[0]), min(b, within[1])) for a, b in windows
                       if min(b, within[1]) > max(a, within[0])]
        starts = rows["t_start_s"].to_numpy(float)
        ends = rows["t_end_s"].to_numpy(float)
        dur = np.zeros(len(rows))
        for a, b in windows:
            dur += np.clip(np.minimum(ends, b) - np.maximum(starts, a), 0, None)
        n = min(math.ceil(d.size_gb * 1e9 / shard),
                max(1, math.ceil(d.size_gb * 1e9 * prof.write_hot_pct / 100 / shard)))
        cut = _interrupted(sc, obs, volume, vm, brick, t0) if within is None else 0.0
        if prof.random:
            k = float((rows["write_iops"].to_numpy(float) * dur).sum()) + cut
            x = n * (1 - math.exp(k * math.log1p(-1 / n))) if n > 1 else float(k > 0)
        else:
            x = min(n, (float((rows["write_mb_s"].to_numpy(float) * dur).sum()) * 1e6
                        + cut * prof.block_kib * 1024) / shard)
        if abs(x - round(x)) < 1e-6 * max(1.0, x):
            near += 1
        total += math.ceil(x - 1e-9) if x > 1e-9 else 0
    return total, near, back


@SETTINGS
@given(single_fault(("brick_crash", "node_power_loss"), min_duration=30.0))
def test_healed_bytes_are_dirty_shards_times_shard_size(sc: Scenario) -> None:
    obs = simulate(sc)
    heal = obs["heal"]
    event(f"heal episodes: {'some' if len(heal) else 'none'}")
    for vol_name, b, n in zip(heal["volume"], heal["bytes"].to_numpy(float),
                              heal["shards"].to_numpy(int), strict=True):
        shard = sc.volume(str(vol_name)).options.shard_block_size_mib * MIB
        assert b == n * shard
    f = sc.faults[0]
    for vol in sc.volumes:
        brick = vol.brick_on(f.target)
        if brick is None or vol.is_arbiter(f.target):
            continue
        done = heal[(heal["volume"] == vol.name) & (heal["brick"] == f.target)]
        # a VM's writes miss the brick until its client uses it again (on that client's
        # reconnect timer's try after the repair). A heal that starts before that copies
        # the shards dirty at its start;
        # a sequential writer goes on in the shard it was in, which is healed once more at
        # the daemon's next sweep (one shard per such disk; a random writer's later shards
        # are counted among the dirty ones by the model's union, not twice)
        expected, near, back = _expected_shards(sc, obs, vol.name, f.at_s, brick=f.target)
        if len(done):
            first = float(done["t_start_s"].min())
            near += sum(1 for v in sc.vms if v.disks[0].volume == vol.name
                        and not _profile_of(sc, v).random
                        and first < back.get(v.name, -math.inf) - 1e-9)
        event(f"dirty shards expected: {'some' if expected else 'none'}")
        healed = int(done["shards"].sum())
        pending = obs["volume_state"]
        pending = pending[(pending["volume"] == vol.name) & (pending["brick"] == f.target)]
        left = float(pending[pending["t_s"] == pending["t_s"].max()]["pending_heal_bytes"].sum())
        shard = vol.options.shard_block_size_mib * MIB
        # healed + still pending at the end (a shard half copied is copied again) = what
        # the absence dirtied
        pending_shards = math.ceil(left / shard - 1e-6) if left > 0 else 0
        # a shard healed while a client that misses the brick still writes it is pending
        # again after that episode (heal.BrickHeal.rewritten): healed once more, at most
        # the shards each episode's missed writes touch
        again = again_near = 0
        for a, b in zip(done["t_start_s"].to_numpy(float), done["t_end_s"].to_numpy(float),
                        strict=True):
            n_again, n_near, _ = _expected_shards(sc, obs, vol.name, f.at_s, (a, b))
            again += n_again
            again_near += n_near
        event(f"shards written during a heal episode: {'some' if again else 'none'}")
        if again == 0:
            assert abs(healed + pending_shards - expected) <= near, (healed, left, expected)
        else:
            assert expected - near <= healed + pending_shards <= (
                expected + again + near + again_near), (healed, left, expected, again)


@SETTINGS
@given(scenarios())
def test_arbiter_brick_never_stores_data(sc: Scenario) -> None:
    obs = simulate(sc)
    vs = obs["volume_state"]
    arb = vs[vs["role"] == "arbiter"]
    assert (arb["pending_heal_bytes"] == 0).all()
    heal = obs["heal"]
    event(f"arbiter volume: {any(v.type == 'arbiter' for v in sc.volumes)}")
    for vol in sc.volumes:
        if vol.type == "arbiter":
            assert heal[(heal["volume"] == vol.name)
                        & (heal["brick"] == vol.bricks[2].host)].empty
    wr = obs["writes"]
    acked = wr[wr["acked_bytes"] > 0]
    for vol_name, copies in zip(acked["volume"], acked["copies"].to_numpy(int), strict=True):
        assert copies <= len(sc.volume(str(vol_name)).data_bricks)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_same_seed_same_observations(sc: Scenario) -> None:
    a, b = simulate(sc), simulate(sc)
    for name in a.tables:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
