"""The n+1 bin-packing check: hand cases, a brute-force oracle, and "more RAM never hurts"."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.capacity import InventoryVm, assess, failover, place
from hcisim.capacity.placement import HostRoom, exact_packing, first_fit_decreasing
from tests.capacity.cases import candidate, spec, vm

ROOM = HostRoom(ram_gib=100, vcpus=100)


def test_place_balances_by_free_ram() -> None:
    vms = [vm("a", 40), vm("b", 30), vm("c", 20), vm("d", 10)]
    p = place(vms, ROOM)
    assert p.host_of == {"a": 0, "b": 1, "c": 2, "d": 2}
    assert not p.unplaced


def test_place_reports_what_does_not_fit() -> None:
    p = place([vm("a", 90), vm("b", 90), vm("c", 90), vm("d", 90)], ROOM)
    assert p.unplaced == ["d"]


def test_exact_search_rescues_where_first_fit_fails() -> None:
    """Survivors free 50 and 40 GiB; HA VMs 40+30+20: FFD strands the 20, {30,20}+{40} fits."""
    vms = [vm("a", 40, host=1), vm("b", 30, host=1), vm("c", 20, host=1),
           vm("fill2", 50, ha=False, host=2), vm("fill3", 60, ha=False, host=3)]
    f = failover(vms, place(vms, ROOM), ROOM, failed=0)
    assert f.fits and f.exact
    assert f.target_of == {"a": 2, "b": 1, "c": 1}
    assert f.ram_used_gib == 50 + 60 + 90


def test_first_fit_is_not_monotone_in_ram_but_the_check_is() -> None:
    """Two resources: more RAM on the first host lets FFD fill its vCPUs with the wrong VM."""
    x = vm("x", ram=12, vcpus=1)
    y = vm("y", ram=8, vcpus=4)
    tight = [[10.0, 4.0], [20.0, 3.0]]
    roomy = [[12.0, 4.0], [20.0, 3.0]]
    assert not first_fit_decreasing([x, y], tight, [1, 2])[1]  # FFD fits with less RAM
    assert first_fit_decreasing([x, y], roomy, [1, 2])[1] == ["y"]  # and fails with more
    assert exact_packing([x, y], roomy, [1, 2]) == {"x": 2, "y": 1}


def test_ha_vms_that_do_not_fit_are_named() -> None:
    vms = [vm("big1", 30, host=1), vm("big2", 30, host=1), vm("big3", 30, host=1),
           vm("fill2", 60, ha=False, host=2), vm("fill3", 60, ha=False, host=3)]
    f = failover(vms, place(vms, ROOM), ROOM, failed=0)
    assert not f.fits  # 90 GiB of HA VMs, 40 + 40 GiB free
    assert f.unplaced == ("big3",)


def test_non_ha_vms_of_the_failed_host_are_not_restarted() -> None:
    vms = [vm("ha", 10, host=1), vm("huge", 90, ha=False, host=1),
           vm("fill2", 80, ha=False, host=2), vm("fill3", 80, ha=False, host=3)]
    f = failover(vms, place(vms, ROOM), ROOM, failed=0)
    assert f.fits and f.ha_vms == ("ha",)


def _brute_force(items: Sequence[InventoryVm], free: list[list[float]]) -> bool:
    for choice in itertools.product(range(len(free)), repeat=len(items)):
        ram = [0.0] * len(free)
        cpu = [0.0] * len(free)
        for it, b in zip(items, choice, strict=True):
            ram[b] += it.ram_gib
            cpu[b] += it.vcpus
        if all(ram[b] <= free[b][0] + 1e-9 and cpu[b] <= free[b][1] + 1e-9
               for b in range(len(free))):
            return True
    return False


items = st.lists(st.tuples(st.integers(1, 64), st.integers(1, 16)), min_size=1, max_size=7)
bins = st.lists(st.tuples(st.integers(0, 128), st.integers(0, 32)), min_size=2, max_size=2)


@settings(max_examples=80, deadline=None)
@given(its=items, free=bins)
def test_exact_packing_agrees_with_brute_force(its: list[tuple[int, int]],
                                               free: list[tuple[int, int]]) -> None:
    vms = [vm(f"v{i}", ram=r, vcpus=c) for i, (r, c) in enumerate(its)]
    room = [[float(r), float(c)] for r, c in free]
    found = exact_packing(vms, room, [1, 2])
    assert found is not False  # tiny cases never hit the search budget
    assert (found is not None) == _brute_force(vms, room)
    if isinstance(found, dict):  # and what it found is a real packing
        for b, (r, c) in zip((1, 2), free, strict=True):
            on = [v for v in vms if found[v.name] == b]
            assert sum(v.ram_gib for v in on) <= r and sum(v.vcpus for v in on) <= c
    _, missing = first_fit_decreasing(vms, room, [1, 2])
    if not missing:  # FFD is sound: when it fits, a packing exists
        assert _brute_force(vms, room)


inventory = st.lists(
    st.tuples(st.integers(1, 96), st.integers(1, 24), st.booleans(),
              st.sampled_from([None, 1, 2, 3])),
    min_size=1, max_size=9)


@settings(max_examples=40, deadline=None)
@given(inv=inventory, ram=st.integers(32, 512), more=st.integers(1, 512),
       cores=st.integers(4, 64))
def test_more_ram_never_turns_a_pass_into_a_fail(inv: list[tuple[int, int, bool, int | None]],
                                                 ram: int, more: int, cores: int) -> None:
    vms = [vm(f"v{i}", ram=r, vcpus=c, ha=ha, host=h) for i, (r, c, ha, h) in enumerate(inv)]
    small = assess(spec([candidate("a", cores=cores, ram_gib=ram)]), vms)
    big = assess(spec([candidate("a", cores=cores, ram_gib=ram + more)]), vms)
    for s, b in zip(small, big, strict=True):
        assert s.volume_type == b.volume_type
        assert not (s.passed and not b.passed)
        if len(s.numbers["placement"]) == len(vms):
            # Everything placed: the same placement with more RAM, so check by check too.
            assert s.numbers["placement"] == b.numbers["placement"]
            for cs, cb in zip(s.checks, b.checks, strict=True):
                assert not (cs.passed and not cb.passed), (cs, cb)
