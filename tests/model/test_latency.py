"""Closed-loop latency (docs/model.md, Latency): a guest with a queue depth keeps at most that
many requests in flight, so Little's law ties its latency to its throughput.

Oracles: ``latency x IOPS <= queue depth`` always; ``== queue depth`` when the disk gets less
than it demands (saturated); below saturation the open path latency, computed here by hand
from the documented formula for a lone writer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings

from hcisim.model import simulate
from hcisim.scenario import Scenario

from .cases import HOSTS, clusters, host

HOSTS_10G = [host(h, 10.0, 3000.0, 200_000.0) for h in HOSTS]


def lone_writer(queue_depth: int, mb_s: float, block_kib: float = 1024.0) -> Scenario:
    """One 100 % write VM on host1 of an otherwise idle replica-3 cluster (10 Gb/s NICs,
    3000 MB/s disks)."""
    return Scenario.model_validate({
        "name": "closed-loop", "duration_s": 60.0, "hosts": HOSTS_10G,
        "volumes": [{"name": "v", "type": "replica3",
                     "bricks": [{"host": h} for h in HOSTS]}],
        "io_profiles": {"w": {"read_pct": 0.0, "block_kib": block_kib,
                              "queue_depth": queue_depth, "mb_s": mb_s}},
        "vms": [{"name": "vm0", "host": "host1",
                 "disks": [{"volume": "v", "size_gb": 10, "io": "w"}]}]})


def _row(sc: Scenario) -> Any:
    io = simulate(sc)["vm_io"]
    assert len(io) == 1
    return io.iloc[0]


def test_saturated_writer_latency_is_queue_depth_over_iops() -> None:
    """A 1 MiB writer asking for 5 GB/s gets NIC / 2 (two remote copies): 625 MB/s. Its
    latency is queue depth / IOPS (tens of ms), not an open queue at 0.99 utilisation."""
    for qd in (1, 8, 32):
        r = _row(lone_writer(qd, 5000.0))
        assert r["write_mb_s"] < 5000.0
        assert r["latency_ms"] * r["write_iops"] / 1000.0 == pytest.approx(qd, rel=1e-9)
        assert r["latency_ms"] < 100.0
    # the same throughput at four times the queue depth: four times the latency
    lo, hi = _row(lone_writer(8, 5000.0)), _row(lone_writer(32, 5000.0))
    assert hi["write_mb_s"] == pytest.approx(lo["write_mb_s"])
    assert hi["latency_ms"] == pytest.approx(4 * lo["latency_ms"])


def test_unsaturated_writer_has_the_open_path_latency() -> None:
    """4 KiB writes at 100 IOPS: the path latency of the documented formula (overhead + the
    slowest replica's leg; each leg RTT + M/M/1 sojourns of disk and two NIC directions at
    their utilisations), whatever the queue depth."""
    blk = 4096.0
    mb_s = 100 * blk / 1e6
    disk_service = 0.1 + blk / (3000.0 * 1e6) * 1000.0
    nic_service = blk / (1250.0 * 1e6) * 1000.0
    rho_disk = mb_s * (1 / 3000.0 + (1e6 / blk) / 200_000.0)
    rho_nic_tx = 2 * mb_s / 1250.0  # host1 sends each byte to two remote bricks
    rho_nic_rx = mb_s / 1250.0
    remote = (0.1 + disk_service / (1 - rho_disk) + nic_service / (1 - rho_nic_tx)
              + nic_service / (1 - rho_nic_rx))
    expected = 0.15 + remote  # engine_overhead_ms of the shipped profile + slowest leg
    for qd in (1, 4, 64):
        r = _row(lone_writer(qd, mb_s, block_kib=4.0))
        assert r["write_mb_s"] == pytest.approx(mb_s)
        assert r["latency_ms"] == pytest.approx(expected, rel=1e-9)
        assert r["latency_ms"] * r["write_iops"] / 1000.0 < qd


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(clusters(n_vms=(1, 8)))
def test_littles_law_holds_for_every_closed_loop(spec: dict[str, Any]) -> None:
    """Random clusters and workloads, no faults: for every interval in which a VM disk does
    I/O, latency x IOPS is at most its queue depth, and equal to it when the disk gets
    less than it demands (rates too small for floats to tell are left out: phases may scale
    a load down to denormals)."""
    sc = Scenario.model_validate(spec)
    io = simulate(sc)["vm_io"]
    qd = {vm.name: sc.io_profile(vm.disks[0].io).queue_depth  # type: ignore[union-attr]
          for vm in sc.vms}
    rows = io[(io["status"] == "ok") & (io["read_iops"] + io["write_iops"] > 0)]
    iops = (rows["read_iops"] + rows["write_iops"]).to_numpy(float)
    in_flight = rows["latency_ms"].to_numpy(float) * iops / 1000.0
    depth = np.array([qd[str(vm)] for vm in rows["vm"]], dtype=float)
    demand = rows["demand_mb_s"].to_numpy(float)
    got = (rows["read_mb_s"] + rows["write_mb_s"]).to_numpy(float)
    assert (in_flight <= depth * (1 + 1e-9)).all()
    saturated = (demand > 1e-9) & (got < demand * (1 - 1e-6))
    assert in_flight[saturated] == pytest.approx(depth[saturated], rel=1e-9)
    event(f"saturated rows: {'some' if saturated.any() else 'none'}")
