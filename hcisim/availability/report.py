"""What a study leaves behind: every replication (Parquet and CSV), the estimates
(summary.json), the scenario and failure table it ran, CDF plots and an HTML page rendered
with the report's Jinja environment (``hcisim/templates/availability.html.j2``)."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure

from hcisim.availability.study import StudyTables
from hcisim.availability.table import FailureTable
from hcisim.report import style
from hcisim.report.figures import png
from hcisim.report.pages import data_uri, render_page, table_html
from hcisim.scenario import Scenario, save_scenario
from hcisim.sweep import SweepPlan

# what a CDF panel shows: (table, column, title, divide by (per year) then by unit, unit)
CDF_PANELS: tuple[tuple[str, str, str, float, str], ...] = (
    ("vms", "stalled_s", "VM I/O stalled", 1.0, "s/year"),
    ("vms", "paused_s", "VM paused (storage error)", 1.0, "s/year"),
    ("vms", "down_s", "HA VM down until restarted", 60.0, "min/year"),
    ("volumes", "quorum_lost_s", "volume without quorum", 60.0, "min/year"),
    ("volumes", "fewer_copies_s", "fewer copies than promised", 3600.0, "h/year"),
    ("volumes", "one_copy_s", "on one data copy", 3600.0, "h/year"),
)


def _ok(df: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    good = runs[runs["error"] == ""][["layout", "replication"]]
    return df.merge(good, on=["layout", "replication"]) if not df.empty else df


def cdf_figure(t: StudyTables, years: float) -> Figure:
    """Empirical CDF over replications (each VM-year or volume-year one sample, pooled over
    VMs or volumes), one line per layout."""
    fig = Figure(figsize=(13, 6.4))
    axes = fig.subplots(2, 3).flat
    for ax, (which, col, title, unit_div, unit) in zip(axes, CDF_PANELS, strict=True):
        df = _ok(t.vms if which == "vms" else t.volumes, t.runs)
        if which == "vms" and not df.empty:
            df = df[df["ha"]] if col == "down_s" else df
        for i, (layout, g) in enumerate(df.groupby("layout", sort=False) if not df.empty
                                        else []):
            x = np.sort(g[col].to_numpy(float) / years / unit_div)
            y = np.arange(1, len(x) + 1) / len(x)
            ax.step(x, y, where="post", label=str(layout),
                    color=style.LINE_COLOURS[i % len(style.LINE_COLOURS)],
                    linestyle=style.LINE_STYLES[i % len(style.LINE_STYLES)])
        ax.set_title(title, fontsize="small")
        ax.set_xlabel(unit)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of VM-years ≤ x")
    axes[3].set_ylabel("share of volume-years ≤ x")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper right", fontsize="small")
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    return fig


def _est(e: dict[str, float], div: float = 1.0) -> str:
    if e["mean"] is None or math.isnan(e["mean"]):
        return "-"
    return f"{e['mean'] / div:,.1f} [{e['ci_low'] / div:,.1f}, {e['ci_high'] / div:,.1f}]"


def _prob(p: dict[str, Any]) -> str:
    return f"{p['p']:.3f} [{p['ci_low']:.3f}, {p['ci_high']:.3f}] ({p['years_with']}/{p['years']})"


def vm_frame(lay: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for vm, e in lay["vms"].items():
        rows.append({"VM": vm, "HA": "yes" if e["ha"] else "no",
                     "stalled s/yr": _est(e["stalled_s"]),
                     "stalled p99": f"{e['stalled_s']['p99']:,.1f}",
                     "paused s/yr": _est(e["paused_s"]), "I/O error s/yr": _est(e["error_s"]),
                     "down min/yr": _est(e["down_s"], 60.0) if e["ha"] else "not restarted",
                     "down p50 / p99 min": f"{e['down_s']['p50'] / 60:,.1f} / "
                     f"{e['down_s']['p99'] / 60:,.1f}" if e["ha"] else "-",
                     "out of service min/yr": _est(e["out_of_service_s"], 60.0)
                     if e["ha"] else "-",
                     "availability %": f"{e['availability_pct']:.4f}" if e["ha"] else "-"})
    return pd.DataFrame(rows)


def volume_frame(lay: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for vol, e in lay["volumes"].items():
        rows.append({"volume": vol, "type": e["type"],
                     "P(quorum loss)/yr": _prob(e["p_quorum_lost"]),
                     "P(data unavailable)/yr": _prob(e["p_unavailable"]),
                     "P(data loss)/yr": _prob(e["p_data_lost"]),
                     "no quorum min/yr": _est(e["quorum_lost_s"], 60.0),
                     "fewer copies h/yr": _est(e["fewer_copies_s"], 3600.0),
                     "fewer copies % of time":
                         f"{100 * e['fewer_copies_fraction']['mean']:.3f}",
                     "one copy h/yr": _est(e["one_copy_s"], 3600.0)})
    return pd.DataFrame(rows)


def table_frame(table: FailureTable) -> pd.DataFrame:
    return pd.DataFrame([{
        "process": name, "fault": p.fault, "per": p.unit, "rate/yr": p.rate_per_year,
        "repair": f"{p.repair.dist}, mean {p.repair.mean_h:g} h"
        + (f", sigma {p.repair.sigma:g}" if p.repair.dist == "lognormal" else ""),
        "source": p.source} for name, p in table.processes.items()])


def write_study(plan: SweepPlan, table: FailureTable, t: StudyTables, summary: dict[str, Any],
                out: Path, meta: dict[str, Any], base: Scenario) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, df in (("runs", t.runs), ("vms", t.vms), ("volumes", t.volumes)):
        for ext in ("parquet", "csv"):
            p = out / f"{name}.{ext}"
            if ext == "parquet":
                df.to_parquet(p, index=False)
            else:
                df.to_csv(p, index=False)
            paths[p.name] = p
    years = float(summary["years"])
    info = {"scenario": base.name, "years": years, "replications": plan.replications,
            "base_seed": plan.base_seed, **meta, **summary}
    paths["summary.json"] = out / "summary.json"
    paths["summary.json"].write_text(json.dumps(info, indent=2, default=str))
    paths["scenario.yaml"] = out / "scenario.yaml"
    save_scenario(plan.base, paths["scenario.yaml"])
    paths["failure-table.yaml"] = out / "failure-table.yaml"
    paths["failure-table.yaml"].write_text(
        "# the failure table this study ran (defaults and overrides resolved)\n"
        + yaml.safe_dump(table.model_dump(mode="json"), sort_keys=False, width=100))
    (out / "plots").mkdir(exist_ok=True)
    data = png(cdf_figure(t, years))
    paths["plots/cdf.png"] = out / "plots" / "cdf.png"
    paths["plots/cdf.png"].write_bytes(data)
    width, height = struct.unpack(">II", data[16:24])
    layouts = [{"name": name, "replications": lay["replications"], "failed": lay["failed"],
                "volumes": table_html(volume_frame(lay)), "vms": table_html(vm_frame(lay))}
               for name, lay in summary["layouts"].items()]
    failed = int((t.runs["error"] != "").sum())
    paths["index.html"] = out / "index.html"
    paths["index.html"].write_text(render_page(
        "availability.html.j2", name=base.name, years=years, replications=plan.replications,
        base_seed=plan.base_seed, layouts=layouts, failed=failed,
        first_error=next((e for e in t.runs["error"] if e), ""),
        table=table_html(table_frame(table), float_format="{:g}"),
        maintenance=table.maintenance, cdf={"src": data_uri(data), "width": width,
                                            "height": height},
        wall_s=meta.get("wall_s"), executor=meta.get("executor", "")))
    return paths
