"""summary.json: the headline numbers of a run, derived only from its observation tables.

Both engines get their summary from this one function, so a number means the same thing
whether the model or a lab produced it. Keys and units: docs/observations.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from hcisim.observations.record import Observations
from hcisim.scenario.faults import FAULT_TABLE

BAD_IO = ("stalled", "error")  # no I/O completes: waiting (stalled) or failing (error)
_EPS = 1e-6


def longest_run(intervals: pd.DataFrame, mask: pd.Series) -> tuple[float, float]:
    """Longest stretch of back-to-back intervals where ``mask`` holds: (length, start)."""
    best, best_start = 0.0, math.nan
    run_start, run_end = math.nan, math.nan
    for start, end, bad in zip(intervals["t_start_s"], intervals["t_end_s"], mask, strict=True):
        if bad:
            if math.isnan(run_start) or start > run_end + _EPS:
                run_start = start
            run_end = end
            if run_end - run_start > best:
                best, best_start = run_end - run_start, run_start
        else:
            run_start = math.nan
    return best, best_start


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    keep = weights > 0
    if not keep.any():
        return math.nan
    v, w = values[keep], weights[keep]
    order = np.argsort(v)
    cum = np.cumsum(w[order])
    idx = int(np.searchsorted(cum, q * cum[-1]))
    return float(v[order][min(idx, len(v) - 1)])


def _nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _longest(io: pd.DataFrame, statuses: tuple[str, ...]) -> tuple[float, float]:
    """Longest back-to-back stretch of any of ``statuses`` over a VM's disks: (s, start)."""
    best, best_at = 0.0, math.nan
    for _, disk in io.groupby("volume"):
        disk = disk.sort_values("t_start_s")
        s, at = longest_run(disk, disk["status"].isin(statuses))
        if s > best:
            best, best_at = s, at
    return best, best_at


def vm_summary(obs: Observations, vm: str) -> dict[str, Any]:
    """Per VM. A stall (I/O waits: a silently lost brick until ping-timeout) and an error
    window (I/O fails at once: no quorum, ENOTCONN) are different harms and are kept apart;
    ``max_io_outage_s`` joins them back to back (no I/O completed), as zero_downtime does."""
    io = obs["vm_io"]
    io = io[io["vm"] == vm]
    stall = stall_at = err = err_at = outage = outage_at = math.nan
    err_s = 0.0
    lat_mean = lat_p99 = lat_max = math.nan
    read = write = 0.0
    if not io.empty:
        stall, stall_at = _longest(io, ("stalled",))
        err, err_at = _longest(io, ("error",))
        outage, outage_at = _longest(io, BAD_IO)
        dur = (io["t_end_s"] - io["t_start_s"]).to_numpy(float)
        err_s = float(dur[(io["status"] == "error").to_numpy()].sum()) / max(
            1, io["volume"].nunique())
        ios = (io["read_iops"] + io["write_iops"]).to_numpy(float) * dur
        ok = (io["status"] == "ok").to_numpy()
        if ios[ok].sum() > 0:
            lat_mean = float(np.average(io["latency_ms"].to_numpy(float)[ok], weights=ios[ok]))
            lat_p99 = weighted_quantile(io["latency_p99_ms"].to_numpy(float)[ok], ios[ok], 0.99)
            lat_max = float(io["latency_p99_ms"].to_numpy(float)[ok].max())
        span = obs.duration_s
        read = float((io["read_mb_s"].to_numpy(float) * dur).sum() / span)
        write = float((io["write_mb_s"].to_numpy(float) * dur).sum() / span)
    if _nz(stall) > 0:
        lat_max = max(_nz(lat_max), stall * 1000.0)  # a request waited through the stall
    st = obs["vm_state"]
    st = st[st["vm"] == vm]
    sdur = st["t_end_s"] - st["t_start_s"]
    restarts = int(((st["state"] == "restarting")
                    & (st["state"].shift(1) != "restarting")).sum())
    mig = obs["migrations"]
    mig = mig[mig["vm"] == vm]
    return {
        "max_io_stall_s": _nz(stall),
        "max_io_stall_at_s": _nan_to_none(stall_at),
        "max_io_error_s": _nz(err),
        "max_io_error_at_s": _nan_to_none(err_at),
        "io_error_s": err_s,
        "max_io_outage_s": _nz(outage),
        "max_io_outage_at_s": _nan_to_none(outage_at),
        "mean_latency_ms": _nan_to_none(lat_mean),
        "p99_latency_ms": _nan_to_none(lat_p99),
        "max_latency_ms": _nan_to_none(lat_max),
        "read_mb_s": read,
        "write_mb_s": write,
        "downtime_s": float(sdur[st["state"].isin(["down", "restarting"])].sum()),
        "paused_s": float(sdur[st["state"] == "paused"].sum()),
        "restarts": restarts,
        "migrations": [
            {"src": str(r["src_host"]), "dst": str(r["dst_host"]),
             "start_s": float(r["t_start_s"]),
             "total_s": float(r["t_end_s"]) - float(r["t_start_s"]),
             "downtime_s": float(r["downtime_s"]), "outcome": str(r["outcome"])}
            for r in mig.to_dict("records")
        ],
    }


