"""Hand-built scenarios and observations for the claim tests (no engine involved)."""

from __future__ import annotations

import copy
from typing import Any

from hcisim.observations import Observations, Recorder
from hcisim.scenario import Scenario

HOST = {"cores": 8, "ram_gib": 64, "nics": [
    {"name": "mgmt0", "gbps": 1, "networks": ["management"]},
    {"name": "stor0", "gbps": 10, "networks": ["storage"]}]}
BRICKS = [{"host": "host1"}, {"host": "host2"}, {"host": "host3"}]

BASE: dict[str, Any] = {
    "name": "claims-case",
    "duration_s": 400,
    "hosts": [{"name": f"host{i}", **HOST} for i in (1, 2, 3)],
    "volumes": [{"name": "data", "type": "replica3", "bricks": BRICKS}],
    "io_profiles": {"oltp": {"block_kib": 8, "iops": 1000}},
    "vms": [
        {"name": "a", "host": "host1", "ha": True, "ram_gib": 8, "vcpus": 2,
         "disks": [{"volume": "data", "io": "oltp"}]},
        {"name": "b", "host": "host2", "ha": True, "ram_gib": 8, "vcpus": 2,
         "disks": [{"volume": "data", "io": "oltp"}]},
        {"name": "c", "host": "host3", "ha": False, "ram_gib": 8, "vcpus": 2,
         "disks": [{"volume": "data", "io": "oltp"}]},
    ],
    "faults": [{"at_s": 100, "kind": "node_power_loss", "target": "host2", "duration_s": 50}],
}


def scenario(claims: list[dict[str, Any]] | None = None, **changes: Any) -> Scenario:
    data = copy.deepcopy(BASE)
    data.update(changes)
    data["claims"] = claims or []
    return Scenario.model_validate(data)


def io(rec: Recorder, vm: str, t0: float, t1: float, status: str = "ok", mb: float = 8.0,
       p99: float = 2.0, volume: str = "data") -> None:
    """One vm_io interval: ``mb`` MB/s split 70/30, 1000 IOPS when ok."""
    iops = 1000.0 if status == "ok" else 0.0
    if status != "ok":
        mb = 0.0
    rec.add("vm_io", vm, volume, t0, t1, 8.0, mb * 0.7, mb * 0.3, iops * 0.7, iops * 0.3,
            p99 / 2, p99, status)


def state(rec: Recorder, vm: str, host: str, t0: float, t1: float, st: str = "running",
          reason: str = "") -> None:
    rec.add("vm_state", vm, host, t0, t1, st, reason)


def power_loss(rec: Recorder, host: str = "host2", at: float = 100.0,
               end: float | None = 150.0) -> None:
    rec.event(at, "fault_start", host, "node_power_loss", "scenario")
    if end is not None:
        rec.event(end, "fault_end", host, "node_power_loss", "scenario")


def healthy_run(rec: Recorder | None = None, duration: float = 400.0) -> Recorder:
    """Every VM running and doing I/O all the run; host2's power loss is logged, b restarts
    on host1 after 60 s down; heal of host2's brick finishes at 200 s."""
    rec = rec or Recorder()
    power_loss(rec)
    state(rec, "a", "host1", 0, duration)
    state(rec, "c", "host3", 0, duration)
    state(rec, "b", "host2", 0, 100)
    state(rec, "b", "host2", 100, 130, "down", "host lost power")
    state(rec, "b", "host1", 130, 160, "restarting")
    state(rec, "b", "host1", 160, duration)
    for vm in ("a", "c"):
        io(rec, vm, 0, 100)
        io(rec, vm, 100, 120, "stalled")  # ping-timeout on the silent loss
        io(rec, vm, 120, duration)
    io(rec, "b", 0, 100)
    io(rec, "b", 100, 160, "stopped")
    io(rec, "b", 160, duration)
    for t, up, pending in ((0, True, 0.0), (120, False, 0.0), (150, True, 5e9),
                           (180, True, 1e9), (200, True, 0.0)):
        for h in ("host1", "host2", "host3"):
            rec.add("volume_state", float(t), "data", h, "data", up or h != "host2",
                    pending if h == "host2" else 0.0, True)
    for vm in ("a", "c"):
        rec.add("writes", vm, "data", 0.0, 120.0, 1e9, 3, True, 0.0)
        rec.add("writes", vm, "data", 120.0, 150.0, 2e8, 2, True, 0.0)
        rec.add("writes", vm, "data", 150.0, duration, 1e9, 3, True, 0.0)
    return rec


def build(rec: Recorder, duration: float = 400.0) -> Observations:
    return rec.build("model", "claims-case", 1, duration)
