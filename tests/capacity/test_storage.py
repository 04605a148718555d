"""Fluid storage bounds and heal times against hand computation; conservation invariants;
whole-image heal of unsharded volumes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.capacity import Candidate, assess, place, replica_sets
from hcisim.capacity.placement import HostRoom
from hcisim.capacity.storage import (
    Demand,
    HostLoad,
    client_write_bound,
    dirty_shards,
    heal_estimate,
    healing,
    host_loads,
    path_bounds,
    whole_image_heal,
)
from hcisim.model.healrate import heal_cpu_mb_s, heal_thread_mb_s
from hcisim.scenario import IoProfile
from hcisim.scenario.profile import DEFAULT_PROFILE, load_profile
from tests.capacity.cases import SEQ_WRITE, candidate, spec, vm

CAND = Candidate.model_validate(candidate(gbps=10, disk_mb_s=2000, iops=100_000))
SHARD = 64 * 2**20


def test_replica3_loads_by_hand() -> None:
    """Client on host1 writing 100 and reading 90 MB/s: every byte to 3 disks, 2 remote."""
    loads = host_loads([(0, Demand(90, 100, 0, 0))], replica_sets("replica3", "rotating"), None)
    assert [h.disk_mb_s for h in loads] == pytest.approx([130, 130, 130])
    assert loads[0].nic_out == pytest.approx(200)  # NIC / 2 bound: two remote copies
    assert loads[0].nic_in == pytest.approx(60)  # 2/3 of reads are remote
    assert [loads[1].nic_in, loads[2].nic_in] == pytest.approx([100, 100])
    assert [loads[1].nic_out, loads[2].nic_out] == pytest.approx([30, 30])


def test_rotating_arbiter_loads_by_hand() -> None:
    """Three sets of 1/3 each: the client holds a data brick in two, the arbiter in one."""
    loads = host_loads([(0, Demand(0, 90, 0, 0))], replica_sets("arbiter", "rotating"), None)
    assert loads[0].nic_out == pytest.approx(90 * 4 / 3)  # (2 + 1 + 1) / 3 remote copies
    assert [h.disk_mb_s for h in loads] == pytest.approx([60, 60, 60])  # 2 copies of 90


def test_degraded_replica3_writes_two_copies() -> None:
    loads = host_loads([(0, Demand(0, 100, 0, 0))], replica_sets("replica3", "rotating"), 1)
    assert [h.disk_mb_s for h in loads] == pytest.approx([100, 0, 100])
    assert loads[0].nic_out == pytest.approx(100)


def test_client_write_bounds() -> None:
    nic = 10 * 1000 / 8
    assert client_write_bound(CAND, replica_sets("replica3", "rotating"), 0) == nic / 2
    assert client_write_bound(CAND, replica_sets("arbiter", "rotating"), 0) == pytest.approx(
        nic * 3 / 4)
    dedicated = replica_sets("arbiter", "dedicated")
    assert client_write_bound(CAND, dedicated, 0) == nic  # local data brick, one remote
    assert client_write_bound(CAND, dedicated, 2) == nic / 2  # the arbiter host: two remote


demands = st.lists(st.tuples(st.integers(0, 2), st.floats(0, 500), st.floats(0, 500)),
                   min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(clients=demands, vt=st.sampled_from(["replica3", "arbiter"]),
       layout=st.sampled_from(["rotating", "dedicated"]),
       failed=st.sampled_from([None, 0, 1, 2]))
def test_bytes_are_conserved(clients: list[tuple[int, float, float]], vt: str, layout: str,
                             failed: int | None) -> None:
    """Disk writes = copies x client writes; what leaves NICs arrives at NICs."""
    sets = replica_sets(vt, layout)  # type: ignore[arg-type]
    cl = [(h, Demand(r, w, 0, 0)) for h, r, w in clients if h != failed]
    loads = host_loads(cl, sets, failed)
    copies = sum(s.weight * len([d for d in s.data if d != failed]) for s in sets)
    writes = sum(d.write_mb_s for _, d in cl)
    reads = sum(d.read_mb_s for _, d in cl)
    assert sum(h.disk_mb_s for h in loads) == pytest.approx(copies * writes + reads, abs=1e-6)
    assert sum(h.nic_out for h in loads) == pytest.approx(sum(h.nic_in for h in loads),
                                                          abs=1e-6)
    if failed is not None:
        assert loads[failed].disk_mb_s == 0 and loads[failed].nic_in == 0


def test_dirty_shards_by_hand() -> None:
    s = spec(heal={"outage_s": 600})
    # sequential 100 MB/s for 600 s over a 100 GB disk: 60 GB / 64 MiB + the shard it was in
    assert dirty_shards(vm("a", io=SEQ_WRITE), s, 1.0) == pytest.approx(60e9 / SHARD + 1)
    # random writes: n (1 - exp(-x T / n)) distinct shards of n = 1491
    rnd = IoProfile(read_pct=0, block_kib=4, iops=1, random=True)
    assert dirty_shards(vm("b", io=rnd), s, 1.0) == pytest.approx(
        1491 * (1 - math.exp(-600 / 1491)))
    heavy = IoProfile(read_pct=0, block_kib=4, iops=10_000, random=True)
    assert dirty_shards(vm("c", io=heavy), s, 1.0) == pytest.approx(1491)  # all of it
    assert dirty_shards(vm("d"), s, 1.0) == 0  # idle disk


def test_heal_and_rebuild_by_hand() -> None:
    """60 GB dirtied, healed at min(NIC share 625, disk 1000, 16 threads (8 x 2 daemons) x
    92.6 (100 MB/s a thread less the profile's 0.054 s a 64 MiB shard)) MB/s."""
    s = spec(heal={"outage_s": 600, "share": 0.5, "shd_thread_mb_s": 100})
    vms = [vm("a", io=SEQ_WRITE)]
    sets = replica_sets("replica3", "rotating")
    he = heal_estimate(CAND, s, vms, place(vms, HostRoom(1000, 1000)), sets)
    dirty = (60e9 / SHARD + 1) * SHARD
    assert he.limited_by == "NIC" and he.rate_mb_s == pytest.approx(625)
    assert he.dirty_bytes == pytest.approx(dirty)
    assert he.heal_s == pytest.approx(dirty / 625e6)
    assert he.window_s == pytest.approx(600 + dirty / 625e6)
    assert he.rebuild_s == pytest.approx(100e9 / 625e6)
    # rotating arbiter: each host holds data bricks of 2 of the 3 sets
    arb = heal_estimate(CAND, s, vms, place(vms, HostRoom(1000, 1000)),
                        replica_sets("arbiter", "rotating"))
    assert arb.dirty_bytes == pytest.approx(dirty * 2 / 3)


def test_throughput_check_names_the_bottleneck() -> None:
    """Three 400 MB/s writers on replica 3 over 10 GbE: 800 MB/s out of each NIC = 64%."""
    fast = IoProfile(read_pct=0, block_kib=1024, mb_s=400, random=False)
    vms = [vm(f"w{i}", io=fast, host=i + 1) for i in range(3)]
    s = spec(thresholds={"storage_utilization_pct": 60})
    rep = next(a for a in assess(s, vms) if a.volume_type == "replica3")
    thr = rep.check("throughput")
    assert not thr.passed
    # with a host down each survivor writes 600 MB/s but to one remote brick: 48%
    assert thr.measured == pytest.approx(100 * 2 * 400 / 1250)
    assert "storage NIC" in thr.reason and "normal" in thr.reason


def test_heal_is_bound_by_the_least_of_threads_nic_and_disk() -> None:
    """A heal runs at the least of the threads' rate (shd-max-threads x the three daemons
    healing, host1's own too, each thread at the per-thread rate less the per-shard entry
    cost), what heal
    may take of the storage NIC (0.5 x 1,250 MB/s of 10 GbE = 625 MB/s) and of the disk
    (2,000 MB/s), and the CPU cap (not binding on 32 cores), and the estimate names that
    bound. The shipped profile's rate (156 MB/s a thread, 0.106 s a shard: 125 MB/s on
    64 MiB shards) x 24: the NIC; a slower thread (20 MB/s): the threads."""
    vms = [vm("a", io=SEQ_WRITE)]
    sets = replica_sets("replica3", "rotating")
    s = spec()
    nic_share = s.heal.share * CAND.storage_mb_s
    assert nic_share == pytest.approx(625) and nic_share < s.heal.share * CAND.disk_mb_s
    for rate in (None, 565.0, 20.0):
        sp = s if rate is None else spec(heal={"shd_thread_mb_s": rate})
        n, _ = healing(CAND, sp, sets, 1)
        assert n == 3 * sp.volume_options.shd_max_threads  # the daemons of host0, 1 and 2
        threads = n * heal_thread_mb_s(SHARD, sp.heal.shd_thread_mb_s, sp.heal.entry_s)
        he = heal_estimate(CAND, sp, vms, place(vms, HostRoom(1000, 1000)), sets)
        if threads < nic_share:
            assert he.limited_by == "shd threads" and he.rate_mb_s == pytest.approx(threads)
        else:
            assert he.limited_by == "NIC" and he.rate_mb_s == pytest.approx(nic_share)
    assert 3 * 8 * heal_thread_mb_s(SHARD, s.heal.shd_thread_mb_s, s.heal.entry_s) > nic_share


def test_heal_on_few_cores_is_the_models_cpu_cap_by_hand() -> None:
    """Two cores a host, 8 threads, replica 3: 24 shards in flight on the 6 cores of the
    three healing hosts (the healed one's own daemon too), 4 a core; with the shipped
    profile the cores heal 6 x heal_core_mb_s / (1 + heal_concurrency x 3) = 30.8 MB/s, far
    below the NIC's 625: the heal CPU binds, at the model's own formula
    (:func:`hcisim.model.healrate.heal_cpu_mb_s`)."""
    p = load_profile(DEFAULT_PROFILE).parameters
    few = Candidate.model_validate(candidate(cores=2, gbps=10, disk_mb_s=2000, iops=100_000))
    vms = [vm("a", io=SEQ_WRITE, vcpus=1, ram=1)]
    s = spec(candidates=[candidate(cores=2)])
    assert (s.heal.core_mb_s, s.heal.concurrency) == (p.heal_core_mb_s, p.heal_concurrency)
    he = heal_estimate(few, s, vms, place(vms, HostRoom(1000, 1000)),
                       replica_sets("replica3", "rotating"))
    by_hand = 6 * p.heal_core_mb_s / (1 + p.heal_concurrency * (24 / 6 - 1))
    assert he.limited_by == "heal CPU"
    assert he.rate_mb_s == heal_cpu_mb_s(6.0, p.heal_core_mb_s, 24, p.heal_concurrency)
    assert he.rate_mb_s == pytest.approx(by_hand)
    assert he.heal_s == pytest.approx(he.dirty_bytes / (by_hand * 1e6))


def test_heal_in_flight_counts_every_healing_daemon() -> None:
    """Each of a host's data bricks is healed by the daemons of the hosts of its set (the
    arbiter's too, and its own host's after an outage, not onto a replaced disk); a
    rotating arbiter host holds data of two sets, healed side by side; the dedicated
    arbiter's host holds no data."""
    s = spec(volume_options={"shd_max_threads": 8})
    assert healing(CAND, s, replica_sets("replica3", "rotating"), 0) == (24, 96.0)
    assert healing(CAND, s, replica_sets("replica3", "rotating"), 0, own=False) == (16, 64.0)
    assert healing(CAND, s, replica_sets("arbiter", "rotating"), 0) == (48, 96.0)
    assert healing(CAND, s, replica_sets("arbiter", "rotating"), 0, own=False) == (32, 64.0)
    dedicated = replica_sets("arbiter", "dedicated")
    assert healing(CAND, s, dedicated, 0) == (24, 96.0)
    assert healing(CAND, s, dedicated, 2) == (0, 0.0)


@settings(max_examples=80, deadline=None)
@given(cores=st.integers(1, 64), threads=st.integers(1, 64), more=st.integers(1, 64),
       vt=st.sampled_from(["replica3", "arbiter"]),
       layout=st.sampled_from(["rotating", "dedicated"]),
       concurrency=st.floats(0, 10), shard_mib=st.sampled_from([4, 16, 64]))
def test_more_threads_on_few_cores_are_never_faster_than_the_cpu_formula(
        cores: int, threads: int, more: int, vt: str, layout: str, concurrency: float,
        shard_mib: int) -> None:
    """Whatever the threads, a heal is never faster than the CPU formula allows at its
    shards in flight; and once every healing core has a shard in flight, more threads are
    never faster than fewer were allowed (the formula falls with each shard per core
    beyond one)."""
    sets = replica_sets(vt, layout)  # type: ignore[arg-type]
    cand = Candidate.model_validate(candidate(cores=cores))
    vms = [vm("a", io=SEQ_WRITE, vcpus=1, ram=1)]
    placement = place(vms, HostRoom(1000, 1000))

    def estimate(k: int) -> tuple[float, float, float]:
        s = spec(candidates=[candidate(cores=cores)], heal={"concurrency": concurrency},
                 volume_options={"shd_max_threads": k, "shard_block_size_mib": shard_mib})
        n, healer_cores = healing(cand, s, sets, 0)
        he = heal_estimate(cand, s, vms, placement, sets)
        cap = heal_cpu_mb_s(healer_cores, s.heal.core_mb_s, n, s.heal.concurrency)
        row = next(r for r in he.per_host if r["host"] == 0)
        assert float(row["rate_mb_s"]) <= cap * (1 + 1e-12)
        return float(row["rate_mb_s"]), cap, n / healer_cores

    rate, cap, per_core = estimate(threads)
    faster, _, _ = estimate(threads + more)
    if per_core >= 1:
        assert faster <= cap * (1 + 1e-12)
    assert rate > 0


def test_an_unsharded_volume_heals_the_whole_image_of_every_vm_that_wrote() -> None:
    """``shard: false``: one random 4 KiB write a second for 600 s dirties a third of a
    100 GB disk's 64 MiB shards, but the whole image of an unsharded one (AFR marks the
    one file); a VM that only reads, an idle one and a stopped one (not HA, on the host
    that was away) leave nothing. Host2 back: a's image alone, by one heal thread at
    ``heal_thread_mb_s`` of a 100 GB entry; host1 back: a's and d's (d runs meanwhile),
    side by side, each by its own thread, so no longer."""
    trickle = IoProfile(read_pct=0, block_kib=4, iops=1, random=True)
    reader = IoProfile(read_pct=100, block_kib=4, iops=1000, random=True)
    vms = [vm("a", io=trickle, host=1), vm("b", io=reader, host=1), vm("c", host=3),
           vm("d", io=trickle, host=2, ha=False)]
    placement = place(vms, HostRoom(1000, 1000))
    sets = replica_sets("replica3", "rotating")
    # a thread rate of its own (two at once stay below the NIC's share, whatever the profile)
    whole = spec(heal={"outage_s": 600, "shd_thread_mb_s": 100}, volume_options={"shard": False})
    he = heal_estimate(CAND, whole, vms, placement, sets)
    rows = {int(r["host"]): r for r in he.per_host}
    one = 100e9 / (heal_thread_mb_s(100e9, whole.heal.shd_thread_mb_s, whole.heal.entry_s)
                   * 1e6)
    assert rows[1]["dirty_bytes"] == 100e9 and rows[0]["dirty_bytes"] == 200e9
    assert rows[1]["limited_by"] == rows[0]["limited_by"] == "shd threads"
    assert float(rows[1]["heal_s"]) == pytest.approx(one, rel=1e-12)
    assert float(rows[0]["heal_s"]) == pytest.approx(one, rel=1e-12)
    sharded = heal_estimate(CAND, spec(heal={"outage_s": 600}), vms, placement, sets)
    by_shards = next(r for r in sharded.per_host if r["host"] == 1)
    assert float(by_shards["dirty_bytes"]) == pytest.approx(
        1491 * (1 - math.exp(-600 / 1491)) * SHARD)  # about a third of a's disk


def test_unsharded_images_past_the_threads_wait_for_one() -> None:
    """Three 10 GB images, one thread in each of the three daemons healing host2 after its
    outage (20 MB/s a thread, no entry cost, no CPU cap): the three at once, 500 s, at 60
    MB/s. A rebuild onto a replaced disk copies the same images whole, filled to
    ``fill_pct``, without host2's own daemon: two images at once, then the third alone
    (2 x 250 s), not the 375 s of 15 GB at two threads' rate."""
    trickle = IoProfile(read_pct=0, block_kib=4, iops=1, random=True)
    vms = [vm(n, disk_gb=10, io=trickle, host=1) for n in "abc"]
    s = spec(heal={"shd_thread_mb_s": 20, "entry_s": 0, "core_mb_s": 0, "fill_pct": 50},
             volume_options={"shard": False, "shd_max_threads": 1})
    he = heal_estimate(CAND, s, vms, place(vms, HostRoom(1000, 1000)),
                       replica_sets("replica3", "rotating"))
    row = next(r for r in he.per_host if r["host"] == 1)
    assert float(row["heal_s"]) == pytest.approx(10e9 / 20e6, rel=1e-12)
    assert float(row["rate_mb_s"]) == pytest.approx(60, rel=1e-12)
    assert float(row["rebuild_bytes"]) == 15e9
    assert float(row["rebuild_s"]) == pytest.approx(2 * 5e9 / 20e6, rel=1e-12)


@settings(max_examples=80, deadline=None)
@given(images=st.lists(st.floats(0.1, 500), min_size=1, max_size=12),
       threads=st.integers(1, 16), cores=st.integers(1, 32),
       thread_mb_s=st.floats(5, 600), entry_s=st.floats(0, 1))
def test_an_unsharded_heal_is_never_faster_than_its_largest_image_or_its_path(
        images: list[float], threads: int, cores: int, thread_mb_s: float,
        entry_s: float) -> None:
    """One heal thread copies one image: never faster than the largest image at a thread's
    rate without entry cost, nor than every image's bytes at the path's bound (NIC, disk);
    when each image has its own thread and they are the same size, exactly one image at one
    thread's rate with the entry cost (as long as nothing else binds)."""
    cand = Candidate.model_validate(candidate(cores=cores))
    s = spec(candidates=[candidate(cores=cores)],
             heal={"shd_thread_mb_s": thread_mb_s, "entry_s": entry_s},
             volume_options={"shard": False, "shd_max_threads": threads})
    sets = replica_sets("replica3", "rotating")
    sizes = [g * 1e9 for g in images]
    heal_s, why = whole_image_heal(cand, s, HostLoad(), sets, 1, sizes)
    path = min(path_bounds(cand, s, HostLoad()).values())
    assert heal_s >= max(sizes) / (thread_mb_s * 1e6) * (1 - 1e-12)
    assert heal_s >= sum(sizes) / (path * 1e6) * (1 - 1e-12)
    same = [sizes[0]] * len(sizes)
    heal_same, why = whole_image_heal(cand, s, HostLoad(), sets, 1, same)
    if len(same) <= 2 * threads and why == "shd threads":
        one = heal_thread_mb_s(same[0], thread_mb_s, entry_s)
        assert heal_same == pytest.approx(same[0] / (one * 1e6), rel=1e-9)
