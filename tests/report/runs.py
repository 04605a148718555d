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


MONTH_S = 30 * 86400.0


def month_run(out: Path, engine: str = "model") -> Path:
    """30 days; host2 loses power on day 15 for 10 min, and on day 20 a brick crashes for
    2 h (two fault kinds); the survivors stall 35 s after the power loss; quorum of ``data``
    is lost for the brick crash's first minute; a phase doubles the load from day 10."""
    sc = scenario([{"kind": "zero_downtime", "max_stall_s": 30, "name": "survivors"}],
                  duration_s=MONTH_S, faults=[], phases=[{"start_s": 0.0},
                                                      {"start_s": 10 * 86400.0, "load": 2}])
    t, repair = 15 * 86400.0, 15 * 86400.0 + 600
    crash, crash_end = 20 * 86400.0, 20 * 86400.0 + 7200
    rec = Recorder()
    rec.event(t, "fault_start", "host2", "node_power_loss", "scenario")
    rec.event(repair, "fault_end", "host2", "node_power_loss", "scenario")
    rec.event(crash, "fault_start", "host3", "brick_crash", "scenario")
    rec.event(crash_end, "fault_end", "host3", "brick_crash", "scenario")
    for vm in ("a", "c"):
        rec.add("vm_state", vm, "host1" if vm == "a" else "host3", 0.0, MONTH_S, "running", "")
        for t0, t1, status in ((0.0, t, "ok"), (t, t + 35, "stalled"), (t + 35, MONTH_S, "ok")):
            mb = 8.0 if status == "ok" else 0.0
            rec.add("vm_io", vm, "data", t0, t1, 8.0, mb * 0.7, mb * 0.3, 700.0, 300.0, 1.0,
                    2.0, status)
    rec.add("vm_state", "b", "host2", 0.0, t, "running", "")
    rec.add("vm_state", "b", "host2", t, t + 60, "down", "host lost power")
    rec.add("vm_state", "b", "host1", t + 60, MONTH_S, "running", "")
    rec.add("vm_io", "b", "data", 0.0, t, 8.0, 5.6, 2.4, 700.0, 300.0, 1.0, 2.0, "ok")
    rec.add("vm_io", "b", "data", t + 60, MONTH_S, 8.0, 5.6, 2.4, 700.0, 300.0, 1.0, 2.0, "ok")
    for when, down, pending, quorum in ((0.0, "", 0.0, True), (t + 35, "host2", 0.0, True),
                                        (repair, "", 1e9, True), (repair + 300, "", 0.0, True),
                                        (crash, "host3", 0.0, True),
                                        (crash + 1, "host3", 0.0, False),
                                        (crash + 61, "host3", 0.0, True),
                                        (crash_end, "", 0.0, True)):
        for h in ("host1", "host2", "host3"):
            rec.add("volume_state", when, "data", h, "data", h != down,
                    pending if h == "host2" else 0.0, quorum)
    write_result(judge(sc, rec.build(engine, sc.name, 1, MONTH_S)), out, time.time(),
                 time.time())
    return out
