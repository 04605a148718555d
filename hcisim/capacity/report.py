"""Write the sizing answer: ``capacity.json`` for machines, ``capacity.html`` + PNGs for people."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from hcisim.capacity.sizing import CHECKS

CLIP = 1.0  # headroom bars are clipped to [-1, 1]: "100% over" reads the same as "10x over"


def finite(x: Any) -> Any:
    """``x`` with infinities and NaN as None, so the JSON is strict (no ``Infinity``)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite(v) for v in x]
    return x


def headroom_plot(result: dict[str, Any], path: Path) -> None:
    """Headroom per check, one bar per candidate, one panel per volume type."""
    types = [s["volume_type"] for s in result["smallest"]]
    cands = list(dict.fromkeys(a["candidate"] for a in result["assessments"]))
    fig, axes = plt.subplots(len(types), 1, figsize=(10, 3.2 * len(types)), squeeze=False)
    width = 0.8 / max(1, len(cands))
    for ax, vt in zip(axes[:, 0], types, strict=True):
        for i, cand in enumerate(cands):
            a = next(x for x in result["assessments"]
                     if x["candidate"] == cand and x["volume_type"] == vt)
            by_name = {c["name"]: c for c in a["checks"]}
            xs, ys, hatch = [], [], []
            for j, name in enumerate(CHECKS):
                c = by_name[name]
                h = c["headroom"]
                if h is None:  # a yes/no check (placement): full bar up or down
                    h = CLIP if c["passed"] else -CLIP
                    hatch.append("//")
                else:
                    hatch.append("")
                xs.append(j + (i - (len(cands) - 1) / 2) * width)
                ys.append(max(-CLIP, min(CLIP, h)))
            bars = ax.bar(xs, ys, width, label=cand)
            for b, hh in zip(bars, hatch, strict=True):
                b.set_hatch(hh)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(CHECKS)), CHECKS)
        ax.set_ylim(-CLIP * 1.05, CLIP * 1.05)
        ax.set_ylabel("headroom (1 - measured/limit)")
        ax.set_title(f"{vt}: below 0 fails (clipped at ±{CLIP:g}; hatched: fits or not)")
        ax.legend(fontsize="small", ncol=len(cands))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def capacity_plot(result: dict[str, Any], path: Path) -> None:
    """Usable capacity per candidate and volume type against what the inventory provisions."""
    types = [s["volume_type"] for s in result["smallest"]]
    cands = list(dict.fromkeys(a["candidate"] for a in result["assessments"]))
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / max(1, len(types))
    for i, vt in enumerate(types):
        ys = [next(a["numbers"]["usable_gb"] for a in result["assessments"]
                   if a["candidate"] == c and a["volume_type"] == vt) / 1000 for c in cands]
        ax.bar([j + (i - (len(types) - 1) / 2) * width for j in range(len(cands))], ys, width,
               label=f"usable, {vt}")
    ax.axhline(result["inventory"]["disk_gb"] / 1000, color="red", ls="--",
               label="provisioned VM disks")
    ax.set_xticks(range(len(cands)), cands)
    ax.set_ylabel("TB")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


_PAGE = jinja2.Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hcisim capacity: {{ r.spec.name }}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:80em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}
.pass{color:#070}.fail{color:#b00;font-weight:bold}td.n{text-align:right}</style></head><body>
<h1>Capacity sizing: {{ r.spec.name }}</h1>
<p>{% if r.answer %}Smallest candidate that passes every check:
<b>{{ r.answer.candidate }}</b> with <b>{{ r.answer.volume_type }}</b> volumes.
{% else %}<span class="fail">No candidate passes every check.</span>{% endif %}</p>
<h2>Inventory</h2><table>{% for k, v in r.inventory.items() %}
<tr><th>{{ k }}</th><td class="n">{{ fmt(v) }}</td></tr>{% endfor %}</table>
{% for s in r.smallest %}<h2>{{ s.volume_type }}</h2>
<p>Smallest passing: <b>{{ s.candidate or "none" }}</b></p>
{% if s.rejected %}<ul>{% for rej in s.rejected %}<li><b>{{ rej.candidate }}</b> fails:
<ul>{% for why in rej.reasons %}<li>{{ why }}</li>{% endfor %}</ul></li>{% endfor %}</ul>
{% endif %}{% endfor %}
<h2>Headroom per check</h2><img src="headroom.png" alt="headroom per candidate and check">
<h2>Usable capacity</h2><img src="capacity.png" alt="usable capacity per candidate">
<h2>Every check</h2>
<table><tr><th>candidate</th><th>volume type</th><th>check</th><th>verdict</th>
<th>measured</th><th>limit</th><th>headroom</th><th>why</th></tr>
{% for a in r.assessments %}{% for c in a.checks %}<tr><td>{{ a.candidate }}</td>
<td>{{ a.volume_type }}</td><td>{{ c.name }}</td>
<td class="{{ 'pass' if c.passed else 'fail' }}">{{ 'pass' if c.passed else 'fail' }}</td>
<td class="n">{{ fmt(c.measured) }} {{ c.unit }}</td><td class="n">{{ fmt(c.limit) }}</td>
<td class="n">{{ pct(c.headroom) }}</td><td>{{ c.reason }}</td></tr>
{% endfor %}{% endfor %}</table>
<p>Data: <a href="capacity.json">capacity.json</a>. Formulas: docs/capacity.md.</p>
</body></html>""", autoescape=True)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}"
    return str(v)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def write_capacity(result: dict[str, Any], out: Path) -> dict[str, Path]:
    """``capacity.json``, ``capacity.html``, ``headroom.png``, ``capacity.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    clean = finite(result)
    paths = {name: out / name for name in
             ("capacity.json", "capacity.html", "headroom.png", "capacity.png")}
    paths["capacity.json"].write_text(json.dumps(clean, indent=2, allow_nan=False))
    headroom_plot(clean, paths["headroom.png"])
    capacity_plot(clean, paths["capacity.png"])
    paths["capacity.html"].write_text(_PAGE.render(r=clean, fmt=_fmt, pct=_pct))
    return paths
