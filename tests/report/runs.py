"""Result folders for the report tests: hand-built (any size) or from the model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hcisim.observations import Recorder
from hcisim.runner import judge, run_scenario, write_result
from hcisim.scenario import Scenario, load_scenario
from tests.claims.cases import BASE, build, healthy_run, scenario

REPO = Path(__file__).resolve().parents[2]


def small_run(out: Path) -> Path:
    """Three VMs, host2 loses power 100..150 s; two claims (one fails)."""
    sc = scenario([{"kind": "zero_downtime", "max_stall_s": 45, "name": "survivors"},
                   {"kind": "heal_within", "within_s": 10}])
    write_result(judge(sc, build(healthy_run())), out, time.time(), time.time())
    return out


def big_scenario(n_vms: int = 100) -> Scenario:
    profiles = {"oltp": {"block_kib": 8, "iops": 100}, "web": {"block_kib": 16, "iops": 50},
                "backup": {"block_kib": 1024, "mb_s": 5, "random": False}}
    vms: list[dict[str, Any]] = [
        {"name": f"vm{i:03d}", "host": f"host{i % 3 + 1}", "ram_gib": 1, "vcpus": 1,
         "ha": i % 2 == 0, "disks": [{"volume": "data", "size_gb": 10,
                                      "io": ("oltp", "web", "backup")[i % 3]}]}
        for i in range(n_vms)]
    return Scenario.model_validate({**BASE, "name": "hundred", "io_profiles": profiles,
                                    "vms": vms, "claims": [
                                        {"kind": "zero_downtime", "max_stall_s": 30},
                                        {"kind": "ha_reservation"}]})


def big_run(out: Path, n_vms: int = 100) -> Path:
    """``n_vms`` VMs; those on host2 go down at 100 s and restart at 160 s."""
    sc = big_scenario(n_vms)
    rec = Recorder()
    rec.event(100.0, "fault_start", "host2", "node_power_loss", "scenario")
    rec.event(150.0, "fault_end", "host2", "node_power_loss", "scenario")
    for vm in sc.vms:
        mb = 1.0 + int(vm.name[2:]) % 7
        if vm.host == "host2":
            rec.add("vm_state", vm.name, "host2", 0.0, 100.0, "running", "")
            rec.add("vm_state", vm.name, "host2", 100.0, 160.0, "down", "power loss")
            rec.add("vm_state", vm.name, "host1", 160.0, 400.0, "running", "")
            rec.add("vm_io", vm.name, "data", 0.0, 100.0, mb, mb, 0.0, 100.0, 0.0, 1.0, 2.0, "ok")
            rec.add("vm_io", vm.name, "data", 160.0, 400.0, mb, mb, 0.0, 100.0, 0.0, 1.0, 2.0,
                    "ok")
        else:
            rec.add("vm_state", vm.name, str(vm.host), 0.0, 400.0, "running", "")
            rec.add("vm_io", vm.name, "data", 0.0, 100.0, mb, mb, 0.0, 100.0, 0.0, 1.0, 2.0, "ok")
            rec.add("vm_io", vm.name, "data", 100.0, 121.0, mb, 0, 0, 0, 0, 0, 0, "stalled")
            rec.add("vm_io", vm.name, "data", 121.0, 400.0, mb, mb, 0.0, 100.0, 0.0, 1.2, 3.0,
                    "ok")
        rec.add("failover_pairs", vm.name, str(vm.host), "host1" if vm.host != "host1"
                else "host3", vm.ha)
    for t, up in ((0.0, True), (120.0, False), (150.0, True)):
        for h in ("host1", "host2", "host3"):
            rec.add("volume_state", t, "data", h, "data", up or h != "host2",
                    2e9 if (h == "host2" and t == 150.0) else 0.0, True)
    rec.add("volume_state", 190.0, "data", "host2", "data", True, 0.0, True)
    write_result(judge(sc, rec.build("model", sc.name, 1, 400.0)), out, time.time(), time.time())
    return out


def model_run(out: Path, name: str = "default") -> Path:
    run_scenario(load_scenario(REPO / "scenarios" / f"{name}.yaml"), "model", out=out)
    return out
