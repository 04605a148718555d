"""The report's plots (matplotlib, Agg): every time axis shades the fault windows.

Readable for 100 VMs: with more than ``PER_VM_LINES`` VMs the I/O plot draws one band
(min..max, median line) per group of VMs with the same I/O profile instead of one line per
VM, and the state timeline packs one thin row per VM with a single legend of states.

Figures are built with the object API on an Agg canvas (no pyplot): no global figure
state, no GUI backend, safe in worker processes.
"""

from __future__ import annotations

import io as _io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from hcisim.claims import FaultWindow
from hcisim.observations import Observations
from hcisim.report.series import band, grid, step_table, vm_series
from hcisim.scenario import Scenario

PER_VM_LINES = 10
STATE_COLOURS = {"running": "#4caf50", "migrating": "#2196f3", "paused": "#ffb300",
                 "restarting": "#9c27b0", "down": "#e53935"}
FAULT_COLOUR = "#e53935"


@dataclass
class Plot:
    """One rendered figure: file name, caption, PNG bytes."""

    name: str
    title: str
    png: bytes


def vm_groups(sc: Scenario) -> dict[str, list[str]]:
    """VMs by what they ask of storage (the I/O profile of their first busy disk)."""
    groups: dict[str, list[str]] = {}
    for vm in sc.vms:
        io = next((d.io for d in vm.disks if d.io is not None), None)
        key = io if isinstance(io, str) else "inline profile" if io is not None else "idle"
        groups.setdefault(key, []).append(vm.name)
    return groups


def shade_faults(ax: Axes, windows: Sequence[FaultWindow], horizon: float,
                 label: bool = False) -> None:
    """Fault windows over everything else on ``ax`` (timeline bars included), edges dashed."""
    for w in windows:
        end = w.end_or(horizon)
        ax.axvspan(w.start_s, end, color=FAULT_COLOUR, alpha=0.13, lw=0, zorder=3, gid="fault")
        for t in (w.start_s, end) if w.end_s is not None else (w.start_s,):
            ax.axvline(t, color=FAULT_COLOUR, lw=0.8, ls="--", zorder=3)
        if label:
            ax.annotate(f"{w.kind} {w.target}", (w.start_s, 1.0),
                        xycoords=("data", "axes fraction"), xytext=(3, 3),
                        textcoords="offset points", va="bottom", fontsize=7,
                        color=FAULT_COLOUR)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _time_axis(ax: Axes, horizon: float) -> None:
    ax.set_xlim(0, horizon)
    ax.grid(alpha=0.3, lw=0.5)


def io_figure(sc: Scenario, obs: Observations, windows: Sequence[FaultWindow]) -> Figure:
    """Throughput and p99 latency over time, per VM or per VM group; stalled VMs below."""
    horizon = float(obs.duration_s)
    edges = grid(horizon)
    mid = (edges[:-1] + edges[1:]) / 2
    io = obs["vm_io"]
    by_vm = {str(vm): vm_series(g, edges) for vm, g in io.groupby("vm")}
    fig = _figure(11, 7.5)
    ax_mb, ax_lat, ax_st = fig.subplots(3, 1, sharex=True,
                                        gridspec_kw={"height_ratios": [3, 3, 1.2]})
    per_vm = len(by_vm) <= PER_VM_LINES
    if per_vm:
        for vm, s in by_vm.items():
            (line,) = ax_mb.plot(mid, s.mb_s, lw=1, label=vm)
            ax_lat.plot(mid, s.p99_ms, lw=1, color=line.get_color())
    else:
        cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        groups = [(n, [by_vm[v] for v in vms if v in by_vm]) for n, vms in vm_groups(sc).items()]
        for i, (name, have) in enumerate(g for g in groups if g[1]):
            colour = cycle[i % len(cycle)]
            for ax, stack in ((ax_mb, np.vstack([s.mb_s for s in have])),
                              (ax_lat, np.vstack([s.p99_ms for s in have]))):
                lo, med, hi = band(stack)
                ax.plot(mid, med, lw=1.2, color=colour, label=f"{name} ({len(have)} VMs)")
                ax.fill_between(mid, lo, hi, color=colour, alpha=0.2, lw=0)
    stalled = sum((s.stalled > 0).astype(float) for s in by_vm.values()) if by_vm else \
        np.zeros_like(mid)
    ax_st.fill_between(mid, 0, stalled, step="mid", color="#ff7043", lw=0)
    ax_mb.set_ylabel("read+write MB/s")
    ax_lat.set_ylabel("p99 latency ms")
    ax_st.set_ylabel("VMs stalled")
    ax_st.set_xlabel("time (s)")
    for ax in (ax_mb, ax_lat, ax_st):
        _time_axis(ax, horizon)
        shade_faults(ax, windows, horizon, label=ax is ax_mb)
    if by_vm:
        ax_mb.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
    title = "I/O per VM" if per_vm else "I/O per VM group (line: median, band: min..max)"
    ax_mb.set_title(title, loc="left", fontsize=10, pad=12)
    return fig


