"""A fault schedule drawn from the failure table: scenario faults and operations (plain
dicts, validated by the scenario model when they are put into a scenario).

Every (process, unit) pair has its own random stream, keyed by the replication seed, the
process name and the unit's index, so changing one process of the table (or the layout of
the volumes) leaves every other process's failure times unchanged: two studies with the same
seed see the same failures (common random numbers).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from hcisim.availability.table import HOURS, YEAR_S, FailureProcess, FailureTable, Maintenance
from hcisim.scenario import Scenario


@dataclass(frozen=True)
class Target:
    """One unit a process applies to: a host, a brick (host + volume) or a disk."""

    host: str
    volume: str | None = None
    disk: str | None = None


def targets(sc: Scenario, proc: FailureProcess) -> list[Target]:
    if proc.unit == "host":
        return [Target(h) for h in sc.host_names]
    if proc.unit == "brick":
        return [Target(b.host, volume=v.name) for v in sc.volumes for b in v.bricks]
    disks: list[Target] = []
    for v in sc.volumes:
        for b in v.bricks:
            t = Target(b.host, disk=b.disk or sc.host(b.host).disks[0].name)
            if t not in disks:
                disks.append(t)
    return disks


def stream(seed: int, name: str, index: int) -> np.random.Generator:
    """The random stream of one (process, unit) of one replication."""
    key = zlib.crc32(name.encode())
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key, index)))


def _fault(proc: FailureProcess, t: Target, at_s: float, duration_s: float) -> dict[str, Any]:
    f: dict[str, Any] = {"at_s": round(at_s, 3), "kind": proc.fault, "target": t.host,
                         "duration_s": max(round(duration_s, 3), 0.001),
                         "heal_after_repair": proc.heal_after_repair}
    if proc.fault == "brick_crash":
        f["volume"] = t.volume
    elif proc.fault == "disk_failure":
        f["disk"] = t.disk
    elif proc.fault == "nic_loss":
        f["network"] = proc.network
    return f


def process_faults(sc: Scenario, name: str, proc: FailureProcess, duration_s: float,
                   seed: int) -> list[dict[str, Any]]:
    """Alternating renewal per unit: exponential up time, then a repair time, repeated."""
    if proc.rate_per_year <= 0:
        return []
    mean_up_s = YEAR_S / proc.rate_per_year
    faults = []
    for i, t in enumerate(targets(sc, proc)):
        rng = stream(seed, name, i)
        at = float(rng.exponential(mean_up_s))
        while at < duration_s:
            repair = proc.repair.draw(rng)
            faults.append(_fault(proc, t, at, repair))
            at += repair + float(rng.exponential(mean_up_s))
    return faults


def maintenance_operations(sc: Scenario, m: Maintenance, faults: list[dict[str, Any]],
                           duration_s: float, seed: int) -> list[dict[str, Any]]:
    """Rolling maintenance windows, postponed while any unplanned fault is active."""
    if not m.enabled:
        return []
    busy = sorted((f["at_s"], f["at_s"] + f["duration_s"]) for f in faults)
    window, gap = m.window_h * HOURS, m.gap_h * HOURS
    interval = m.interval_days * 86400.0

    def clear(s: float) -> bool:
        return all(end <= s or start >= s + window for start, end in busy)

    ops: list[dict[str, Any]] = []
    cycle = float(stream(seed, "maintenance", 0).uniform(0.0, interval))
    while cycle < duration_s:
        s = cycle
        for host in sc.host_names:
            while not clear(s) and s < duration_s:
                s += gap
            if s + window >= duration_s:
                return ops
            ops.append({"at_s": round(s, 3), "kind": "maintenance", "host": host})
            ops.append({"at_s": round(s + window, 3), "kind": "activate", "host": host})
            s += window + gap
        cycle = max(cycle + interval, s)
    return ops


def draw_schedule(sc: Scenario, table: FailureTable, duration_s: float,
                  seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(faults, operations) of one replication, each sorted by time."""
    faults: list[dict[str, Any]] = []
    for name, proc in table.processes.items():
        faults += process_faults(sc, name, proc, duration_s, seed)
    faults.sort(key=lambda f: (f["at_s"], f["target"], f["kind"]))
    ops = maintenance_operations(sc, table.maintenance, faults, duration_s, seed)
    return faults, ops


def shorten_repairs(faults: list[dict[str, Any]], factor: float) -> list[dict[str, Any]]:
    """The same failures, each repaired ``factor`` times as long (``factor`` <= 1: every
    outage is a sub-interval of the original one, so nothing can get worse)."""
    return [{**f, "duration_s": max(round(f["duration_s"] * factor, 3), 0.001)} for f in faults]
