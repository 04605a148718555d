"""Scheduler: each filter, each policy's choice, and that no placement ever breaks a filter."""

from __future__ import annotations

from hypothesis import given, settings

from hcisim.placement.inventory import AffinityRule, ClusterSpec, HostSpec, VmSpec, loads
from hcisim.placement.scheduler import (
    choose_host,
    place,
    schedule_unplaced,
    unbalanced_hosts,
)
from tests.compute.strategies import clusters

HOSTS = (HostSpec("a", 8, 64.0), HostSpec("b", 8, 64.0), HostSpec("c", 8, 64.0))


def valid(cluster: ClusterSpec, placement: dict[str, str]) -> list[str]:
    """Every filter checked on the final placement, independently of the scheduler's code."""
    bad = []
    for h, ld in loads(cluster, placement).items():
        if ld.ram_gib > cluster.ram_capacity_gib(h) + 1e-9:
            bad.append(f"{h} memory")
        if ld.vcpus > cluster.vcpu_capacity(h) + 1e-9:
            bad.append(f"{h} cpu")
    for vm, h in placement.items():
        spec = cluster.vm(vm)
        if spec.pinned_to and h not in spec.pinned_to:
            bad.append(f"{vm} pinning")
        if spec.vcpus > cluster.host(h).cores:
            bad.append(f"{vm} cores")
    for r in cluster.affinity:
        if not r.enforcing:
            continue
        hosts = [placement[m] for m in r.vms if m in placement]
        if r.positive and len(set(hosts)) > 1:
            bad.append(f"{r.name} split")
        if not r.positive and len(set(hosts)) < len(hosts):
            bad.append(f"{r.name} together")
    return bad


def test_memory_filter_excludes_full_host() -> None:
    c = ClusterSpec(HOSTS, (VmSpec("big", ram_gib=60), VmSpec("x", ram_gib=8)))
    assert choose_host(c, c.vm("x"), {"big": "a"}) == "b"
    assert choose_host(c, c.vm("x"), {"big": "a"}, unavailable={"b", "c"}) is None


def test_memory_overcommit_lets_more_in() -> None:
    c = ClusterSpec(HOSTS[:1], (VmSpec("big", ram_gib=60), VmSpec("x", ram_gib=8)),
                    memory_overcommit_pct=150)
    assert choose_host(c, c.vm("x"), {"big": "a"}) == "a"


def test_cpu_filter_counts_overcommit_and_cores() -> None:
    c = ClusterSpec(HOSTS, (VmSpec("wide", vcpus=16), VmSpec("y", vcpus=8)), cpu_overcommit=1.0)
    assert choose_host(c, c.vm("wide"), {}) is None  # more vCPUs than any host has cores
    assert choose_host(c, c.vm("y"), {}, unavailable={"b", "c"}) == "a"
    c2 = ClusterSpec(HOSTS, (VmSpec("y", vcpus=8), VmSpec("z", vcpus=1)), cpu_overcommit=1.0)
    assert choose_host(c2, c2.vm("z"), {"y": "a"}, unavailable={"b", "c"}) is None


def test_pinning_and_affinity() -> None:
    vms = (VmSpec("p", pinned_to=("c",)), VmSpec("n1"), VmSpec("n2"), VmSpec("t1"), VmSpec("t2"))
    c = ClusterSpec(HOSTS, vms, affinity=(
        AffinityRule("apart", frozenset({"n1", "n2"})),
        AffinityRule("together", frozenset({"t1", "t2"}), positive=True)))
    assert choose_host(c, c.vm("p"), {}) == "c"
    assert choose_host(c, c.vm("n2"), {"n1": "a"}) != "a"
    assert choose_host(c, c.vm("t2"), {"t1": "b"}) == "b"
    assert choose_host(c, c.vm("t2"), {"t1": "b"}, unavailable={"b"}) is None


def test_soft_affinity_is_a_preference_only() -> None:
    c = ClusterSpec(HOSTS, (VmSpec("s1"), VmSpec("s2")), affinity=(
        AffinityRule("soft", frozenset({"s1", "s2"}), enforcing=False),))
    assert choose_host(c, c.vm("s2"), {"s1": "a"}) != "a"
    assert choose_host(c, c.vm("s2"), {"s1": "a"}, unavailable={"b", "c"}) == "a"


def test_policies_choose_as_documented() -> None:
    vms = (VmSpec("l1", vcpus=8, ram_gib=8), VmSpec("s1", vcpus=1, ram_gib=8),
           VmSpec("s2", vcpus=1, ram_gib=8), VmSpec("new", vcpus=1, ram_gib=1))
    placed = {"l1": "a", "s1": "b", "s2": "b"}
    pick = {p: choose_host(ClusterSpec(HOSTS, vms, policy=p), vms[-1], placed)
            for p in ("evenly_distributed", "vm_evenly_distributed", "power_saving", "none")}
    assert pick["evenly_distributed"] == "c"  # no CPU load at all
    assert pick["power_saving"] == "a"  # the most loaded host that fits
    assert pick["none"] == "a"  # first fit
    # VM count: a runs 1 but is the SPM (+5 grace); b runs 2; c runs 0
    assert pick["vm_evenly_distributed"] == "c"
    counts_b_c = ClusterSpec(HOSTS, vms, policy="vm_evenly_distributed")
    assert choose_host(counts_b_c, vms[-1], {"l1": "b", "s1": "c", "s2": "c"}) == "b"


def test_unplaced_go_high_priority_first_then_larger() -> None:
    vms = (VmSpec("low", ram_gib=40), VmSpec("hi", ram_gib=40, priority="high"),
           VmSpec("hi_big", ram_gib=50, priority="high"))
    c = ClusterSpec(HOSTS[:1], vms)
    res = schedule_unplaced(c, {})
    assert [v for v, _ in res.placed] == ["hi_big"]
    assert res.unplaced == ("hi", "low")


def test_unbalanced_hosts_follow_high_vm_count_and_threshold() -> None:
    vms = tuple(VmSpec(f"v{i}", ram_gib=1, vcpus=1) for i in range(14))
    c = ClusterSpec(HOSTS, vms, policy="vm_evenly_distributed", spm_vm_grace=0)
    assert unbalanced_hosts(c, {f"v{i}": "b" for i in range(14)}) == ("b",)
    assert unbalanced_hosts(c, {f"v{i}": "abc"[i % 3] for i in range(14)}) == ()


@settings(max_examples=60, deadline=None)
@given(clusters())
def test_placement_never_breaks_a_filter(cluster: ClusterSpec) -> None:
    res = schedule_unplaced(cluster, {})
    assert valid(cluster, res.placement) == []
    assert sorted([*res.placement, *res.unplaced]) == sorted(v.name for v in cluster.vms)
    again = schedule_unplaced(cluster, {})
    assert again == res  # deterministic


@settings(max_examples=40, deadline=None)
@given(clusters())
def test_an_unplaced_vm_fits_nowhere(cluster: ClusterSpec) -> None:
    """A VM left out really has no host: trying it alone on the final placement fails too."""
    res = place(cluster, {}, list(cluster.vms))
    for name in res.unplaced:
        assert choose_host(cluster, cluster.vm(name), res.placement) is None
