"""Per-year estimates from a study's replication tables: means with confidence intervals and
quantiles of annual times, and probabilities per year with Wilson intervals.

Each replication is one independent sample of ``years`` simulated years; a time per year is
its total divided by ``years``. A probability per year is the share of simulated calendar
years in which the thing began at least once (``years`` should then be a whole number; for
a fraction of a year it is the probability per replication).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from hcisim.availability.stats import mean_ci, wilson
from hcisim.availability.study import StudyTables
from hcisim.availability.table import YEAR_S

VM_TIMES = {
    "stalled_s": "I/O stalled (a brick lost, before ping-timeout)",
    "error_s": "I/O error (no quorum: ENOTCONN)",
    "paused_s": "paused (storage I/O error)",
    "down_s": "down (until restarted; HA VMs only, see the docs)",
    "out_of_service_s": "out of service (stalled, I/O error, paused or down)",
}
VOLUME_TIMES = {
    "quorum_lost_s": "without client quorum",
    "fewer_copies_s": "fewer in-sync data copies than promised",
    "one_copy_s": "on one data copy",
    "no_copy_s": "no in-sync data copy up",
}
VOLUME_YEARS = {
    "years_quorum_lost": "quorum loss",
    "years_unavailable": "data unavailable",
    "years_data_lost": "data loss",
}


def _ok(df: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    bad = runs[runs["error"] != ""][["layout", "replication"]]
    if bad.empty or df.empty:
        return df
    keys = pd.MultiIndex.from_frame(bad)
    return df[~pd.MultiIndex.from_frame(df[["layout", "replication"]]).isin(keys)]


def summarize_study(t: StudyTables, years: float) -> dict[str, Any]:
    """Estimates per layout, per VM and per volume (the data of summary.json and the page)."""
    slots = max(1, math.ceil(years - 1e-9))
    out: dict[str, Any] = {"years": years, "layouts": {}}
    vms, vols = _ok(t.vms, t.runs), _ok(t.volumes, t.runs)
    for layout in t.runs["layout"].drop_duplicates():
        lay: dict[str, Any] = {"vms": {}, "volumes": {}}
        runs = t.runs[(t.runs["layout"] == layout) & (t.runs["error"] == "")]
        lay["replications"] = len(runs)
        lay["failed"] = int(((t.runs["layout"] == layout) & (t.runs["error"] != "")).sum())
        v = vms[vms["layout"] == layout] if not vms.empty else vms
        for name, g in (v.groupby("vm", sort=False) if not v.empty else []):
            lay["vms"][name] = {"ha": bool(g["ha"].iloc[0]), **{
                m: mean_ci(g[m].to_numpy(float) / years, floor=0.0).as_dict("") for m in VM_TIMES}}
            lay["vms"][name]["availability_pct"] = 100.0 * (
                1.0 - lay["vms"][name]["out_of_service_s"]["mean"] / YEAR_S)
        w = vols[vols["layout"] == layout] if not vols.empty else vols
        for name, g in (w.groupby("volume", sort=False) if not w.empty else []):
            entry: dict[str, Any] = {"type": str(g["type"].iloc[0]), **{
                m: mean_ci(g[m].to_numpy(float) / years, floor=0.0).as_dict("")
                for m in VOLUME_TIMES}}
            entry["fewer_copies_fraction"] = mean_ci(
                g["fewer_copies_s"].to_numpy(float) / (years * YEAR_S), floor=0.0).as_dict("")
            entry["mean_copies"] = mean_ci(g["mean_copies"].to_numpy(float),
                                           floor=0.0).as_dict("")
            n = len(g) * slots
            for m, label in VOLUME_YEARS.items():
                k = int(g[m].sum())
                p, lo, hi = wilson(k, n)
                entry[f"p_{m.removeprefix('years_')}"] = {
                    "label": label, "years_with": k, "years": n, "p": p, "ci_low": lo,
                    "ci_high": hi}
            lay["volumes"][name] = entry
        out["layouts"][str(layout)] = lay
    return out
