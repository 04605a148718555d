"""Hypothesis strategies for small random clusters (shared by the compute tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from hcisim.placement.inventory import AffinityRule, ClusterSpec, HostSpec, VmSpec

POLICIES = ("evenly_distributed", "vm_evenly_distributed", "power_saving", "none")


@st.composite
def clusters(draw: st.DrawFn, max_vms: int = 9, affinity: bool = True) -> ClusterSpec:
    n_hosts = draw(st.integers(2, 4))
    hosts = tuple(HostSpec(f"h{i}", cores=draw(st.sampled_from([2, 4, 8])),
                           ram_gib=float(draw(st.sampled_from([16, 24, 32, 48]))),
                           power_management=draw(st.booleans()))
                  for i in range(n_hosts))
    n_vms = draw(st.integers(1, max_vms))
    vms = []
    for i in range(n_vms):
        pinned: tuple[str, ...] = ()
        if draw(st.integers(0, 5)) == 0:
            pinned = tuple(sorted(draw(st.sets(st.sampled_from([h.name for h in hosts]),
                                               min_size=1, max_size=2))))
        vms.append(VmSpec(f"vm{i}", vcpus=draw(st.sampled_from([1, 2, 4, 8])),
                          ram_gib=float(draw(st.sampled_from([2, 4, 8, 12, 16]))),
                          ha=draw(st.booleans()), priority=draw(st.sampled_from(
                              ["low", "medium", "high"])), lease=draw(st.booleans()),
                          pinned_to=pinned, boot_s=float(draw(st.sampled_from([10, 30, 60])))))
    rules: list[AffinityRule] = []
    if affinity and n_vms >= 2 and draw(st.booleans()):
        members = draw(st.sets(st.sampled_from([v.name for v in vms]), min_size=2, max_size=3))
        rules.append(AffinityRule("g", frozenset(members), positive=draw(st.booleans()),
                                  enforcing=draw(st.booleans())))
    return ClusterSpec(hosts, tuple(vms), policy=draw(st.sampled_from(POLICIES)),
                       affinity=tuple(rules),
                       cpu_overcommit=float(draw(st.sampled_from([1.0, 2.0, 4.0]))))
