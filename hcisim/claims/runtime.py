"""Claims about VMs staying up: zero downtime for survivors, restart of HA VMs elsewhere."""

from __future__ import annotations

import math
from typing import Any

from hcisim.claims.compute import guest_stall_windows, longest, pause_windows
from hcisim.claims.timeline import claimed_vms, host_failures, host_of, state_at
from hcisim.claims.verdict import Verdict, rounded, trim
from hcisim.observations import Observations
from hcisim.observations.summary import BAD_IO, longest_run
from hcisim.scenario import Scenario
from hcisim.scenario.claims import VmRestartWithin, ZeroDowntime

# A live migration keeps the guest running (its sub-second switch-over is the migration's
# downtime, judged by the migration model, not here).
RUNNING = ("running", "migrating")
DOWN = ("down", "restarting")
_EPS = 1e-9


def _on_failed_hosts(sc: Scenario, obs: Observations, vms: list[str]) -> dict[str, str]:
    """VM -> the failed host it ran on when that host's fault began."""
    hit: dict[str, str] = {}
    for w in host_failures(sc, obs):
        for vm in vms:
            if vm not in hit and host_of(sc, obs, vm, w.start_s) == w.target:
                hit[vm] = w.target
    return hit


def worst_stall(obs: Observations, vm: str) -> tuple[float, float, str]:
    """Longest I/O stall (stalled or error back to back) of any disk of ``vm``: s, at, volume."""
    io = obs["vm_io"]
    io = io[io["vm"] == vm]
    best: tuple[float, float, str] = (0.0, math.nan, "")
    for vol, disk in io.groupby("volume"):
        disk = disk.sort_values("t_start_s")
        s, at = longest_run(disk, disk["status"].isin(BAD_IO))
        if s > best[0]:
            best = (s, at, str(vol))
    return best


def zero_downtime(sc: Scenario, obs: Observations, c: ZeroDowntime) -> Verdict:
    """Survivors (VMs not on a failed host) never go down, pause at most ``max_paused_s``, and
    see no stall longer than ``max_stall_s``. Measured: the worst stall any survivor's guest
    saw: back-to-back time with a disk stalled or in error, or the VM paused (a lab guest
    pauses on an I/O error, qemu's werror=stop); a migration's switch-over is not a pause
    here (``migration_downtime_at_most`` judges it)."""
    name = c.name or c.kind
    vms = claimed_vms(sc, c.vms)
    excluded = _on_failed_hosts(sc, obs, vms)
    survivors = [vm for vm in vms if vm not in excluded]
    if not survivors:
        return Verdict(name, c.kind, "n/a", None, c.max_stall_s, "s",
                       [{"note": "every claimed VM ran on a failed host"}])
    st = obs["vm_state"]
    worst: dict[str, Any] = {"vm": survivors[0], "stall_s": 0.0}
    worst_s = 0.0
    bad: list[dict[str, Any]] = []
    for vm in survivors:
        stall, at, vol = worst_stall(obs, vm)
        seen, seen_at = longest(guest_stall_windows(obs, vm))
        problem = "io_stall"
        if seen > stall + _EPS:  # a pause made (or lengthened) it
            stall, at, vol, problem = seen, seen_at, "", "stall_with_pause"
        where = {"volume": vol} if vol else {}
        if stall > worst_s:
            worst_s = stall
            worst = {"vm": vm, **where, "stall_s": rounded(stall), "at_s": rounded(at)}
        if stall > c.max_stall_s + _EPS:
            bad.append({"vm": vm, **where, "problem": problem, "stall_s": rounded(stall),
                        "at_s": rounded(at), "host": host_of(sc, obs, vm, at)})
        mine = st[st["vm"] == vm].sort_values("t_start_s")
        down = mine[mine["state"].isin(DOWN)]
        if not down.empty:
            r = down.iloc[0]
            bad.append({"vm": vm, "problem": str(r["state"]), "at_s": rounded(r["t_start_s"]),
                        "for_s": rounded(float((down["t_end_s"] - down["t_start_s"]).sum())),
                        "host": str(r["host"]), "reason": str(r["reason"]),
                        "stall_s": math.inf})
        paused, p_at = longest(pause_windows(obs, vm))
        if paused > c.max_paused_s + _EPS:
            bad.append({"vm": vm, "problem": "paused", "paused_s": rounded(paused),
                        "at_s": rounded(p_at), "stall_s": rounded(max(stall, paused)),
                        "host": host_of(sc, obs, vm, p_at + _EPS * 2)})
    evidence = trim(bad, "stall_s") if bad else [worst]
    for e in evidence:
        if e.get("stall_s") == math.inf:
            del e["stall_s"]
    if excluded:
        evidence.append({"note": f"{len(excluded)} VM(s) on failed hosts not judged",
                         "vms": sorted(excluded)[:20]})
    return Verdict(name, c.kind, "fail" if bad else "pass", worst_s,
                   c.max_stall_s, "s", evidence)


