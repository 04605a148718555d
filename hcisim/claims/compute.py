"""Claims about what a guest sees of compute: live migrations and pauses.

Read from the ``migrations`` table (one row per migration: the model's pre-copy result, or
qemu's ``query-migrate`` counters on the lab) and from ``vm_state`` ``paused`` windows. A
pause whose reason starts with ``migration`` is a live migration's stop-and-copy switch-over
(the lab's source qemu stops its CPUs for it); it is that migration's downtime, judged by
``migration_downtime_at_most``, not a pause of the VM's own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from hcisim.claims.timeline import claimed_vms
from hcisim.claims.verdict import Verdict, rounded, trim
from hcisim.observations import Observations
from hcisim.observations.summary import BAD_IO
from hcisim.scenario import Scenario
from hcisim.scenario.claims import MigrationDowntimeAtMost, MigrationWithin, PausedAtMost

SWITCHOVER = "migration"
_EPS = 1e-9


def pause_windows(obs: Observations, vm: str) -> list[tuple[float, float]]:
    """``vm``'s pauses as (start, end), back-to-back rows merged; migration switch-overs out."""
    st = obs["vm_state"]
    st = st[(st["vm"] == vm) & (st["state"] == "paused")
            & ~st["reason"].fillna("").str.startswith(SWITCHOVER)]
    return _merged(st)


def guest_stall_windows(obs: Observations, vm: str) -> list[tuple[float, float]]:
    """Stretches in which ``vm``'s guest made no progress: any of its disks stalled or in
    error (``vm_io``), or the VM paused (``vm_state``), merged where they touch."""
    io = obs["vm_io"]
    io = io[(io["vm"] == vm) & io["status"].isin(BAD_IO)]
    st = obs["vm_state"]
    st = st[(st["vm"] == vm) & (st["state"] == "paused")
            & ~st["reason"].fillna("").str.startswith(SWITCHOVER)]
    return _merged(pd.concat([io[["t_start_s", "t_end_s"]], st[["t_start_s", "t_end_s"]]]))


def longest(windows: list[tuple[float, float]]) -> tuple[float, float]:
    """(length, start) of the longest window; (0, nan) when there is none."""
    best = max(windows, key=lambda w: w[1] - w[0], default=None)
    return (0.0, math.nan) if best is None else (best[1] - best[0], best[0])


def _merged(rows: pd.DataFrame) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(zip(rows["t_start_s"].astype(float), rows["t_end_s"].astype(float),
                           strict=True)):
        if out and a <= out[-1][1] + _EPS:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _migrations(sc: Scenario, obs: Observations, vms: tuple[str, ...] | None) -> pd.DataFrame:
    mig = obs["migrations"]
    return mig[mig["vm"].isin(claimed_vms(sc, vms))].sort_values("t_start_s")


def _item(r: Mapping[Any, Any]) -> dict[str, Any]:
    return {"vm": str(r["vm"]), "from": str(r["src_host"]), "to": str(r["dst_host"]),
            "at_s": rounded(float(r["t_start_s"])), "outcome": str(r["outcome"]),
            "total_s": rounded(float(r["t_end_s"]) - float(r["t_start_s"])),
            "downtime_ms": rounded(1000.0 * float(r["downtime_s"])),
            "transferred_mb": rounded(float(r["transferred_mb"]), 1),
            "rounds": int(r["rounds"])}


