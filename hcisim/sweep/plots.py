"""Comparison plots: each metric per factor level, with the spread over replications.

One PNG per factor. In each panel the x axis is the factor's levels (in the order given);
each line is one combination of the other factors (pooled when there are too many to read),
its marker the mean over replications and its bar the min..max over them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from hcisim.report import style
from hcisim.report.figures import png
from hcisim.sweep.grid import Factor

HEADLINE = (
    "vms.max_io_stall_s.max", "vms.p99_latency_ms.max", "vms.downtime_s.max",
    "volumes.heal_time_s.max", "volumes.bytes_healed.sum", "passed",
)
MAX_LINES = 6
MAX_PANELS = 9  # drawing is most of a sweep's write time; the table has everything


def plottable(df: pd.DataFrame) -> list[str]:
    """Headline metrics present and numeric; claim measurements after them."""
    cols = [c for c in HEADLINE if c in df.columns]
    cols += sorted(c for c in df.columns if c.startswith("claim.") and c.endswith(".measured"))
    return [c for c in cols if df[c].notna().any()][:MAX_PANELS]


def _values(df: pd.DataFrame, metric: str) -> pd.Series:
    s = df[metric]
    if metric == "passed":
        return s.astype("float64")  # share of runs whose claims all passed
    return pd.to_numeric(s, errors="coerce").astype("float64")


def unit(df: pd.DataFrame, metric: str) -> tuple[str, float]:
    """The unit a metric's axis reads in, and the factor from the table's values to it."""
    if metric == "passed":
        return "% of runs", 100.0
    if metric.startswith("claim."):
        col = metric.removesuffix(".measured") + ".unit"
        units = list(df[col].dropna().unique()) if col in df.columns else []
        shown = str(units[0]) if units else ""
        return ("GB", 1e-9) if shown == "bytes" else (shown, 1.0)
    name = metric.split(".")[1] if metric.count(".") >= 2 else metric
    if name.endswith("_bytes") or name == "bytes_healed":
        return "GB", 1e-9
    for suffix, shown in (("_ms", "ms"), ("_mb_s", "MB/s"), ("_s", "s")):
        if name.endswith(suffix):
            return shown, 1.0
    return "", 1.0


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "factor"


def factor_plot(df: pd.DataFrame, factor: Factor, others: Sequence[Factor],
                metrics: Sequence[str], path: Path) -> None:
    path.write_bytes(png(factor_figure(df, factor, others, metrics)))


def factor_figure(df: pd.DataFrame, factor: Factor, others: Sequence[Factor],
                  metrics: Sequence[str]) -> Figure:
    """A panel per metric: its value (in its unit, from a zero baseline) per factor level,
    a line per combination of the other factors."""
    levels = list(pd.unique(df[factor.path]))
    x = np.arange(len(levels))
    groups: list[tuple[str, pd.DataFrame]]
    combos = df.groupby([o.path for o in others], sort=False) if others else None
    if combos is not None and combos.ngroups <= MAX_LINES:
        groups = [(", ".join(f"{o.path}={v}" for o, v in zip(
            others, k if isinstance(k, tuple) else (k,), strict=True)), g) for k, g in combos]
    else:
        groups = [("all runs" if not others else "pooled over other factors", df)]
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    fig = style.figure(4.6 * cols, 3.4 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        shown, scale = unit(df, metric)
        low, high = 0.0, 0.0
        for i, (label, g) in enumerate(groups):
            offset = (i - (len(groups) - 1) / 2) * 0.08
            stats = [_values(g[g[factor.path] == lv], metric) * scale for lv in levels]
            mean = np.array([s.mean() for s in stats])
            lo = np.array([s.min() for s in stats])
            hi = np.array([s.max() for s in stats])
            # clip: the mean of equal floats can round a hair below their minimum
            err = [np.clip(mean - lo, 0, None), np.clip(hi - mean, 0, None)]
            low, high = float(np.nanmin([low, *lo])), float(np.nanmax([high, *hi]))
            look = style.line_style(i, len(groups), len(levels))
            ax.errorbar(x + offset, mean, yerr=err, capsize=3, label=label,
                        color=look["color"], ls=look["ls"], marker=look["marker"],
                        markersize=5, lw=1.1)
        ax.set_xticks(x, [str(lv) for lv in levels])
        ax.set_xlabel(factor.path, fontsize=8)
        ax.set_ylabel(shown or "value", fontsize=8)
        ax.set_title("runs passing all claims" if metric == "passed" else metric,
                     fontsize="small", loc="left")
        ax.axhline(0, color=style.BLACK, lw=0.8)  # the baseline: differences read to scale
        pad = 0.05 * (high - low) or 1.0  # all zero: still an axis from 0 up
        ax.set_ylim(low - pad if low < 0 else 0.0, high + pad)
        if metric == "passed":
            ax.set_ylim(-3, 105)
            ax.yaxis.set_major_formatter(PercentFormatter(100))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.legend(*axes.flat[0].get_legend_handles_labels(), fontsize="x-small",
               loc="outside lower center", ncol=min(3, len(groups)), frameon=False)
    fig.suptitle(f"per level of {factor.path} (mean, bar: min..max over replications)",
                 fontsize="medium", x=0.0, ha="left")
    return fig


def comparison_plots(df: pd.DataFrame, factors: Sequence[Factor], out: Path) -> list[Path]:
    """One PNG per factor in ``out``; none when nothing ran or there are no factors."""
    ok = df[df["error"].fillna("") == ""] if "error" in df.columns else df
    metrics = plottable(ok)
    if ok.empty or not metrics or not factors:
        return []
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in factors:
        p = out / f"{slug(f.path)}.png"
        factor_plot(ok, f, [o for o in factors if o is not f], metrics, p)
        paths.append(p)
    return paths