def _back_running(obs: Observations, vm: str, start: float, horizon: float) -> float | None:
    """Seconds from ``start`` until ``vm`` is running again (0: it never stopped; None: never).

    Only a departure from running that begins before ``horizon`` (the fault's repair) is
    attributed to the fault.
    """
    st = obs["vm_state"]
    rows = st[(st["vm"] == vm) & (st["t_end_s"] > start)].sort_values("t_start_s")
    left = rows[~rows["state"].isin(RUNNING) & (rows["t_start_s"] < horizon)]
    if left.empty:
        return 0.0
    t_left = float(left["t_start_s"].iloc[0])
    back = rows[(rows["t_start_s"] >= t_left) & (rows["state"] == "running")]
    if back.empty:
        return None
    return max(0.0, float(back["t_start_s"].iloc[0]) - start)


def vm_restart_within(sc: Scenario, obs: Observations, c: VmRestartWithin) -> Verdict:
    """Every HA VM of a failed host runs again within ``within_s`` of the fault."""
    name = c.name or c.kind
    failures = host_failures(sc, obs)
    if not failures:
        return Verdict(name, c.kind, "n/a", None, c.within_s, "s",
                       [{"note": "no host failed in this run"}])
    ha = [vm for vm in claimed_vms(sc, c.vms) if sc.vm(vm).ha]
    horizon = float(obs.duration_s or sc.duration_s)
    items: list[dict[str, Any]] = []
    for w in failures:
        for vm in ha:
            if host_of(sc, obs, vm, w.start_s) != w.target:
                continue
            before = state_at(obs, vm, max(w.start_s - 1e-6, 0.0))
            if before is not None and before not in (*RUNNING, "paused"):
                continue  # it was not running when the host failed: nothing to restart
            took = _back_running(obs, vm, w.start_s, w.end_or(horizon))
            item: dict[str, Any] = {"vm": vm, "failed_host": w.target, "fault": w.kind,
                                    "fault_at_s": rounded(w.start_s)}
            if took is None:
                item.update(restart_s=math.inf, problem="not running again by the end of run")
            else:
                item.update(restart_s=rounded(took), back_at_s=rounded(w.start_s + took),
                            on_host=host_of(sc, obs, vm, w.start_s + took + 1e-3))
            items.append(item)
    if not items:
        return Verdict(name, c.kind, "n/a", None, c.within_s, "s",
                       [{"note": "no HA VM ran on a failed host",
                         "failed_hosts": sorted({w.target for w in failures})}])
    worst = max(float(i["restart_s"]) for i in items)
    late = [i for i in items if float(i["restart_s"]) > c.within_s + _EPS]
    evidence = trim(late if late else items, "restart_s")
    for e in evidence:
        if e.get("restart_s") == math.inf:
            e["restart_s"] = None
    return Verdict(name, c.kind, "fail" if late else "pass", worst, c.within_s, "s", evidence)
