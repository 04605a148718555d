"""Write the sizing answer: ``capacity.json`` for machines, ``capacity.html`` + PNGs for people."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from hcisim.capacity.sizing import CHECKS
from hcisim.report import style
from hcisim.report.figures import png
from hcisim.report.pages import data_uri, render_page

DPI = 90  # as hcisim.report.figures.png
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


def headroom_plot(result: dict[str, Any]) -> Figure:
    """Headroom per check, one bar per candidate, one panel per volume type."""
    types = [s["volume_type"] for s in result["smallest"]]
    cands = list(dict.fromkeys(a["candidate"] for a in result["assessments"]))
    fig = style.figure(10, 3.4 * len(types) + 0.4)
    axes = fig.subplots(len(types), 1, squeeze=False)
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
            colour = style.LINE_COLOURS[i % len(style.LINE_COLOURS)]
            bars = ax.bar(xs, ys, width, label=cand, color=colour, edgecolor="white", lw=0.5)
            for b, hh in zip(bars, hatch, strict=True):
                b.set_hatch(hh)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(CHECKS)), CHECKS, fontsize=8)
        ax.set_ylim(-CLIP * 1.05, CLIP * 1.05)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylabel("headroom (1 - measured/limit)", fontsize=8)
        ax.set_title(f"{vt}: below 0 fails (clipped at \u00b1{CLIP:.0%}; hatched: a yes/no "
                     "check)", loc="left", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small", title="candidate", title_fontsize="small",
                  loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
    return fig


def capacity_plot(result: dict[str, Any]) -> Figure:
    """Usable capacity per candidate and volume type, split into what the capacity check
    lets VM disks use and the reserve it keeps free, against the provisioned VM disks."""
    types = [s["volume_type"] for s in result["smallest"]]
    cands = list(dict.fromkeys(a["candidate"] for a in result["assessments"]))
    reserve = float(result["spec"]["thresholds"]["capacity_reserve_pct"]) / 100
    fig = style.figure(10, 4.0)
    ax = fig.subplots()
    width = 0.8 / max(1, len(types))
    for i, vt in enumerate(types):
        usable = [next(a["numbers"]["usable_gb"] for a in result["assessments"]
                       if a["candidate"] == c and a["volume_type"] == vt) / 1000 for c in cands]
        xs = [j + (i - (len(types) - 1) / 2) * width for j in range(len(cands))]
        colour = style.LINE_COLOURS[i % len(style.LINE_COLOURS)]
        room = [u * (1 - reserve) for u in usable]
        ax.bar(xs, room, width, color=colour, label=f"{vt}: room for VM disks")
        ax.bar(xs, [u - r for u, r in zip(usable, room, strict=True)], width, bottom=room,
               facecolor="white", edgecolor=colour, hatch="//", lw=1,
               label=f"{vt}: reserve kept free ({reserve:.0%})")
    ax.axhline(result["inventory"]["disk_gb"] / 1000, color=style.BLACK, ls="--", lw=1.2,
               label="provisioned VM disks")
    ax.set_xticks(range(len(cands)), cands)
    ax.set_xlabel("candidate")
    ax.set_ylabel("usable TB")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("Usable capacity: the check passes when the dashed line is below the solid "
                 "bar", loc="left", fontsize=9)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
    return fig


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}"
    return str(v)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def write_capacity(result: dict[str, Any], out: Path) -> dict[str, Path]:
    """``capacity.json``, ``capacity.html``, ``headroom.png``, ``capacity.png`` in ``out``;
    the page carries its plots inline (it opens on its own)."""
    out.mkdir(parents=True, exist_ok=True)
    clean = finite(result)
    paths = {name: out / name for name in
             ("capacity.json", "capacity.html", "headroom.png", "capacity.png")}
    paths["capacity.json"].write_text(json.dumps(clean, indent=2, allow_nan=False))
    plots = []
    for name, fig, heading, caption in (
            ("headroom.png", headroom_plot(clean), "Headroom per check",
             "headroom per candidate and check"),
            ("capacity.png", capacity_plot(clean), "Usable capacity",
             "usable capacity per candidate, the reserve kept free and the VM disks")):
        data = png(fig)
        paths[name].write_bytes(data)
        width, height = fig.get_size_inches() * DPI
        plots.append({"file": name, "src": data_uri(data), "alt": caption, "caption": caption,
                      "heading": heading, "width": round(width), "height": round(height)})
    reserve = clean["spec"]["thresholds"]["capacity_reserve_pct"]
    paths["capacity.html"].write_text(render_page(
        "capacity.html.j2", r=clean, fmt=_fmt, pct=_pct, plots=plots,
        reserve_pct=f"{reserve:g}"))
    return paths
