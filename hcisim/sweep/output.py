"""What a sweep leaves behind: the results table, how it was made, plots and an index page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from hcisim.scenario import save_scenario
from hcisim.sweep.grid import SweepPlan
from hcisim.sweep.plots import comparison_plots

_INDEX = jinja2.Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hcisim sweep: {{ name }}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 8px}</style></head><body>
<h1>Sweep of {{ name }}</h1>
<p>{{ runs }} runs: {{ points }} grid points x {{ replications }} replications
(base seed {{ base_seed }}){% if failed %}; <b>{{ failed }} runs failed</b> (see the error
column){% endif %}. Data: <a href="results.csv">results.csv</a>,
<a href="results.parquet">results.parquet</a>, <a href="sweep.json">sweep.json</a>,
<a href="scenario.yaml">base scenario</a>.</p>
<table><tr><th>factor</th><th>levels</th></tr>{% for f in factors %}
<tr><td>{{ f.path }}</td><td>{{ f.levels|join(", ") }}</td></tr>{% endfor %}</table>
{% for p in plots %}<h2>{{ p.stem }}</h2><img src="plots/{{ p.name }}" alt="{{ p.stem }}">
{% endfor %}</body></html>""", autoescape=True)


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
    plots = comparison_plots(table, plan.factors, out / "plots")
    paths["index.html"].write_text(_INDEX.render(
        name=plan.base.name, runs=len(plan.runs), points=plan.points,
        replications=plan.replications, base_seed=plan.base_seed, failed=failed,
        factors=plan.factors, plots=plots))
    return paths
