"""The link-efficiency experiment on the model: what its readings must be by the max-min
share of the shaped links and Little's law (the oracle the lab is judged against)."""

from __future__ import annotations

import pytest

from hcisim.calibration.experiments import EXPERIMENTS
from hcisim.calibration.linkload import BLOCK_KIB, LINK_GBPS
from hcisim.engines import observe

LINK_MB_S = LINK_GBPS * 1000 / 8  # 25 MB/s each way


def test_the_cases_shape_the_storage_links_and_ask_the_lab_to_impose_them() -> None:
    cases = EXPERIMENTS["link-efficiency"].cases(0, None)
    assert [c.label for c in cases] == ["replica3 qd=1", "replica3 qd=16", "arbiter qd=1",
                                        "arbiter qd=16"]
    for c in cases:
        sc = c.scenario
        assert sc.lab.impose and not sc.faults
        for h in sc.hosts:
            nic = next(n for n in h.nics if "storage" in n.networks)
            assert nic.gbps == LINK_GBPS
        prof = sc.io_profile("writer")
        assert prof is not None and prof.read_pct == 0 and prof.demand_mb_s > 4 * LINK_MB_S


@pytest.mark.parametrize("label", ["replica3 qd=16", "arbiter qd=16"])
def test_saturating_writers_share_the_links_and_wait_by_littles_law(label: str) -> None:
    """Replica 3: each write crosses its host's link twice (two remote bricks), so every
    VM gets half a link. Arbiter (host3's brick the arbiter): vm3 sends both data copies
    over host3's link (half of it), and the data hosts' receiving links carry vm3's copy
    and one other VM's: half each again. Saturated, the latency is queue depth x block /
    goodput."""
    case = next(c for c in EXPERIMENTS["link-efficiency"].cases(0, None) if c.label == label)
    readings = EXPERIMENTS["link-efficiency"].read(case, observe("model", case.scenario))
    goodput = {r.subject: r.value for r in readings if r.quantity == "goodput"}
    latency = {r.subject: r.value for r in readings if r.quantity == "write_latency"}
    assert set(goodput) == {"vm1", "vm2", "vm3"} == set(latency)
    for vm, g in goodput.items():
        assert g == pytest.approx(LINK_MB_S / 2, rel=1e-6)
        assert latency[vm] == pytest.approx(16 * BLOCK_KIB * 1024 / 1e6 / g * 1e3, rel=1e-3)


def test_one_request_in_flight_is_bound_by_its_latency_not_the_link() -> None:
    case = next(c for c in EXPERIMENTS["link-efficiency"].cases(0, None)
                if c.label == "replica3 qd=1")
    readings = EXPERIMENTS["link-efficiency"].read(case, observe("model", case.scenario))
    for r in readings:
        if r.quantity == "goodput":
            assert r.value < LINK_MB_S / 2
    lat = {r.subject: r.value for r in readings if r.quantity == "write_latency"}
    good = {r.subject: r.value for r in readings if r.quantity == "goodput"}
    for vm in good:  # Little's law with one in flight
        assert lat[vm] == pytest.approx(BLOCK_KIB * 1024 / 1e6 / good[vm] * 1e3, rel=1e-3)
