"""What one simulated stretch of years did to each VM and volume, from the model's
observation tables only (the same tables a single `hcisim run` writes).

Times are totals over the replication in seconds; the study divides by its years. "Years
with X" counts the calendar years of the replication (0, 1, ...) in which X began at least
once, so a probability per year is (years with X) / (years simulated).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hcisim.availability.table import YEAR_S
from hcisim.observations import Observations
from hcisim.scenario import Scenario


def union_s(starts: np.ndarray, ends: np.ndarray) -> float:
    """Length of the union of the intervals [start, end)."""
    if len(starts) == 0:
        return 0.0
    order = np.argsort(starts)
    total, cur_s, cur_e = 0.0, float(starts[order[0]]), float(ends[order[0]])
    for s, e in zip(starts[order[1:]], ends[order[1:]], strict=True):
        if s > cur_e:
            total += cur_e - cur_s
            cur_s, cur_e = float(s), float(e)
        else:
            cur_e = max(cur_e, float(e))
    return total + cur_e - cur_s


def episodes(starts: np.ndarray, ends: np.ndarray, gap_s: float = 1e-6) -> np.ndarray:
    """Start times of the separate stretches the intervals form."""
    if len(starts) == 0:
        return np.empty(0)
    order = np.argsort(starts)
    out, cur_e = [float(starts[order[0]])], float(ends[order[0]])
    for s, e in zip(starts[order[1:]], ends[order[1:]], strict=True):
        if s > cur_e + gap_s:
            out.append(float(s))
        cur_e = max(cur_e, float(e))
    return np.array(out)


def years_with(times: np.ndarray) -> int:
    return len({int(t // YEAR_S) for t in times})


def _columns(df: pd.DataFrame, key: str, label: str) -> tuple[np.ndarray, ...]:
    """(key, label, start, end) as numpy arrays: boolean masks on numpy are ~10x cheaper
    than on the tables' Arrow-backed string columns, and this runs once per replication."""
    return (df[key].to_numpy(object), df[label].to_numpy(object),
            df["t_start_s"].to_numpy(float), df["t_end_s"].to_numpy(float))


def vm_rows(sc: Scenario, obs: Observations) -> list[dict[str, Any]]:
    io_vm, status, io_a, io_b = _columns(obs["vm_io"], "vm", "status")
    st_vm, state, st_a, st_b = _columns(obs["vm_state"], "vm", "state")
    rows = []
    for vm in sc.vms:
        row: dict[str, Any] = {"vm": vm.name, "ha": vm.ha}
        mine = io_vm == vm.name
        for what in ("stalled", "error"):
            m = mine & (status == what)
            row[f"{what}_s"] = union_s(io_a[m], io_b[m])
            row[f"{what}_episodes"] = len(episodes(io_a[m], io_b[m]))
        ms = st_vm == vm.name
        paused = ms & (state == "paused")
        down = ms & ((state == "down") | (state == "restarting"))
        row["paused_s"] = float((st_b[paused] - st_a[paused]).sum())
        row["down_s"] = float((st_b[down] - st_a[down]).sum())
        # out of service: no I/O completes (stalled, error) or the VM is not running
        bad = mine & ((status == "stalled") | (status == "error"))
        gone = paused | down
        row["out_of_service_s"] = union_s(np.concatenate([io_a[bad], st_a[gone]]),
                                          np.concatenate([io_b[bad], st_b[gone]]))
        restarting = state[ms] == "restarting"
        row["restarts"] = int((restarting & ~np.concatenate(([False], restarting[:-1]))).sum())
        rows.append(row)
    return rows


def _by_time(t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct sample times (sorted) and each row's index among them."""
    return np.unique(t_s, return_inverse=True)


def _quorum_lost(times: np.ndarray, at: np.ndarray, quorum: np.ndarray,
                 end_s: float) -> tuple[float, np.ndarray]:
    """Seconds without client quorum, and the times quorum was lost (from volume_state:
    quorum at a sample time only if every row of that time has it)."""
    if len(at) == 0:
        return 0.0, np.empty(0)
    ok = np.bincount(at, weights=~quorum, minlength=len(times)) == 0
    t = np.append(times, end_s)
    lost = float(np.sum((t[1:] - t[:-1])[~ok]))
    began = t[:-1][~ok & np.concatenate(([True], ok[:-1]))]
    return lost, began


def _mean_copies(times: np.ndarray, at: np.ndarray, good: np.ndarray, end_s: float) -> float:
    """Time-average of the data bricks that are up and in sync (nothing to heal)."""
    if len(at) == 0:
        return float("nan")
    per_t = np.bincount(at, weights=good, minlength=len(times))  # whole counts
    t = np.append(times, end_s)
    return float(np.sum(per_t * np.diff(t)) / max(end_s - t[0], 1e-9))


def volume_rows(sc: Scenario, obs: Observations) -> list[dict[str, Any]]:
    """Per volume, from numpy columns (a boolean mask per volume on numpy costs a fraction
    of filtering the Arrow-backed tables, and this runs once per replication)."""
    end = obs.duration_s
    vs, ex, wr, heal, ev = (obs["volume_state"], obs["exposure"], obs["writes"],
                            obs["heal"], obs["events"])
    vs_vol, vs_t = vs["volume"].to_numpy(object), vs["t_s"].to_numpy(float)
    vs_quorum = vs["quorum"].to_numpy(bool)
    vs_good = ((vs["role"] == "data") & vs["up"] & (vs["pending_heal_bytes"] <= 0)).to_numpy(bool)
    ex_vol, copies = ex["volume"].to_numpy(object), ex["good_copies"].to_numpy(int)
    exd = (ex["t_end_s"] - ex["t_start_s"]).to_numpy(float)
    wr_vol, wr_lost = wr["volume"].to_numpy(object), wr["lost_bytes"].to_numpy(float)
    wr_t = wr["t_start_s"].to_numpy(float)
    heal_vol, heal_bytes = heal["volume"].to_numpy(object), heal["bytes"].to_numpy(float)
    unavailable = (ev["kind"] == "data_unavailable").to_numpy(bool)
    ev_target, ev_t = ev["target"].to_numpy(object), ev["t_s"].to_numpy(float)
    rows = []
    for vol in sc.volumes:
        promised = len(vol.data_bricks)
        mine = vs_vol == vol.name
        times, at = _by_time(vs_t[mine])
        lost_s, lost_at = _quorum_lost(times, at, vs_quorum[mine], end)
        mx = ex_vol == vol.name
        d, c = exd[mx], copies[mx]
        mw = wr_vol == vol.name
        lost = wr_lost[mw]
        unavail = ev_t[unavailable & (ev_target == vol.name)]
        rows.append({
            "volume": vol.name, "type": vol.type, "promised_copies": promised,
            "quorum_lost_s": lost_s, "quorum_losses": len(lost_at),
            "years_quorum_lost": years_with(lost_at),
            "fewer_copies_s": float(d[c < promised].sum()),
            "one_copy_s": float(d[c == 1].sum()),
            "no_copy_s": float(d[c == 0].sum()),
            "mean_copies": _mean_copies(times, at, vs_good[mine], end),
            "unavailable_events": len(unavail),
            "years_unavailable": years_with(unavail),
            "lost_bytes": float(lost.sum()),
            "years_data_lost": years_with(wr_t[mw][lost > 0]),
            "bytes_healed": float(heal_bytes[heal_vol == vol.name].sum()),
        })
    return rows
