"""The hosted engine in the lab: the engine VM is a real guest on its volume, kept up by a
per-host HA agent (:mod:`hcisim.lab.plane.ha_agent`).

The harness's part: the configuration every HA agent reads (the scenario's
``compute.hosted_engine`` timings, the hosts' size, the engine VM's create request), the
metadata file on the engine volume, starting the agents, telling the engine role whether
the engine runs (:func:`engine_running`, its ``engine_up``: the engine-first rule), and the
engine's timeline for the observations (``engine_down`` / ``engine_up``). The engine VM's
lease lives in its own sanlock lockspace on the engine volume (``hosted-engine``; formatted
and joined with the VM leases' lockspace by :mod:`hcisim.lab.plane.hosts`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hcisim.lab.guests.fleet import sizing
from hcisim.lab.guests.qemu import guest_pids
from hcisim.lab.netns.layout import LabLayout
from hcisim.lab.plane import hosts
from hcisim.lab.plane.agent import read_events
from hcisim.lab.plane.ha_agent import format_metadata
from hcisim.lab.plane.hosts import engine_addr, host_id
from hcisim.placement import cluster_of
from hcisim.scenario import Scenario

GATEWAY_PORT = 80  # nothing listens there: the probe's answer is the RST


def config_path(lab: LabLayout) -> Path:
    return lab.dir / "plane" / "hosted-engine.json"


def create_request(sc: Scenario, vm: str, lease: bool) -> dict[str, Any]:
    """The vdsm agent's ``create`` for ``vm`` (the engine role and the HA agents alike)."""
    spec = sc.vm(vm)
    size = sizing(spec.ram_gib, spec.working_set_gib, spec.dirty_rate_mb_s)
    return {"op": "create", "vm": vm, "volume": spec.disks[0].volume, "lease": lease,
            "options": {"mem_mib": size.ram_mib, "vcpus": 1, "dirty_mib": size.dirty_mib,
                        "dirty_pages_s": size.dirty_pages_s}}


def engine_vm_name(sc: Scenario) -> str:
    """The hosted engine VM with a disk ('' when the scenario has none)."""
    vm = cluster_of(sc).engine_vm
    return vm.name if vm is not None and sc.vm(vm.name).disks else ""


def write_config(lab: LabLayout, sc: Scenario) -> Path:
    """Format the metadata file on the engine volume and write the agents' configuration."""
    vm = engine_vm_name(sc)
    volume = sc.vm(vm).disks[0].volume
    he = sc.compute.hosted_engine
    format_metadata(lab.mount(lab.hosts[0].name, volume), len(lab.hosts))
    cfg = {
        "vm": vm, "volume": volume, "loop_s": he.agent_loop_s, "alive_s": he.host_data_wait_s,
        "margin": he.takeover_margin, "base_score": he.base_score,
        "host_ids": {h.name: host_id(lab, h.name) for h in lab.hosts},
        "hosts": {h.name: {"cores": h.cores, "ram_gib": h.ram_gib} for h in sc.hosts},
        "vm_ram_gib": {v.name: v.ram_gib for v in sc.vms},
        "gateway": [engine_addr(lab), GATEWAY_PORT],
        "create": create_request(sc, vm, lease=True),
    }
    path = config_path(lab)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg, indent=1) + "\n")
    return path


def start_ha_agents(lab: LabLayout) -> None:
    hosts.start_ha_agents(lab, lab.hosts, config_path(lab))


def running_on(lab: LabLayout, vm: str) -> str | None:
    """The host where ``vm``'s guest runs and has booted (its agent's ``UP`` after its
    last ``LAUNCHED``, its qemu alive), None if nowhere."""
    for h in lab.hosts:
        if not guest_pids([h.piddir / f"guest-{vm}.pid"]):
            continue
        last = ""
        for e in read_events(h.dir):
            if e.get("vm") == vm and e.get("event") in ("LAUNCHED", "UP", "RECOVERED"):
                last = str(e["event"])
        if last in ("UP", "RECOVERED"):
            return h.name
    return None


def engine_running(lab: LabLayout, vm: str) -> bool:
    """The engine role's ``engine_up``: the hosted engine's guest runs somewhere."""
    return running_on(lab, vm) is not None


def ha_events(host_dirs: Mapping[str, Path]) -> list[dict[str, Any]]:
    """Every HA agent's log lines (state changes, starts), by time."""
    out: list[dict[str, Any]] = []
    for d in host_dirs.values():
        path = d / "plane" / "ha-agent.jsonl"
        if path.exists():
            for line in path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
    return sorted(out, key=lambda e: float(e["t"]))