def state_figure(sc: Scenario, obs: Observations, windows: Sequence[FaultWindow]) -> Figure:
    """One row per VM: running, migrating, paused, restarting, down over time."""
    horizon = float(obs.duration_s)
    st = obs["vm_state"]
    names = [vm.name for vm in sc.vms]
    names += sorted(set(map(str, st["vm"])) - set(names))
    order = {n: i for i, n in enumerate(names)}
    row_h = 0.22 if len(names) <= 30 else 0.11
    fig = _figure(11, max(2.0, 1.0 + row_h * len(names)))
    ax = fig.subplots()
    for state, colour in STATE_COLOURS.items():
        rows = st[st["state"] == state]
        for vm, g in rows.groupby("vm"):
            spans = list(zip(g["t_start_s"], g["t_end_s"] - g["t_start_s"], strict=True))
            ax.broken_barh(spans, (order[str(vm)] - 0.4, 0.8), facecolors=colour, lw=0)
    ax.set_yticks(range(len(names)), names, fontsize=7 if len(names) <= 30 else 5)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlabel("time (s)")
    _time_axis(ax, horizon)
    shade_faults(ax, windows, horizon, label=True)
    fig.legend(handles=[Patch(color=c, label=s) for s, c in STATE_COLOURS.items()],
               fontsize=7, ncol=5, loc="outside lower center", frameon=False)
    ax.set_title("VM states", loc="left", fontsize=10, pad=14)
    return fig


def brick_figure(sc: Scenario, obs: Observations, windows: Sequence[FaultWindow]) -> Figure:
    """Per volume: each brick up or down, and its pending heal over time."""
    horizon = float(obs.duration_s)
    vs = obs["volume_state"]
    vols = [v.name for v in sc.volumes]
    fig = _figure(11, 2.6 * len(vols) + 0.5)
    axes = fig.subplots(2 * len(vols), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [1, 2] * len(vols)})
    for i, vol in enumerate(vols):
        ax_up, ax_heal = axes[2 * i][0], axes[2 * i + 1][0]
        bricks = [b.host for b in sc.volume(vol).bricks]
        mine = vs[vs["volume"] == vol]
        for j, brick in enumerate(bricks):
            rows = step_table(mine[mine["brick"] == brick], horizon)
            for up, colour in ((True, "#4caf50"), (False, "#e53935")):
                sel = rows[rows["up"] == up]
                spans = list(zip(sel["t_s"], sel["t_end_s"] - sel["t_s"], strict=True))
                ax_up.broken_barh(spans, (j - 0.4, 0.8), facecolors=colour, lw=0)
            if not rows.empty:
                ax_heal.step(rows["t_s"].to_numpy(float),
                             rows["pending_heal_bytes"].to_numpy(float) / 1e9, where="post",
                             lw=1.2, label=brick)
        roles = [("arbiter" if sc.volume(vol).is_arbiter(b) else "data") for b in bricks]
        ax_up.set_yticks(range(len(bricks)), [f"{b} ({r})" for b, r in zip(bricks, roles,
                                                                            strict=True)],
                         fontsize=7)
        ax_up.set_ylim(len(bricks) - 0.5, -0.5)
        ax_up.set_title(f"volume {vol}: bricks up (green) / down (red)", loc="left",
                        fontsize=9, pad=12)
        ax_heal.set_ylabel("pending heal GB", fontsize=8)
        if ax_heal.get_lines():
            ax_heal.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0),
                           frameon=False)
        for ax in (ax_up, ax_heal):
            _time_axis(ax, horizon)
            shade_faults(ax, windows, horizon, label=ax is ax_up)
    axes[-1][0].set_xlabel("time (s)")
    return fig


def figures(sc: Scenario, obs: Observations,
            windows: Sequence[FaultWindow]) -> dict[str, Figure]:
    """Every figure of the report, by file name; all have time on their x axes."""
    return {"io": io_figure(sc, obs, windows), "vm_states": state_figure(sc, obs, windows),
            "bricks": brick_figure(sc, obs, windows)}


_CAPTIONS = {"vm_states": "VM states (one row per VM)",
             "bricks": "Bricks up/down and pending heal per brick, per volume"}


def all_plots(sc: Scenario, obs: Observations, windows: Sequence[FaultWindow]) -> list[Plot]:
    return [Plot(name, _CAPTIONS.get(name) or fig.axes[0].get_title(loc="left"), _png(fig))
            for name, fig in figures(sc, obs, windows).items()]