def migration_completes_within(sc: Scenario, obs: Observations, c: MigrationWithin) -> Verdict:
    """Every migration of the claimed VMs completes (the VM runs on the destination) within
    ``within_s`` of its start. Measured: the slowest; an aborted one is infinite. One still
    under way when the run ended fails if it had already run longer than ``within_s``,
    else it cannot be judged (the evidence names it; alone, the verdict is n/a)."""
    name = c.name or c.kind
    mig = _migrations(sc, obs, c.vms)
    if mig.empty:
        return Verdict(name, c.kind, "n/a", None, c.within_s, "s",
                       [{"note": "no migration of the claimed VMs in this run"}])
    items: list[dict[str, Any]] = []
    late: list[dict[str, Any]] = []
    open_: list[dict[str, Any]] = []
    worst: float | None = None
    for r in mig.to_dict("records"):
        item = _item(r)
        took = float(r["t_end_s"]) - float(r["t_start_s"])  # exact; the evidence is rounded
        if r["outcome"] == "aborted":
            item.update(problem="aborted: the VM stayed on its source", total_s=math.inf)
            took = math.inf
        elif r["outcome"] == "running":
            item.update(problem=f"still under way when the run ended, {took:.1f} s after "
                                "its start")
            if took <= c.within_s + _EPS:
                open_.append(item)
                continue
        worst = took if worst is None else max(worst, took)
        items.append(item)
        if took > c.within_s + _EPS:
            late.append(item)
    if not items:
        return Verdict(name, c.kind, "n/a", None, c.within_s, "s", trim(open_, "total_s"))
    evidence = trim(late or items, "total_s") + trim(open_, "total_s")
    for e in evidence:
        if e.get("total_s") == math.inf:
            e["total_s"] = None
    return Verdict(name, c.kind, "fail" if late else "pass", worst, c.within_s, "s", evidence)


def migration_downtime_at_most(sc: Scenario, obs: Observations,
                               c: MigrationDowntimeAtMost) -> Verdict:
    """Every completed migration (converged or post-copy) of the claimed VMs stopped the
    guest for at most ``ms``. Aborted migrations stop nothing, and one still under way when
    the run ended has not switched over: neither is judged (the evidence counts them)."""
    name = c.name or c.kind
    mig = _migrations(sc, obs, c.vms)
    done = mig[mig["outcome"].isin(["converged", "post_copy"])]
    note = [{"note": text.format(n)} for text, n in (
        ("{} aborted migration(s) not judged", int((mig["outcome"] == "aborted").sum())),
        ("{} migration(s) still under way at the run's end not judged",
         int((mig["outcome"] == "running").sum()))) if n]
    if done.empty:
        return Verdict(name, c.kind, "n/a", None, c.ms, "ms",
                       note or [{"note": "no migration of the claimed VMs in this run"}])
    items = [_item(r) for r in done.to_dict("records")]
    worst = 1000.0 * float(done["downtime_s"].max())
    bad = [i for i, d in zip(items, done["downtime_s"], strict=True)
           if 1000.0 * float(d) > c.ms + 1e-6]  # exact; the evidence is rounded
    return Verdict(name, c.kind, "fail" if bad else "pass", worst, c.ms, "ms",
                   trim(bad or items, "downtime_ms") + note)


def paused_at_most(sc: Scenario, obs: Observations, c: PausedAtMost) -> Verdict:
    """No claimed VM is paused longer than ``max_s``: its longest pause window
    (``measure: longest``) or all its pauses together (``total``), migration switch-overs
    excepted. A VM that never paused measures 0."""
    name = c.name or c.kind
    items: list[dict[str, Any]] = []
    for vm in claimed_vms(sc, c.vms):
        windows = pause_windows(obs, vm)
        length, at = longest(windows)
        value = length if c.measure == "longest" else sum(b - a for a, b in windows)
        items.append({"vm": vm, "paused_s": rounded(value), "pauses": len(windows),
                      "longest_at_s": rounded(at) if windows else None})
    if not items:
        return Verdict(name, c.kind, "n/a", None, c.max_s, "s", [{"note": "no VM claimed"}])
    worst = max(float(i["paused_s"]) for i in items)
    bad = [i for i in items if float(i["paused_s"]) > c.max_s + _EPS]
    shown = bad or [i for i in items if i["pauses"]] or items[:1]
    return Verdict(name, c.kind, "fail" if bad else "pass", worst, c.max_s, "s",
                   trim(shown, "paused_s"))
