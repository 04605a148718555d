"""The report's plots of the whole run: I/O, VM states, bricks, heal and quorum.

Every time axis carries every fault window (``style.shade_faults``) and the workload's phase
starts; a legend beside each figure names the fault kinds. Readable for 100 VMs: with more
than ``PER_VM_LINES`` VMs the I/O plot draws one band (min..max, median line) per group of
VMs with the same I/O profile instead of one line per VM, and the state timeline packs one
thin row per VM. The zoom around each fault is in ``hcisim.report.zoom``.
"""

from __future__ import annotations

import io as _io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from hcisim.claims import FaultWindow
from hcisim.claims.storage import no_quorum_windows
from hcisim.observations import Observations
from hcisim.report import style
from hcisim.report.series import VmSeries, band, grid, step_table, vm_series
from hcisim.scenario import Scenario

PER_VM_LINES = 10


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


def phase_starts(sc: Scenario) -> list[float]:
    """Where the workload changes: every phase but an initial one at 0 with load 1."""
    return [p.start_s for p in sc.phases
            if not (p.start_s == 0 and p.load == 1.0 and p.vms is None)]


def png(fig: Figure) -> bytes:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def quorum_lost(sc: Scenario, obs: Observations) -> list[tuple[float, float]]:
    """Stretches in which some volume had no client quorum."""
    return sorted(w for v in sc.volumes for w in no_quorum_windows(obs, v.name))


def decorate(fig: Figure, axes: Sequence[Axes], sc: Scenario, obs: Observations,
             windows: Sequence[FaultWindow], view: tuple[float, float], origin: float = 0.0,
             label: str = "time since start", legend: bool = True) -> None:
    """Time axis over ``view``, fault windows (an unrepaired one to the run's end), phase
    lines and quorum loss on every axis; the legend of what they mean below the figure."""
    lo, hi = view
    lost = quorum_lost(sc, obs)
    for ax in axes:
        style.shade_faults(ax, windows, float(obs.duration_s))
        style.mark_phases(ax, phase_starts(sc))
        style.mark_quorum_loss(ax, lost)
        style.time_axis(ax, lo, hi, origin, label if ax is axes[-1] else None)
    handles = style.legend_handles(windows, bool(phase_starts(sc)), bool(lost))
    if handles and legend:
        fig.legend(handles=handles, fontsize=7, ncol=min(len(handles), 5),
                   loc="outside lower center", frameon=False)


def io_lines(ax_mb: Axes, ax_lat: Axes | None, sc: Scenario, by_vm: dict[str, VmSeries],
             mid: np.ndarray) -> bool:
    """Throughput (and latency) per VM, or per VM group as median and band; True per VM."""
    if len(by_vm) <= PER_VM_LINES:
        for i, (vm, s) in enumerate(by_vm.items()):
            look = style.line_style(i, len(by_vm), len(mid))
            ax_mb.plot(mid, s.mb_s, label=vm, **look)
            if ax_lat is not None:
                ax_lat.plot(mid, s.p99_ms, **look)
        return True
    groups = [(n, [by_vm[v] for v in vms if v in by_vm]) for n, vms in vm_groups(sc).items()]
    groups = [g for g in groups if g[1]]
    for i, (name, have) in enumerate(groups):
        look = style.line_style(i, len(groups), len(mid))
        axes = ((ax_mb, [s.mb_s for s in have]),) + (
            ((ax_lat, [s.p99_ms for s in have]),) if ax_lat is not None else ())
        for ax, rows in axes:
            lo, med, hi = band(np.vstack(rows))
            ax.plot(mid, med, label=f"{name} ({len(have)} VM{'' if len(have) == 1 else 's'})",
                    **look)
            ax.fill_between(mid, lo, hi, color=look["color"], alpha=0.15, lw=0)
    return False


def stalled_count(by_vm: dict[str, VmSeries], bins: int) -> np.ndarray:
    """How many VMs had a disk stalled or failing at some time in each bin."""
    if not by_vm:
        return np.zeros(bins)
    counts: np.ndarray = np.sum([(s.stalled > 0).astype(float) for s in by_vm.values()], axis=0)
    return counts


def io_figure(sc: Scenario, obs: Observations, windows: Sequence[FaultWindow]) -> Figure:
    """Throughput and p99 latency over time, per VM or per VM group; stalled VMs below."""
    horizon = float(obs.duration_s)
    edges = grid(horizon)
    mid = (edges[:-1] + edges[1:]) / 2
    by_vm = {str(vm): vm_series(g, edges) for vm, g in obs["vm_io"].groupby("vm")}
    fig = style.figure(11, 7.5)
    ax_mb, ax_lat, ax_st = fig.subplots(3, 1, sharex=True,
                                        gridspec_kw={"height_ratios": [3, 3, 1.2]})
    per_vm = io_lines(ax_mb, ax_lat, sc, by_vm, mid)
    ax_st.fill_between(mid, 0, stalled_count(by_vm, len(mid)), step="mid", color=style.ORANGE,
                       lw=0)
    ax_mb.set_ylabel("read+write MB/s")
    ax_lat.set_ylabel("p99 latency ms")
    ax_st.set_ylabel("VMs stalled")
    for ax in (ax_mb, ax_lat, ax_st):
        ax.set_ylim(bottom=0)
    ax_st.set_ylim(0, max(1.0, ax_st.get_ylim()[1]))
    ax_st.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    decorate(fig, [ax_mb, ax_lat, ax_st], sc, obs, windows, (0.0, horizon))
    if by_vm:
        ax_mb.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
    title = "I/O per VM" if per_vm else "I/O per VM group (line: median, band: min..max)"
    ax_mb.set_title(title, loc="left", fontsize=10)
    return fig


