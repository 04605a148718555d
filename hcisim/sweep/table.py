"""One row per run: factor levels, seed, claim verdicts and the summary metrics that matter.

Per-VM numbers are aggregated over VMs (``vms.<metric>.max`` / ``.mean``, throughput
``.sum``), per-volume numbers get one column each (``volume.<name>.<metric>``) plus a
cluster-wide aggregate (``volumes.<metric>.max`` / ``.sum``), so rows of scenarios with
different VM sets still line up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hcisim.runner import RunResult
from hcisim.sweep.grid import SweepPlan, SweepRun

VM_MAX_MEAN = ("max_io_stall_s", "max_io_error_s", "max_io_outage_s", "p99_latency_ms",
               "mean_latency_ms", "max_latency_ms", "downtime_s", "paused_s", "io_error_s",
               "restarts")
VM_SUM = ("read_mb_s", "write_mb_s")
VOLUME = ("heal_time_s", "heal_completed_s", "heal_after_repair_s",
          "heal_pending_at_end_bytes", "bytes_healed",
          "shards_healed", "max_pending_heal_bytes", "exposure_s", "quorum_lost_s",
          "min_copies_acked", "acked_without_quorum_bytes", "lost_bytes")
VOLUME_MAX = ("heal_time_s", "heal_after_repair_s", "exposure_s", "quorum_lost_s",
              "max_pending_heal_bytes")
VOLUME_SUM = ("bytes_healed", "heal_pending_at_end_bytes", "lost_bytes",
              "acked_without_quorum_bytes")
KEYS = ("point", "replication", "seed")


def _num(x: Any) -> float:
    if x is None:
        return math.nan
    return float(x)


def _agg(values: list[float], how: str) -> float:
    arr = np.array([v for v in values if not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return math.nan
    if how == "max":
        return float(arr.max())
    return float(arr.mean()) if how == "mean" else float(arr.sum())


def heal_times(result: RunResult) -> dict[str, float]:
    """Per volume: first heal start to last heal end (s), from the heal table.

    A heal still running when the run ends is cut there: read it with
    ``heal_pending_at_end_bytes`` (> 0 means the time is a lower bound).
    """
    heal = result.observations["heal"]
    out = {}
    for vol in (v.name for v in result.scenario.volumes):
        h = heal[heal["volume"] == vol]
        out[vol] = float(h["t_end_s"].max() - h["t_start_s"].min()) if not h.empty else 0.0
    return out


def metrics(result: RunResult) -> dict[str, Any]:
    s = result.summary
    row: dict[str, Any] = {"passed": bool(result.passed), "events": int(s["events"])}
    vms = list(s["vms"].values())
    for m in VM_MAX_MEAN:
        vals = [_num(v[m]) for v in vms]
        row[f"vms.{m}.max"] = _agg(vals, "max")
        row[f"vms.{m}.mean"] = _agg(vals, "mean")
    for m in VM_SUM:
        row[f"vms.{m}.sum"] = _agg([_num(v[m]) for v in vms], "sum")
    row["vms.migrations.sum"] = float(sum(len(v["migrations"]) for v in vms))
    heal = heal_times(result)
    per_volume: dict[str, list[float]] = {m: [] for m in VOLUME}
    for name, vol in s["volumes"].items():
        values = {**vol, "heal_time_s": heal.get(name, math.nan)}
        for m in VOLUME:
            row[f"volume.{name}.{m}"] = _num(values[m])
            per_volume[m].append(_num(values[m]))
    for m in VOLUME_MAX:
        row[f"volumes.{m}.max"] = _agg(per_volume[m], "max")
    for m in VOLUME_SUM:
        row[f"volumes.{m}.sum"] = _agg(per_volume[m], "sum")
    names: set[str] = set()
    for v in result.verdicts:
        name = v.name
        k = 2
        while name in names:
            name, k = f"{v.name}#{k}", k + 1
        names.add(name)
        row[f"claim.{name}.verdict"] = v.verdict
        row[f"claim.{name}.measured"] = _num(v.measured)
        row[f"claim.{name}.unit"] = v.unit
    return row


def run_row(run: SweepRun, result: RunResult | None, error: str = "") -> dict[str, Any]:
    row: dict[str, Any] = dict(run.levels)
    row.update(point=run.point, replication=run.replication, seed=run.seed, error=error)
    if result is not None:
        row.update(metrics(result))
    return row


def _column(values: pd.Series) -> pd.Series:
    """A factor column of one type: numbers stay numbers, anything mixed becomes text."""
    kinds = {type(v) for v in values}
    if kinds <= {int, float} and bool not in kinds:
        return values.astype(float) if float in kinds else values.astype("int64")
    if kinds == {bool}:
        return values.astype(bool)
    return values.map(lambda v: v if isinstance(v, str) else repr(v)).astype("string")


def _grid_order(row: dict[str, Any]) -> tuple[int, int]:
    return int(row["point"]), int(row["replication"])


def results_table(plan: SweepPlan, rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows in grid order (point, replication), whatever order the workers finished in."""
    ordered: list[dict[str, Any]] = sorted(rows, key=_grid_order)
    df = pd.DataFrame(ordered)
    factors = [f.path for f in plan.factors]
    for f in factors:
        df[f] = _column(df[f])
    lead = [*factors, *KEYS, "error"]
    rest = [c for c in df.columns if c not in lead]
    first = [c for c in ("passed", "events") if c in rest]
    claims = sorted(c for c in rest if c.startswith("claim."))
    other = sorted(c for c in rest if c not in first and c not in claims)
    df = df[[*lead, *first, *claims, *other]]
    for c in [*first, *claims, *other, "error"]:
        if df[c].dtype == object:  # a failed run leaves NaN among bools or verdicts
            known = df[c].dropna()
            is_bool = not known.empty and all(isinstance(v, bool | np.bool_) for v in known)
            df[c] = df[c].astype("boolean" if is_bool else "string")
    return df.reset_index(drop=True)
