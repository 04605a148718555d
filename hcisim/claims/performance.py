"""Claims about service levels: throughput and p99 latency, per VM or per group, in a window."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from hcisim.claims.timeline import overlap_s, run_window, vms_with_io
from hcisim.claims.verdict import Verdict, rounded, trim
from hcisim.observations import Observations
from hcisim.observations.summary import weighted_quantile
from hcisim.scenario import Scenario
from hcisim.scenario.claims import LatencyP99AtMost, ThroughputAtLeast

_EPS = 1e-9


def _io_in(obs: Observations, vms: list[str], window: tuple[float, float]) -> pd.DataFrame:
    """vm_io rows of ``vms`` that overlap ``window``, with their overlap in ``in_s``."""
    io = obs["vm_io"]
    io = io[io["vm"].isin(vms)].copy()
    io["in_s"] = overlap_s(io["t_start_s"].to_numpy(float), io["t_end_s"].to_numpy(float),
                           window)
    return io[io["in_s"] > 0]


def _empty_window(window: tuple[float, float]) -> bool:
    return window[1] - window[0] <= _EPS


def throughput_at_least(sc: Scenario, obs: Observations, c: ThroughputAtLeast) -> Verdict:
    """Mean read+write MB/s over the window: of each VM (``per: vm``, measured = the lowest)
    or of the VMs together (``per: group``). Time a VM was down counts as 0 MB/s."""
    name = c.name or c.kind
    window = run_window(sc, obs, c.window_s)
    vms = vms_with_io(sc, c.vms)
    if _empty_window(window) or not vms:
        return Verdict(name, c.kind, "n/a", None, c.mb_s, "MB/s",
                       [{"note": "empty window" if vms else "no VM with I/O to judge"}])
    span = window[1] - window[0]
    io = _io_in(obs, vms, window)
    mb = (io["read_mb_s"] + io["write_mb_s"]) * io["in_s"]
    per_vm = (mb.groupby(io["vm"]).sum() / span).reindex(vms, fill_value=0.0)
    where = {"window_s": [rounded(window[0]), rounded(window[1])]}
    if c.per == "group":
        total = float(per_vm.sum())
        ok = total + _EPS >= c.mb_s
        evidence: list[dict[str, Any]] = [{"vms": len(vms), "group_mb_s": rounded(total),
                                           **where}]
        low = per_vm.sort_values().head(3)
        evidence += [{"vm": str(v), "mb_s": rounded(float(x)), "note": "lowest in group"}
                     for v, x in low.items()]
        return Verdict(name, c.kind, "pass" if ok else "fail", total, c.mb_s, "MB/s", evidence)
    worst_vm = str(per_vm.idxmin())
    worst = float(per_vm.min())
    below = per_vm[per_vm + _EPS < c.mb_s]
    items = [{"vm": str(v), "mb_s": rounded(float(x)), **where} for v, x in below.items()]
    evidence = trim(items, "mb_s", reverse=False) if items else [
        {"vm": worst_vm, "mb_s": rounded(worst), **where}]
    return Verdict(name, c.kind, "fail" if items else "pass", worst, c.mb_s, "MB/s", evidence)


def _p99(rows: pd.DataFrame) -> float:
    """p99 of the per-interval p99 latencies, weighted by the I/Os in each interval (the
    same estimate summary.json uses). Stalled intervals carry no completed I/O: stalls are
    the zero_downtime claim's business."""
    ok = rows[rows["status"] == "ok"]
    weights = ((ok["read_iops"] + ok["write_iops"]) * ok["in_s"]).to_numpy(float)
    return weighted_quantile(ok["latency_p99_ms"].to_numpy(float), weights, 0.99)


def latency_p99_at_most(sc: Scenario, obs: Observations, c: LatencyP99AtMost) -> Verdict:
    """p99 latency in the window, of each VM (measured = the worst) or of the group's I/Os."""
    name = c.name or c.kind
    window = run_window(sc, obs, c.window_s)
    vms = vms_with_io(sc, c.vms)
    if _empty_window(window) or not vms:
        return Verdict(name, c.kind, "n/a", None, c.ms, "ms",
                       [{"note": "empty window" if vms else "no VM with I/O to judge"}])
    io = _io_in(obs, vms, window)
    where = {"window_s": [rounded(window[0]), rounded(window[1])]}
    if c.per == "group":
        p = _p99(io)
        if math.isnan(p):
            return Verdict(name, c.kind, "n/a", None, c.ms, "ms",
                           [{"note": "no completed I/O in the window", **where}])
        return Verdict(name, c.kind, "pass" if p <= c.ms + _EPS else "fail", p, c.ms, "ms",
                       [{"vms": len(vms), "p99_ms": rounded(p), **where}])
    per_vm = {vm: _p99(g) for vm, g in io.groupby("vm")}
    measured = {str(vm): p for vm, p in per_vm.items() if not math.isnan(p)}
    if not measured:
        return Verdict(name, c.kind, "n/a", None, c.ms, "ms",
                       [{"note": "no completed I/O in the window", **where}])
    worst_vm = max(measured, key=lambda v: measured[v])
    over = [{"vm": vm, "p99_ms": rounded(p), **where} for vm, p in measured.items()
            if p > c.ms + _EPS]
    evidence = trim(over, "p99_ms") if over else [
        {"vm": worst_vm, "p99_ms": rounded(measured[worst_vm]), **where}]
    silent = sorted(set(vms) - set(measured))
    if silent:
        evidence.append({"note": "no completed I/O in the window", "vms": silent[:20]})
    return Verdict(name, c.kind, "fail" if over else "pass", measured[worst_vm], c.ms, "ms",
                   evidence)
