"""The HTML report of one run: plots, claims, failover/HA tables, scenario, raw CSVs.

``write_report(result_dir)`` reads what ``hcisim run`` wrote (scenario.yaml, observations/,
summary.json, journal.json) and writes ``report.html`` beside it, with its PNGs and CSVs in
``report_files/``. Images are embedded too, so the page opens from disk without a server.
"""

from __future__ import annotations

import base64
import json
import struct
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2

from hcisim.claims import evaluate, fault_windows, ha_plan
from hcisim.observations import Observations, SchemaError, summarize
from hcisim.report.figures import all_plots
from hcisim.report.tables import claims_rows, ha_table, html, vm_table, volume_table, write_csvs
from hcisim.scenario import Scenario, load_scenario

FILES = "report_files"
TEMPLATE = "run.html.j2"
_HEADINGS = {"io": ("io", "Throughput and latency"), "vm_states": ("states", "VM states"),
             "bricks": ("bricks", "Bricks and pending heal")}


def template_dirs() -> list[Path]:
    """Where the templates live: the repository's reports/ folder (design.md), or a copy
    shipped inside the package as hcisim/templates/ for a non-editable install."""
    here = Path(__file__).resolve().parent
    dirs = [here.parents[1] / "reports", here.parent / "templates"]
    return [d for d in dirs if (d / TEMPLATE).exists()]


def _env() -> jinja2.Environment:
    dirs = template_dirs()
    if not dirs:
        raise FileNotFoundError(f"report template {TEMPLATE} not found in reports/")
    return jinja2.Environment(loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
                              autoescape=jinja2.select_autoescape(["html", "j2"]),
                              undefined=jinja2.StrictUndefined)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except OSError:
        return None
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else None


def _png_size(png: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def _version() -> str:
    try:
        return metadata.version("hcisim")
    except metadata.PackageNotFoundError:
        return "dev"


def write_report(result_dir: Path) -> Path:
    """Write ``result_dir/report.html`` (and ``report_files/``); return the HTML's path."""
    result_dir = Path(result_dir)
    if not (result_dir / "scenario.yaml").exists():
        raise SchemaError(f"{result_dir}: no scenario.yaml here (not a result folder of "
                          "`hcisim run`)")
    sc = load_scenario(result_dir / "scenario.yaml")
    obs = Observations.load(result_dir)
    summary = _read_json(result_dir / "summary.json")
    if summary is None:  # judge again from the tables: same functions as the run used
        summary = summarize(obs, [v.name for v in sc.vms], [v.name for v in sc.volumes])
        summary["claims"] = [v.to_dict() for v in evaluate(sc, obs)]
    journal = _read_json(result_dir / "journal.json") or {}
    html_text = render(sc, obs, summary, journal, result_dir / FILES)
    out = result_dir / "report.html"
    out.write_text(html_text)
    return out


def render(sc: Scenario, obs: Observations, summary: dict[str, Any],
           journal: dict[str, Any], files: Path) -> str:
    """The report page for one run; plots and CSVs go to ``files``."""
    files.mkdir(parents=True, exist_ok=True)
    windows = fault_windows(sc, obs)
    claims = list(summary.get("claims") or [])
    plots = []
    for p in all_plots(sc, obs, windows):
        (files / f"{p.name}.png").write_bytes(p.png)
        anchor, heading = _HEADINGS[p.name]
        w, h = _png_size(p.png)
        plots.append({"name": p.name, "title": p.title, "anchor": anchor, "heading": heading,
                      "b64": base64.b64encode(p.png).decode("ascii"), "width": w, "height": h})
    csvs = write_csvs(obs, claims, files)
    scenario_file = files.parent / "scenario.yaml"
    run = {"scenario": sc.name, "engine": obs.engine, "seed": obs.seed,
           "duration_s": float(obs.duration_s), "vms": len(sc.vms), "volumes": len(sc.volumes),
           "faults": len(windows), "description": sc.description,
           "started": journal.get("started", ""),
           "passed": all((c.get("verdict") == "fail") == (c.get("expected") == "fail")
                         or (c.get("verdict") == "n/a" and c.get("expected") != "fail")
                         for c in claims)}
    events = obs["events"]
    return _env().get_template(TEMPLATE).render(
        run=run, claims=claims_rows(claims), faults=windows, plots=plots, files=FILES,
        csvs=csvs, ha_html=html(ha_table(ha_plan(sc, obs))),
        pairs_html=html(obs["failover_pairs"]), vm_html=html(vm_table(summary)),
        volume_html=html(volume_table(summary)),
        migrations_html=html(obs["migrations"]) if not obs["migrations"].empty else "",
        events_html=html(events), version=_version(),
        scenario_yaml=scenario_file.read_text() if scenario_file.exists() else "",
    )
