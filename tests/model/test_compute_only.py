"""Compute-only hosts (docs/model.md, "Compute-only hosts"): a host without brick disks runs
VMs and mounts the volumes; every copy of its VMs' writes leaves over its own NIC.

Oracles: the client NIC bound (writes x data copies <= NIC, hypothesis over random clusters
with a compute-only host4), the exact saturated rate of one writer (NIC / 3 for replica 3,
NIC / 2 for arbiter: the arbiter gets metadata only), and what a fault on the compute-only
host can and cannot do to the storage (no brick, no server-quorum vote).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hcisim.engines import EngineError, observe
from hcisim.model import simulate
from hcisim.model.elaborate import nic_mb_s
from hcisim.observations import summarize
from hcisim.scenario import Scenario

from .cases import HOSTS, clusters, host
from .test_properties import covering

EPS = 1e-6


def with_compute_host(spec: dict[str, Any], gbps: float = 10.0) -> dict[str, Any]:
    """``spec`` with a fourth host, host4, that has no disks."""
    h4 = host("host4", gbps, 1000.0, 1000.0)
    h4["disks"] = []
    return {**spec, "hosts": [*spec["hosts"], h4]}


def lone_writer(vtype: str, faults: tuple[dict[str, Any], ...] = ()) -> Scenario:
    """A 1 MiB writer on compute-only host4 asking for 5 GB/s; fast disks, 10 Gb/s NICs."""
    spec = {"name": "compute-only", "duration_s": 120.0,
            "hosts": [host(h, 10.0, 3000.0, 200_000.0) for h in HOSTS],
            "volumes": [{"name": "v", "type": vtype,
                         "bricks": [{"host": h} for h in HOSTS]}],
            "io_profiles": {"w": {"read_pct": 0.0, "block_kib": 1024.0, "queue_depth": 32,
                                  "mb_s": 5000.0},
                            "db": {"read_pct": 70.0, "block_kib": 8.0, "queue_depth": 8,
                                   "iops": 500.0}},
            "vms": [{"name": "w4", "host": "host4",
                     "disks": [{"volume": "v", "size_gb": 10, "io": "w"}]},
                    {"name": "db1", "host": "host1",
                     "disks": [{"volume": "v", "size_gb": 10, "io": "db"}]}],
            "faults": list(faults)}
    return Scenario.model_validate(with_compute_host(spec))


@pytest.mark.parametrize(("vtype", "copies"), [("replica3", 3), ("arbiter", 2)])
def test_compute_only_writer_sends_every_copy_over_its_nic(vtype: str, copies: int) -> None:
    """Replica 3: three copies leave host4, so NIC / 3; arbiter: two data copies (the
    arbiter takes metadata, no bandwidth), so NIC / 2."""
    io = simulate(lone_writer(vtype))["vm_io"]
    w = io[io["vm"] == "w4"]
    assert (w["status"] == "ok").all()
    assert w["write_mb_s"].to_numpy(float) == pytest.approx(nic_mb_s(10.0) / copies)


def test_a_storage_cut_of_the_compute_host_touches_no_brick() -> None:
    """host4 loses its storage NIC: its VMs stall (every brick is silently gone for them),
    then fail (no brick: ENOTCONN) and pause; the bricks stay up, no server quorum moves and
    the VM on host1 sees no stall at all."""
    sc = lone_writer("replica3", ({"at_s": 10.0, "kind": "nic_loss", "target": "host4",
                                   "network": "storage", "duration_s": 60.0},))
    obs = simulate(sc)
    ev = obs["events"]
    assert not ev["kind"].isin(["brick_down", "server_quorum_lost", "quorum_lost"]).any()
    s = summarize(obs, ["w4", "db1"], ["v"])
    assert s["vms"]["db1"]["max_io_stall_s"] == 0.0
    assert s["vms"]["w4"]["max_io_stall_s"] >= sc.volumes[0].options.ping_timeout_s
    assert s["vms"]["w4"]["max_io_error_s"] > 0
    assert s["volumes"]["v"]["bytes_healed"] == 0.0


def test_compute_only_host_validation() -> None:
    base = lone_writer("replica3").model_dump(mode="json")
    bad = {**base, "volumes": [{**base["volumes"][0],
                                "bricks": [{"host": "host1"}, {"host": "host2"},
                                           {"host": "host4"}]}]}
    with pytest.raises(ValidationError, match=r"volumes\[0\]\.bricks\[2\]\.host.*compute-only"):
        Scenario.model_validate(bad)
    for kind in ("disk_failure", "brick_crash"):
        f = {**base, "faults": [{"at_s": 1.0, "kind": kind, "target": "host4"}]}
        with pytest.raises(ValidationError, match=r"faults\[0\]\.target.*holds no brick"):
            Scenario.model_validate(f)
    # the netns lab builds a compute-only host (tests/lab/test_compute_only_lab.py); the
    # libvirt lab's node VMs are three storage nodes
    with pytest.raises(EngineError, match="compute-only hosts \\(host4\\) run on the model "
                       "and the netns lab, not on the libvirt lab"):
        observe("lab+libvirt", Scenario.model_validate(base))


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(clusters(n_vms=(1, 6)), st.data())
def test_compute_only_host_nic_bounds_its_writes(spec: dict[str, Any],
                                                 data: st.DataObject) -> None:
    """Random clusters with some VMs moved to compute-only host4: at every instant the
    writes of host4's VMs times the data bricks they reach stay within host4's NIC (no copy
    is local), and reads come from the bricks over its rx side."""
    gbps = data.draw(st.sampled_from([1.0, 10.0]))
    vms = [{**vm, "host": "host4"} if data.draw(st.booleans()) else vm for vm in spec["vms"]]
    sc = Scenario.model_validate({**with_compute_host(spec, gbps), "vms": vms})
    obs = simulate(sc)
    io, wr = obs["vm_io"], obs["writes"]
    names = [vm.name for vm in sc.vms if vm.host == "host4"]
    rows = io[io["vm"].isin(names)].reset_index(drop=True)
    event(f"VMs on host4: {'some' if len(rows) else 'none'}")
    if rows.empty:
        return
    cuts = np.array(sorted(set(io["t_start_s"]) | set(io["t_end_s"])))
    mids = (cuts[:-1] + cuts[1:]) / 2
    wrows = wr[wr["vm"].isin(names)].reset_index(drop=True)
    cover_w = covering(wrows, mids)
    copies = np.zeros((len(mids), len(rows)))
    for j, (vm, vol) in enumerate(zip(rows["vm"], rows["volume"], strict=True)):
        same = ((wrows["vm"] == vm) & (wrows["volume"] == vol)).to_numpy()
        c = cover_w[:, same] * wrows["copies"].to_numpy(float)[same][None, :]
        copies[:, j] = c.max(axis=1) if same.any() else 0.0
    cover = covering(rows, mids)
    sent = (cover * rows["write_mb_s"].to_numpy(float)[None, :] * copies).sum(axis=1)
    got = (cover * rows["read_mb_s"].to_numpy(float)[None, :]).sum(axis=1)
    nic = nic_mb_s(gbps)
    assert (sent <= nic * (1 + 1e-6) + EPS).all()
    assert (got <= nic * (1 + 1e-6) + EPS).all()
    event(f"host4's NIC saturated by writes: {'yes' if (sent > nic * 0.999).any() else 'no'}")