def state_bars(ax: Axes, sc: Scenario, obs: Observations) -> list[str]:
    """One row of state bars per VM; returns the row names, top to bottom."""
    st = obs["vm_state"]
    names = [vm.name for vm in sc.vms]
    names += sorted(set(map(str, st["vm"])) - set(names))
    order = {n: i for i, n in enumerate(names)}
    for state, colour in style.STATE_COLOURS.items():
        for vm, g in st[st["state"] == state].groupby("vm"):
            spans = list(zip(g["t_start_s"], g["t_end_s"] - g["t_start_s"], strict=True))
            ax.broken_barh(spans, (order[str(vm)] - 0.4, 0.8), facecolors=colour, lw=0)
    ax.set_yticks(range(len(names)), names, fontsize=7 if len(names) <= 30 else 5)
    ax.set_ylim(len(names) - 0.5, -0.5)
    return names


def state_figure(sc: Scenario, obs: Observations, windows: Sequence[FaultWindow]) -> Figure:
    """One row per VM: running, migrating, paused, restarting, down over time."""
    horizon = float(obs.duration_s)
    rows = len(sc.vms) or 1
    row_h = 0.22 if rows <= 30 else 0.11
    fig = style.figure(11, max(2.4, 1.4 + row_h * rows))
    ax = fig.subplots()
    state_bars(ax, sc, obs)
    decorate(fig, [ax], sc, obs, windows, (0.0, horizon))
    ax.legend(handles=[Patch(color=c, label=s) for s, c in style.STATE_COLOURS.items()],
              fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
    ax.set_title("VM states", loc="left", fontsize=10)
    return fig


def brick_figure(sc: Scenario, obs: Observations, windows: Sequence[FaultWindow]) -> Figure:
    """Per volume: each brick up or down, client quorum, and pending heal per brick."""
    horizon = float(obs.duration_s)
    vs = obs["volume_state"]
    vols = [v.name for v in sc.volumes]
    fig = style.figure(11, 2.9 * len(vols) + 0.7)
    axes = fig.subplots(2 * len(vols), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [1.2, 2] * len(vols)})
    for i, vol in enumerate(vols):
        ax_up, ax_heal = axes[2 * i][0], axes[2 * i + 1][0]
        bricks = [b.host for b in sc.volume(vol).bricks]
        mine = vs[vs["volume"] == vol]
        for j, brick in enumerate(bricks):
            rows = step_table(mine[mine["brick"] == brick], horizon)
            for up, colour in ((True, style.UP), (False, style.DOWN)):
                sel = rows[rows["up"] == up]
                spans = list(zip(sel["t_s"], sel["t_end_s"] - sel["t_s"], strict=True))
                ax_up.broken_barh(spans, (j - 0.4, 0.8), facecolors=colour, lw=0)
            if not rows.empty:
                t = rows["t_s"].to_numpy(float)
                look = style.line_style(j, len(bricks), len(t))
                look["markevery"] = None if len(t) < 40 else look["markevery"]
                ax_heal.step(t, rows["pending_heal_bytes"].to_numpy(float) / 1e9, where="post",
                             label=brick, **look)
        lost = no_quorum_windows(obs, vol)
        ax_up.broken_barh([(a, b - a) for a, b in lost], (len(bricks) - 0.4, 0.8),
                          facecolors=style.QUORUM_LOST, lw=0)
        roles = [("arbiter" if sc.volume(vol).is_arbiter(b) else "data") for b in bricks]
        ax_up.set_yticks(range(len(bricks) + 1),
                         [f"{b} ({r})" for b, r in zip(bricks, roles, strict=True)]
                         + ["client quorum"], fontsize=7)
        ax_up.set_ylim(len(bricks) + 0.5, -0.5)
        ax_up.set_title(f"volume {vol}: bricks up / down, client quorum lost (black)",
                        loc="left", fontsize=9)
        ax_up.legend(handles=[Patch(color=style.UP, label="brick up"),
                              Patch(color=style.DOWN, label="brick down")], fontsize=7,
                     loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
        ax_heal.set_ylabel("pending heal GB", fontsize=8)
        ax_heal.set_ylim(bottom=0)
        if ax_heal.get_lines():
            ax_heal.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0),
                           frameon=False, title="brick", title_fontsize=7)
    decorate(fig, [a[0] for a in axes], sc, obs, windows, (0.0, horizon))
    return fig


def figures(sc: Scenario, obs: Observations,
            windows: Sequence[FaultWindow]) -> dict[str, Figure]:
    """Every whole-run figure of the report, by file name; all have time on their x axes."""
    return {"io": io_figure(sc, obs, windows), "vm_states": state_figure(sc, obs, windows),
            "bricks": brick_figure(sc, obs, windows)}


_CAPTIONS = {"vm_states": "VM states (one row per VM)",
             "bricks": "Bricks up/down, client quorum and pending heal per brick, per volume"}


def all_plots(sc: Scenario, obs: Observations, windows: Sequence[FaultWindow]) -> list[Plot]:
    return [Plot(name, _CAPTIONS.get(name) or fig.axes[0].get_title(loc="left"), png(fig))
            for name, fig in figures(sc, obs, windows).items()]
