"""Small random clusters and workloads for the model's property tests (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from hcisim.scenario import Scenario

HOSTS = ("host1", "host2", "host3")
SILENT = ("node_power_loss", "nic_loss", "node_hang", "partition")


def host(name: str, gbps: float, bw: float, iops: float) -> dict[str, Any]:
    return {"name": name, "cores": 8, "ram_gib": 64,
            "disks": [{"name": "brick0", "bandwidth_mb_s": bw, "iops": iops,
                       "capacity_gb": 2000}],
            "nics": [{"name": "mgmt0", "gbps": 1, "networks": ["management"]},
                     {"name": "stor0", "gbps": gbps, "networks": ["storage"]}]}


@st.composite
def profiles(draw: st.DrawFn) -> dict[str, Any]:
    p: dict[str, Any] = {
        "read_pct": draw(st.sampled_from([0.0, 30.0, 70.0, 100.0])),
        "block_kib": draw(st.sampled_from([4.0, 16.0, 64.0, 1024.0])),
        "queue_depth": draw(st.sampled_from([1, 8, 32])),
        "random": draw(st.booleans()),
        "write_hot_pct": draw(st.sampled_from([100.0, 100.0, 30.0, 2.0])),
    }
    if draw(st.booleans()):
        p["iops"] = draw(st.floats(50, 20_000))
    else:
        p["mb_s"] = draw(st.floats(1, 1500))
    return p


@st.composite
def clusters(draw: st.DrawFn, n_vms: tuple[int, int] = (1, 6)) -> dict[str, Any]:
    """A scenario dict without faults: hosts, one or two volumes, VMs with random I/O."""
    hosts = [host(h, draw(st.sampled_from([1.0, 10.0, 25.0])),
                  draw(st.floats(100, 3000)), draw(st.floats(2000, 200_000))) for h in HOSTS]
    n_vol = draw(st.integers(1, 2))
    volumes = []
    for i in range(n_vol):
        order = draw(st.permutations(HOSTS))
        volumes.append({"name": f"vol{i}", "type": draw(st.sampled_from(["replica3", "arbiter"])),
                        "bricks": [{"host": h} for h in order],
                        "options": {"ping_timeout_s": draw(st.sampled_from([5.0, 20.0, 42.0])),
                                    "shard_block_size_mib": draw(st.sampled_from([4, 64]))}})
    vms = []
    for i in range(draw(st.integers(*n_vms))):
        vms.append({"name": f"vm{i}", "host": draw(st.sampled_from(HOSTS)),
                    "disks": [{"volume": f"vol{draw(st.integers(0, n_vol - 1))}",
                               "size_gb": draw(st.sampled_from([1.0, 10.0, 50.0])),
                               "io": draw(profiles())}]})
    phases = [{"start_s": 0.0, "load": 1.0}]
    if draw(st.booleans()):
        phases.append({"start_s": draw(st.floats(10, 500)), "load": draw(st.floats(0, 2))})
    return {"name": "prop", "seed": draw(st.integers(0, 2**32 - 1)), "duration_s": 600.0,
            "hosts": hosts, "volumes": volumes, "vms": vms, "phases": phases}


@st.composite
def faults(draw: st.DrawFn, kinds: tuple[str, ...] | None = None,
           min_duration: float = 1.0) -> dict[str, Any]:
    kind = draw(st.sampled_from(kinds or (*SILENT, "brick_crash", "link_slowdown",
                                          "disk_failure")))
    f: dict[str, Any] = {"at_s": draw(st.floats(0, 300)), "kind": kind,
                         "target": draw(st.sampled_from(HOSTS)),
                         "duration_s": draw(st.floats(min_duration, 400))}
    if kind == "link_slowdown":
        f["rate_mbit"] = draw(st.floats(10, 5000))
    if kind == "partition" and draw(st.booleans()):
        f["network"] = "all"
    if kind in ("node_hang", "nic_loss", "partition") and draw(st.booleans()):
        f["heal_after_repair"] = False
    return f


@st.composite
def scenarios(draw: st.DrawFn, max_faults: int = 3) -> Scenario:
    """Random cluster, workload and up to ``max_faults`` faults (overlaps allowed)."""
    d = draw(clusters())
    d["faults"] = draw(st.lists(faults(), max_size=max_faults))
    return Scenario.model_validate(d)


@st.composite
def single_fault(draw: st.DrawFn, kinds: tuple[str, ...], min_duration: float) -> Scenario:
    d = draw(clusters(n_vms=(2, 6)))
    f = draw(faults(kinds, min_duration))
    f["at_s"] = draw(st.floats(1, 100))
    f["duration_s"] = min(f["duration_s"], d["duration_s"] - f["at_s"] - 1)
    d["faults"] = [f]
    return Scenario.model_validate(d)
