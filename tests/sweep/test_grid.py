"""The sweep grid: --set parsing, [*] wildcards, validation before any run, seeds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.scenario import load_scenario, with_overrides
from hcisim.sweep import (
    SweepError,
    expand,
    parse_set,
    plan_sweep,
    replication_seed,
    split_levels,
)

BASE = load_scenario("scenarios/default.yaml")


def test_levels_are_yaml_scalars() -> None:
    assert parse_set("hosts[0].nics[1].gbps=10,25.5").levels == (10, 25.5)
    assert parse_set("volumes[1].type=replica3, arbiter").levels == ("replica3", "arbiter")
    assert parse_set("hosts[0].power_management=true,off").levels == (True, False)
    f = parse_set("hosts[0].nics[1].networks=[storage],[storage, migration]")
    assert f.levels == (["storage"], ["storage", "migration"])


def test_split_respects_brackets_and_quotes() -> None:
    assert split_levels("[a,b],{c: 1, d: 2},'x,y',z") == ["[a,b]", "{c: 1, d: 2}", "'x,y'", "z"]


@pytest.mark.parametrize(("arg", "message"), [
    ("hosts[0].ram_gib", "expected PATH=V1,V2"),
    ("hosts[0].ram_gib=1,,2", "empty value"),
    ("hosts[0].ram_gib=1,1", "given twice"),
    ("seed=1,2", "the seed comes from --seed"),
    ("hosts[0]..ram=1", "not a field path"),
])
def test_bad_set_arguments(arg: str, message: str) -> None:
    with pytest.raises(SweepError, match=message):
        parse_set(arg)


def test_wildcards_expand_against_the_scenario() -> None:
    data = BASE.model_dump(mode="json")
    assert expand(data, "hosts[*].ram_gib") == [f"hosts[{i}].ram_gib" for i in range(3)]
    assert len(expand(data, "hosts[*].nics[*].gbps")) == 6
    assert expand(data, "volumes[1].type") == ["volumes[1].type"]


def test_index_changes_one_host_wildcard_all() -> None:
    """default.yaml's hosts share a YAML anchor; after loading they are separate hosts."""
    one = plan_sweep(BASE, [parse_set("hosts[0].ram_gib=512")]).runs[0]
    sc = with_overrides(BASE, dict(one.overrides))
    assert [h.ram_gib for h in sc.hosts] == [512, 256, 256]
    every = plan_sweep(BASE, [parse_set("hosts[*].ram_gib=512")]).runs[0]
    sc = with_overrides(BASE, dict(every.overrides))
    assert [h.ram_gib for h in sc.hosts] == [512, 512, 512]


@pytest.mark.parametrize(("arg", "message"), [
    ("hosts[0].ramgib=1", "--set hosts[0].ramgib=1: hosts[0].ramgib: no such field"),
    ("hosts[7].ram_gib=1", "--set hosts[7].ram_gib=1: hosts[7].ram_gib: no such field"),
    ("volumes[1].type=replica3,raid5",
     "--set volumes[1].type=raid5: volumes[1].type: must be replica3 or arbiter"),
    ("hosts[*].ram_gib=lots", "--set hosts[*].ram_gib=lots: hosts[0].ram_gib: Input should"),
    ("nosuch[*].x=1", "--set nosuch[*].x: nosuch: no such field"),
    ("duration_s=100", "--set duration_s=100: faults[0].at_s: 900.0 is not before"),
])
def test_bad_paths_and_values_are_named_before_any_run(arg: str, message: str) -> None:
    with pytest.raises(SweepError) as exc:
        plan_sweep(BASE, [parse_set(arg)])
    assert any(p.startswith(message) for p in exc.value.problems), exc.value.problems


def test_overlapping_factors_are_refused() -> None:
    with pytest.raises(SweepError, match="overlaps"):
        plan_sweep(BASE, [parse_set("hosts[*].ram_gib=128"), parse_set("hosts[1].ram_gib=64")])


def test_grid_size_and_order() -> None:
    plan = plan_sweep(BASE, [parse_set("volumes[1].type=replica3,arbiter"),
                             parse_set("hosts[*].nics[1].gbps=10,25,40")], replications=4)
    assert len(plan.runs) == 2 * 3 * 4 and plan.points == 6
    assert [r.index for r in plan.runs] == list(range(24))
    assert plan.runs[4].levels == (("volumes[1].type", "replica3"),
                                   ("hosts[*].nics[1].gbps", 25))


def test_seed_is_seedsequence_of_base_and_replication() -> None:
    expected = np.random.SeedSequence(42).spawn(3)[2].generate_state(1, dtype=np.uint64)[0]
    assert replication_seed(42, 2) == int(expected) >> 1


@settings(max_examples=30, deadline=None)
@given(base=st.integers(0, 2**32), reps=st.integers(1, 6), extra=st.integers(1, 3))
def test_adding_a_level_changes_no_other_seed(base: int, reps: int, extra: int) -> None:
    small = plan_sweep(BASE, [parse_set("hosts[*].ram_gib=128,256")], reps, base)
    more = ",".join(str(128 + 64 * i) for i in range(2 + extra))
    big = plan_sweep(BASE, [parse_set(f"hosts[*].ram_gib={more}")], reps, base)
    seeds = {(r.levels, r.replication): r.seed for r in big.runs}
    for r in small.runs:
        assert seeds[(r.levels, r.replication)] == r.seed
    per_rep = [r.seed for r in small.runs if r.point == 0]
    assert len(set(per_rep)) == reps  # every replication its own stream
    assert all(0 <= s < 2**63 for s in per_rep)
