"""Interval tables resampled onto a common time grid, so 100 VMs can share one plot.

vm_io rows are piecewise constant (model: between changes; lab: per second). Each bin gets
the time-weighted mean of what overlapped it, computed from the running integral (O(rows +
bins) per disk), so a short stall is not lost between two sample points.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hcisim.observations.summary import BAD_IO


def grid(end_s: float, bins: int = 600, start_s: float = 0.0) -> np.ndarray:
    """Bin edges from ``start_s`` (the run's start) to ``end_s`` (the end of the run)."""
    return np.linspace(start_s, max(end_s, start_s + 1e-9), bins + 1)


def integral_at(t0: np.ndarray, t1: np.ndarray, values: np.ndarray,
                edges: np.ndarray) -> np.ndarray:
    """∫ value dt from 0 to each edge, for sorted, non-overlapping intervals [t0, t1)."""
    if len(t0) == 0:
        return np.zeros_like(edges)
    area = np.cumsum(values * (t1 - t0))
    before = np.concatenate(([0.0], area[:-1]))
    xp = np.column_stack((t0, t1)).ravel()
    fp = np.column_stack((before, area)).ravel()
    running: np.ndarray = np.interp(edges, xp, fp, left=0.0, right=float(area[-1]))
    return running


def bin_sums(t0: np.ndarray, t1: np.ndarray, values: np.ndarray,
             edges: np.ndarray) -> np.ndarray:
    """∫ value dt within each bin."""
    return np.diff(integral_at(t0, t1, values, edges))


@dataclass
class VmSeries:
    """Per-bin series of one VM (all its disks together)."""

    mb_s: np.ndarray  # read + write, time-weighted mean over the bin
    p99_ms: np.ndarray  # mean p99 latency over the bin's time with I/O ok (NaN: none)
    stalled: np.ndarray  # share of the bin with a disk stalled or in error, 0..1


def vm_series(io: pd.DataFrame, edges: np.ndarray) -> VmSeries:
    """Series of one VM's vm_io rows (any number of disks)."""
    width = np.diff(edges)
    mb = np.zeros(len(width))
    lat = np.zeros(len(width))
    ok_s = np.zeros(len(width))
    bad = np.zeros(len(width))
    for _, disk in io.groupby("volume"):
        disk = disk.sort_values("t_start_s")
        t0 = disk["t_start_s"].to_numpy(float)
        t1 = disk["t_end_s"].to_numpy(float)
        ok = (disk["status"] == "ok").to_numpy(float)
        p99 = np.nan_to_num(disk["latency_p99_ms"].to_numpy(float))
        mb += bin_sums(t0, t1, (disk["read_mb_s"] + disk["write_mb_s"]).to_numpy(float), edges)
        lat += bin_sums(t0, t1, p99 * ok, edges)
        ok_s += bin_sums(t0, t1, ok, edges)
        bad = np.maximum(bad, bin_sums(t0, t1, disk["status"].isin(BAD_IO).to_numpy(float),
                                       edges))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(ok_s > 1e-9, lat / ok_s, np.nan)
    return VmSeries(mb / width, p, np.clip(bad / width, 0.0, 1.0))


def band(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """min, median, max across rows (VMs) per bin; NaN where no VM had a value."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bins stay NaN
        return (np.nanmin(stack, axis=0), np.nanmedian(stack, axis=0),
                np.nanmax(stack, axis=0))


def step_table(vs: pd.DataFrame, horizon: float) -> pd.DataFrame:
    """volume_state samples of one brick as intervals: each holds until the next sample."""
    vs = vs.sort_values("t_s")
    out = vs.assign(t_end_s=[*vs["t_s"].iloc[1:].to_list(), horizon])
    return out
