"""Usable capacity and file counts against hand computation, and their invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.capacity import file_count, replica_sets, usable_capacity
from hcisim.capacity.layout import disk_files
from tests.capacity.cases import spec, vm

GB = 1e9


def test_disk_files_one_per_shard() -> None:
    """A 100 GB disk at 64 MiB shards is ceil(100e9 / 2^26) = 1491 files."""
    assert disk_files(100, 64) == 1491
    assert disk_files(64 * 2**20 / GB, 64) == 1  # exactly one shard
    assert disk_files(0.001, 64) == 1  # the base file exists even when tiny
    assert disk_files(100, 512) == math.ceil(100e9 / 2**29)


def test_file_count_is_shards_plus_per_vm_plus_fixed() -> None:
    s = spec(files={"per_vm": 4, "fixed": 200})
    assert file_count(s, [vm("a"), vm("b")]) == 2 * 1491 + 2 * 4 + 200


def test_an_unsharded_volume_has_one_file_per_vm_disk() -> None:
    """``shard: false`` (features.shard off): each VM disk is one file whatever its size,
    so the arbiter brick holds a few files per VM instead of one per 64 MiB."""
    s = spec(files={"per_vm": 4, "fixed": 200}, volume_options={"shard": False})
    assert file_count(s, [vm("a"), vm("b", disk_gb=4000), vm("c", disk_gb=0)]) == (
        2 + 3 * 4 + 200)


def test_replica3_usable_is_raw_over_three() -> None:
    u = usable_capacity(spec(), 4000, "replica3", 3190)
    assert u.raw_gb == 12000
    assert u.usable_gb == pytest.approx(12000 / 3)
    assert u.arbiter_brick_gb == 0


def test_rotating_arbiter_by_hand() -> None:
    """Three sets; each host: two data bricks + one arbiter brick of files/3 x 4 KiB."""
    files = 3190
    u = usable_capacity(spec(arbiter_layout="rotating"), 4000, "arbiter", files)
    arbiter = files / 3 * 4096 / GB
    assert u.arbiter_brick_gb == pytest.approx(arbiter)
    assert u.data_brick_gb == pytest.approx((4000 - arbiter) / 2)
    # raw of the data bricks / 2 = raw / 2 minus the arbiters' share
    assert u.usable_gb == pytest.approx(6 * (4000 - arbiter) / 2 / 2)
    assert u.usable_gb == pytest.approx(12000 / 2 - 3 * arbiter / 2)


def test_dedicated_arbiter_by_hand() -> None:
    """One set: data on two hosts (usable = their raw / 2), arbiter brick on the third."""
    files = 3190
    u = usable_capacity(spec(arbiter_layout="dedicated"), 4000, "arbiter", files)
    assert u.usable_gb == pytest.approx(2 * 4000 / 2)
    assert u.arbiter_brick_gb == pytest.approx(files * 4096 / GB)
    assert u.fits


def test_arbiter_that_cannot_fit_is_reported() -> None:
    u = usable_capacity(spec(arbiter_layout="dedicated"), 1.0, "arbiter", 1e6)
    assert not u.fits  # 1e6 files x 4 KiB = 4.1 GB > a 1 GB disk


def test_layout_shares_add_up() -> None:
    for vt, layout, data_copies in (("replica3", "rotating", 3), ("arbiter", "rotating", 2),
                                    ("arbiter", "dedicated", 2)):
        sets = replica_sets(vt, layout)  # type: ignore[arg-type]
        assert sum(s.weight for s in sets) == pytest.approx(1.0)
        assert all(len(s.data) == data_copies for s in sets)
        assert all(s.arbiter is None or s.arbiter not in s.data for s in sets)


disk = st.floats(min_value=10, max_value=100_000)
files = st.floats(min_value=0, max_value=5e7)


@settings(max_examples=60, deadline=None)
@given(a=disk, b=disk, n=files, layout=st.sampled_from(["rotating", "dedicated"]),
       vt=st.sampled_from(["replica3", "arbiter"]))
def test_usable_monotone_in_disk_size(a: float, b: float, n: float, layout: str,
                                      vt: str) -> None:
    s = spec(arbiter_layout=layout)
    lo, hi = sorted((a, b))
    assert (usable_capacity(s, lo, vt, n).usable_gb  # type: ignore[arg-type]
            <= usable_capacity(s, hi, vt, n).usable_gb + 1e-9)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(r=disk, n=files)
def test_arbiter_bounds(r: float, n: float) -> None:
    """Arbiter never beats raw/2 and never loses to replica 3 while its brick is small."""
    s = spec(arbiter_layout="rotating")
    arb = usable_capacity(s, r, "arbiter", n)
    rep = usable_capacity(s, r, "replica3", n)
    assert arb.usable_gb <= arb.raw_gb / 2 + 1e-9
    if arb.arbiter_brick_gb <= r / 4:
        assert arb.usable_gb >= rep.usable_gb
