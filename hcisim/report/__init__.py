"""The HTML report of one run: plots, claims, failover/HA tables, scenario, raw CSVs.

``write_report(result_dir)`` reads what ``hcisim run`` wrote (scenario.yaml, observations/,
summary.json, journal.json) and writes ``report.html`` beside it, with its PNGs and CSVs in
``report_files/``. Images are embedded too, so the page opens from disk without a server.
The page template ships in the package (``hcisim/templates/run.html.j2``, see ``pages``).
"""

from __future__ import annotations

import json
import struct
from importlib import metadata
from pathlib import Path
from typing import Any

from hcisim.claims import evaluate, fault_windows, ha_plan
from hcisim.observations import Observations, SchemaError, summarize
from hcisim.report.figures import all_plots, phase_starts
from hcisim.report.model_error import model_error
from hcisim.report.offender import Offender, worst_offender
from hcisim.report.pages import data_uri, render_page, table_html
from hcisim.report.style import fault_colour
from hcisim.report.tables import claims_rows, ha_table, vm_table, volume_table, write_csvs
from hcisim.report.zoom import zoom_plots
from hcisim.scenario import Scenario, load_scenario

__all__ = ["FILES", "Offender", "render", "worst_offender", "write_report"]

FILES = "report_files"
TEMPLATE = "run.html.j2"
_SECTIONS = {"io": ("io", "Throughput and latency", ""),
             "fault1": ("zoom", "Around each fault",
                        "A window around every fault at its own time scale, so a stall of "
                        "seconds in a run of days is visible; time counts from the fault's "
                        "start."),
             "vm_states": ("states", "VM states", ""),
             "bricks": ("bricks", "Bricks, quorum and pending heal", "")}


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


def provenance(journal: dict[str, Any]) -> list[tuple[str, str]]:
    """What made the run, from its journal: status, hcisim version and commit, where."""
    out: list[tuple[str, str]] = []
    if journal.get("status"):
        out.append(("status", str(journal["status"])))
    for key, label in (("started", "started"), ("finished", "finished")):
        if journal.get(key):
            out.append((label, str(journal[key])))
    if journal.get("hcisim_version"):
        git = journal.get("git") or {}
        commit = f" (commit {str(git['commit'])[:10]}{', modified' if git.get('dirty') else ''})" \
            if git.get("commit") else ""
        out.append(("hcisim", f"{journal['hcisim_version']}{commit}"))
    if journal.get("node"):
        out.append(("node", str(journal["node"])))
    python = journal.get("python") or {}
    if python.get("version"):
        out.append(("Python", f"{python.get('implementation', '')} {python['version']}".strip()))
    system = journal.get("platform") or {}
    if system.get("platform"):
        out.append(("platform", str(system["platform"])))
    if journal.get("error"):
        out.append(("error", str(journal["error"])))
    return out


def _passed(claims: list[dict[str, Any]]) -> bool:
    return all((c.get("verdict") == "fail") == (c.get("expected") == "fail")
               or (c.get("verdict") == "n/a" and c.get("expected") != "fail") for c in claims)


def render(sc: Scenario, obs: Observations, summary: dict[str, Any],
           journal: dict[str, Any], files: Path) -> str:
    """The report page for one run; plots and CSVs go to ``files``."""
    files.mkdir(parents=True, exist_ok=True)
    windows = fault_windows(sc, obs)
    claims = list(summary.get("claims") or [])
    plots = []
    rendered = all_plots(sc, obs, windows)
    rendered[1:1] = zoom_plots(sc, obs, windows)  # right after the whole run's I/O
    for p in rendered:
        (files / f"{p.name}.png").write_bytes(p.png)
        anchor, heading, intro = _SECTIONS.get(p.name, ("", "", ""))
        w, h = _png_size(p.png)
        plots.append({"name": p.name, "title": p.title, "anchor": anchor, "heading": heading,
                      "intro": intro, "src": data_uri(p.png), "width": w, "height": h})
    csvs = write_csvs(obs, claims, files)
    scenario_file = files.parent / "scenario.yaml"
    errors = model_error() if obs.engine == "model" else None
    rows = claims_rows(claims, errors)
    run = {"scenario": sc.name, "engine": obs.engine, "seed": obs.seed,
           "duration_s": float(obs.duration_s), "vms": len(sc.vms), "volumes": len(sc.volumes),
           "faults": len(windows), "description": sc.description,
           "started": journal.get("started", ""), "passed": _passed(claims)}
    faults = [{"number": i, "kind": w.kind, "target": w.target, "start_s": w.start_s,
               "end_s": w.end_s, "colour": fault_colour(w.kind)}
              for i, w in enumerate(windows, start=1)]
    phases = [{"start_s": p.start_s, "load": p.load,
               "vms": ", ".join(p.vms) if p.vms is not None else "all"}
              for p in sc.phases] if phase_starts(sc) else []
    return render_page(
        TEMPLATE, run=run, claims=rows, offenders=[c for c in rows if c["offender"]],
        model_error=errors, faults=faults, phases=phases, plots=plots, files=FILES,
        csvs=csvs, ha_html=table_html(ha_table(ha_plan(sc, obs))),
        pairs_html=table_html(obs["failover_pairs"]), vm_html=table_html(vm_table(summary)),
        volume_html=table_html(volume_table(summary)),
        migrations_html=table_html(obs["migrations"]) if not obs["migrations"].empty else "",
        events_html=table_html(obs["events"]), version=_version(),
        provenance=provenance(journal), status=str(journal.get("status") or ""),
        scenario_yaml=scenario_file.read_text() if scenario_file.exists() else "",
    )
