"""Gluster rules and heal arithmetic as pure functions (semantics.md is the reference)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.model.elaborate import BrickModel, VolumeModel, elaborate
from hcisim.model.gluster import (
    has_client_quorum,
    read_brick,
    server_quorum_met,
)
from hcisim.model.heal import BrickHeal, dirty_after_random, dirty_after_sequential
from hcisim.scenario import Disk, Scenario

from .cases import HOSTS, host


def volume(kind: str, **options: object) -> VolumeModel:
    sc = Scenario.model_validate({
        "name": "rules", "hosts": [host(h, 10, 1000, 100_000) for h in HOSTS],
        "volumes": [{"name": "v", "type": kind, "bricks": [{"host": h} for h in HOSTS],
                     "options": options}]})
    return elaborate(sc).volumes["v"]


@pytest.mark.parametrize(("up", "ok"), [
    ({"host1", "host2", "host3"}, True), ({"host1", "host2"}, True), ({"host2", "host3"}, True),
    ({"host1"}, False), ({"host3"}, False), (set(), False)])
def test_replica3_auto_quorum_needs_two_of_three(up: set[str], ok: bool) -> None:
    assert has_client_quorum(volume("replica3"), up, ()) is ok


def test_arbiter_rules() -> None:
    """arbiter.t: one data brick down: writes go on; data + arbiter down: ENOTCONN; the
    arbiter and a blamed data brick: ENOTCONN; arbiter down: I/O continues."""
    v = volume("arbiter")
    assert has_client_quorum(v, {"host1", "host3"}, ())
    assert not has_client_quorum(v, {"host1", "host3"}, {"host1"})
    assert not has_client_quorum(v, {"host1"}, ())
    assert has_client_quorum(v, {"host1", "host2"}, ())
    assert has_client_quorum(v, {"host1", "host2"}, {"host1"})  # host2 is a good source
    assert not has_client_quorum(v, {"host3"}, ())


def test_fixed_and_none_quorum() -> None:
    assert not has_client_quorum(volume("replica3", quorum_type="fixed", quorum_count=3),
                                 {"host1", "host2"}, ())
    assert has_client_quorum(volume("replica3", quorum_type="none"), {"host2"}, ())


def test_server_quorum_two_of_three() -> None:
    assert server_quorum_met(2, 3, 51.0)
    assert not server_quorum_met(1, 3, 51.0)
    assert not server_quorum_met(2, 3, 100.0)


def test_read_brick_is_stable_and_a_candidate() -> None:
    cands = ["host1", "host2", "host3"]
    picks = {read_brick(f"vm{i}", "data", cands) for i in range(50)}
    assert picks <= set(cands) and len(picks) == 3  # spread over the bricks, no local bias
    assert read_brick("vm1", "data", cands) == read_brick("vm1", "data", cands)
    assert read_brick("vm1", "data", []) is None


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.floats(0, 1e5), st.floats(0, 1e5))
def test_dirty_shards_compose(n: int, k1: float, k2: float) -> None:
    """Coupon collector: k1 then k2 random writes dirty as many shards as k1 + k2 at once,
    never more than N, and at least one shard for at least one write."""
    once = dirty_after_random(0.0, n, k1 + k2)
    twice = dirty_after_random(dirty_after_random(0.0, n, k1), n, k2)
    assert twice == pytest.approx(once, rel=1e-9, abs=1e-6)
    assert 0.0 <= once <= n + 1e-9
    expected = n * (1 - (1 - 1 / n) ** (k1 + k2))
    assert once == pytest.approx(expected, rel=1e-9, abs=1e-6)
    if k1 >= 1:
        assert dirty_after_random(0.0, n, k1) >= 1 - 1e-9


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 500), st.integers(1, 500), st.floats(0, 1e5), st.booleans())
def test_writes_on_a_hot_set_never_undo_dirty_shards(hot: int, extra: int, k: float,
                                                     random: bool) -> None:
    """A disk dirty beyond its hot set (a failed disk made all N shards dirty) stays as dirty:
    writes on the hot set only add; a clean disk never gets more dirty than its hot set."""
    shard = 1.0
    n = hot + extra
    for d in (0.0, float(hot) / 2, float(n)):
        after = (dirty_after_random(d, hot, k) if random
                 else dirty_after_sequential(d, hot, k * shard, shard))
        assert d - 1e-9 <= after <= max(d, float(hot)) + 1e-9


def test_sequential_writes_fill_shards_in_order() -> None:
    shard = 64 * 1024 * 1024
    assert dirty_after_sequential(0.0, 100, 10.5 * shard, shard) == pytest.approx(10.5)
    assert dirty_after_sequential(0.0, 100, 1000 * shard, shard) == 100


def _brick() -> BrickModel:
    return BrickModel("v", "host2", 1, "data", Disk(), "host2/disk/brick0")


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), st.floats(0.01, 500), min_size=1),
       st.floats(0, 1))
def test_heal_copies_whole_shards(dirty: dict[str, float], part: float) -> None:
    """Full algorithm: a complete episode copies ceil(dirty) shards per file, whole; an
    interrupted one keeps only the whole shards it finished."""
    shard = 4.0 * 1024 * 1024
    h = BrickHeal(_brick(), shard, dict(dirty))
    ep = h.begin(0.0, "host1")
    assert ep.shards == sum(math.ceil(v - 1e-9) for v in dirty.values())
    ep.healed_bytes = part * ep.shards * shard
    _, done, clean1 = h.finish(complete=False)
    assert done == math.floor(part * ep.shards + 1e-7)
    assert h.pending_shards() == pytest.approx(ep.shards - done)
    ep2 = h.begin(1.0, "host1")
    _, done2, clean2 = h.finish(complete=True)
    assert done + done2 == ep.shards and ep2.shards == done2
    assert h.pending_shards() == 0 and sorted(clean1 + clean2) == sorted(dirty)


def test_heal_parallelism_tails_off() -> None:
    h = BrickHeal(_brick(), 1.0, {"a": 10.0})
    h.begin(0.0, "host1")
    assert h.threads(8) == 8
    assert h.next_milestone_bytes(8) == pytest.approx(2.0)  # 10 -> 8 left
    assert h.episode is not None
    h.episode.healed_bytes = 2.0
    assert h.threads(8) == 8 and h.next_milestone_bytes(8) == pytest.approx(1.0)
    h.episode.healed_bytes = 9.5
    assert h.threads(8) == 1 and h.next_milestone_bytes(8) == pytest.approx(0.5)