def _nz(x: float) -> float:
    return 0.0 if math.isnan(x) else x


def heal_completed_s(obs: Observations, volume: str) -> float | None:
    """When pending heal of ``volume`` last fell back to 0 (None: never pending, or not done)."""
    vs = obs["volume_state"]
    vs = vs[vs["volume"] == volume]
    if vs.empty:
        return None
    total = vs.groupby("t_s")["pending_heal_bytes"].sum().sort_index()
    pending = total > 0
    if not pending.any() or pending.iloc[-1]:
        return None
    last_pending = pending[pending].index.max()
    after = total[total.index > last_pending]
    return float(after.index.min()) if not after.empty else None


def last_repair_s(obs: Observations, volume: str, until_s: float) -> float | None:
    """The last repair (``fault_end``) at or before ``until_s`` that can leave ``volume``
    something to heal: not a slowdown (nothing missed), not a brick fault of another
    volume. None: no such repair."""
    ev = obs["events"]
    ends = ev[(ev["kind"] == "fault_end") & (ev["t_s"] <= until_s + _EPS)]
    best: float | None = None
    for t, kind, vol in zip(ends["t_s"], ends["fault_kind"], ends["volume"], strict=True):
        traits = FAULT_TABLE.get(str(kind))  # type: ignore[call-overload]
        if traits is None or traits.slows or str(vol) not in ("", volume):
            continue
        best = float(t) if best is None else max(best, float(t))
    return best


def volume_summary(obs: Observations, volume: str) -> dict[str, Any]:
    heal = obs["heal"]
    heal = heal[heal["volume"] == volume]
    vs = obs["volume_state"]
    vs = vs[vs["volume"] == volume]
    ex = obs["exposure"]
    ex = ex[ex["volume"] == volume]
    wr = obs["writes"]
    wr = wr[wr["volume"] == volume]
    pending = vs.groupby("t_s")["pending_heal_bytes"].sum() if not vs.empty else pd.Series()
    q = vs.groupby("t_s")["quorum"].all().sort_index() if not vs.empty else pd.Series()
    quorum_lost_s = 0.0
    if not q.empty:
        times = [*q.index, obs.duration_s]
        for i, ok in enumerate(q.to_numpy()):
            if not ok:
                quorum_lost_s += times[i + 1] - times[i]
    done = heal_completed_s(obs, volume)
    repair = last_repair_s(obs, volume, done) if done is not None else None
    return {
        "heal_completed_s": done,
        "heal_repair_at_s": repair,
        "heal_after_repair_s": None if done is None or repair is None else done - repair,
        "heal_pending_at_end_bytes": float(
            vs[vs["t_s"] == vs["t_s"].max()]["pending_heal_bytes"].sum()) if not vs.empty else 0.0,
        "bytes_healed": float(heal["bytes"].sum()),
        "shards_healed": int(heal["shards"].sum()),
        "max_pending_heal_bytes": float(pending.max()) if not pending.empty else 0.0,
        "exposure_s": float((ex["t_end_s"] - ex["t_start_s"]).sum()),
        "min_good_copies": int(ex["good_copies"].min()) if not ex.empty else None,
        "unavailable_bytes": float(ex["unavailable_bytes"].max()) if not ex.empty else 0.0,
        "quorum_lost_s": quorum_lost_s,
        "acked_bytes": float(wr["acked_bytes"].sum()),
        "min_copies_acked": int(wr[wr["acked_bytes"] > 0]["copies"].min())
        if (wr["acked_bytes"] > 0).any() else None,
        "acked_without_quorum_bytes": float(wr[~wr["quorum"]]["acked_bytes"].sum()),
        "lost_bytes": float(wr["lost_bytes"].sum()),
    }


def summarize(obs: Observations, vms: list[str], volumes: list[str]) -> dict[str, Any]:
    ev = obs["events"]
    return {
        "engine": obs.engine,
        "scenario": obs.scenario,
        "seed": obs.seed,
        "duration_s": obs.duration_s,
        "events": len(ev),
        "faults": int((ev["kind"] == "fault_start").sum()),
        "vms": {vm: vm_summary(obs, vm) for vm in vms},
        "volumes": {v: volume_summary(obs, v) for v in volumes},
        "meta": obs.meta,
    }
