"""What a sweep leaves behind: the results table, how it was made, plots and an index page."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pandas as pd

from hcisim.report.pages import data_uri, render_page
from hcisim.scenario import save_scenario
from hcisim.sweep.grid import SweepPlan
from hcisim.sweep.plots import comparison_plots


def write_sweep(plan: SweepPlan, table: pd.DataFrame, out: Path,
                meta: dict[str, Any]) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("results.parquet", "results.csv", "sweep.json",
                                           "scenario.yaml", "index.html")}
    table.to_parquet(paths["results.parquet"], index=False)
    table.to_csv(paths["results.csv"], index=False)
    save_scenario(plan.base, paths["scenario.yaml"])
    failed = int((table["error"].fillna("") != "").sum())
    info = {
        "scenario": plan.base.name, "base_seed": plan.base_seed,
        "replications": plan.replications, "points": plan.points, "runs": len(plan.runs),
        "failed_runs": failed,
        "factors": [{"path": f.path, "levels": list(f.levels)} for f in plan.factors],
        "seeds": sorted({r.seed for r in plan.runs}, key=lambda s: [
            r.seed for r in plan.runs].index(s)),
        **meta,
    }
    paths["sweep.json"].write_text(json.dumps(info, indent=2, default=str))
    plots = []
    for p in comparison_plots(table, plan.factors, out / "plots"):
        data = p.read_bytes()
        width, height = struct.unpack(">II", data[16:24])  # the PNG header's size
        plots.append({"stem": p.stem, "name": p.name, "src": data_uri(data), "width": width,
                      "height": height})
    paths["index.html"].write_text(render_page(
        "sweep.html.j2", name=plan.base.name, runs=len(plan.runs), points=plan.points,
        replications=plan.replications, base_seed=plan.base_seed, failed=failed,
        factors=plan.factors, plots=plots))
    return paths
