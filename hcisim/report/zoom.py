"""A window around every fault at its own time scale.

In a 30-day run a 35 s stall is a hundredth of a pixel on the whole-run plots; here each
fault gets a figure that spans it and a margin (time counted from the fault's start), with
the I/O of the VMs, how many VMs were stalled or not running, and the pending heal per
volume. A fault longer than ``LONG_S`` gets two panels: its onset and its repair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hcisim.claims import FaultWindow
from hcisim.observations import Observations
from hcisim.report import style
from hcisim.report.figures import PER_VM_LINES, Plot, decorate, io_lines, png, stalled_count
from hcisim.report.series import bin_sums, grid, vm_series
from hcisim.report.units import format_duration, format_time
from hcisim.scenario import Scenario

LONG_S = 600.0  # longer faults: onset and repair apart
BINS = 300
RUNNING = ("running", "migrating")


@dataclass(frozen=True)
class View:
    """One panel: its caption, the stretch of the run it shows, what its time counts from."""

    caption: str
    start_s: float
    end_s: float
    origin_s: float
    counted_from: str


def views(w: FaultWindow, horizon: float) -> list[View]:
    """The panels around ``w``, inside the run."""
    end = w.end_or(horizon)
    length = end - w.start_s
    if length <= LONG_S:
        pad = max(30.0, 0.5 * length)
        return [View("the fault and around it", max(0.0, w.start_s - pad),
                     min(horizon, end + pad), w.start_s, "from the fault's start")]
    pre, post = 60.0, 300.0
    out = [View("onset of the fault", max(0.0, w.start_s - pre),
                min(horizon, w.start_s + post), w.start_s, "from the fault's start")]
    if w.end_s is not None:
        out.append(View("its repair", max(0.0, w.end_s - pre), min(horizon, w.end_s + post),
                        w.end_s, "from the repair"))
    return out


def not_running_count(obs: Observations, edges: np.ndarray) -> np.ndarray:
    """How many VMs were not running (down, paused, restarting) at some time in each bin."""
    st = obs["vm_state"]
    bad = st[~st["state"].isin(RUNNING)]
    count = np.zeros(len(edges) - 1)
    for _, g in bad.groupby("vm"):
        g = g.sort_values("t_start_s")
        t0, t1 = g["t_start_s"].to_numpy(float), g["t_end_s"].to_numpy(float)
        count += bin_sums(t0, t1, np.ones(len(g)), edges) > 0
    return count


def zoom_plot(number: int, w: FaultWindow, sc: Scenario, obs: Observations,
              windows: Sequence[FaultWindow]) -> Plot:
    fig = zoom_figure(w, sc, obs, windows)
    lasted = (f"repaired after {format_duration(w.end_s - w.start_s)}" if w.end_s is not None
              else "not repaired in the run")
    title = f"Fault {number}: {w.kind} on {w.target} at {format_time(w.start_s)}, {lasted}"
    fig.suptitle(title, x=0.0, ha="left", fontsize=10)
    return Plot(f"fault{number}", title, png(fig))


def zoom_figure(w: FaultWindow, sc: Scenario, obs: Observations,
                windows: Sequence[FaultWindow]) -> Figure:
    """Panels around ``w``: I/O per VM (or group), VMs stalled and not running, pending heal
    per volume; columns for onset and repair of a long fault."""
    horizon = float(obs.duration_s)
    panels = views(w, horizon)
    fig = style.figure(11, 6.0)
    axes = fig.subplots(3, len(panels), squeeze=False, sharex="col",
                        gridspec_kw={"height_ratios": [3, 1.6, 2]})
    vs = obs["volume_state"]
    for col, view in enumerate(panels):
        lo, hi = view.start_s, view.end_s
        ax_mb, ax_n, ax_heal = (axes[r][col] for r in range(3))
        edges = grid(hi, BINS, lo)
        mid = (edges[:-1] + edges[1:]) / 2
        by_vm = {str(vm): vm_series(g, edges) for vm, g in obs["vm_io"].groupby("vm")}
        io_lines(ax_mb, None, sc, by_vm, mid)
        ax_n.step(mid, stalled_count(by_vm, len(mid)), where="mid", color=style.ORANGE,
                  label="I/O stalled or failing")
        ax_n.step(mid, not_running_count(obs, edges), where="mid", color=style.VERMILLION,
                  ls="--", label="not running")
        for j, vol in enumerate(v.name for v in sc.volumes):
            pend = vs[vs["volume"] == vol].groupby("t_s")["pending_heal_bytes"].sum()
            if pend.empty:
                continue
            t = np.append(pend.index.to_numpy(float), horizon)
            y = np.append(pend.to_numpy(float), pend.to_numpy(float)[-1]) / 1e9
            look = style.line_style(j, len(sc.volumes), len(t))
            look["markevery"] = None
            ax_heal.step(t, y, where="post", label=vol, **look)
        ax_mb.set_title(view.caption, loc="left", fontsize=9)
        if col == 0:
            ax_mb.set_ylabel("read+write MB/s", fontsize=8)
            ax_n.set_ylabel("VMs", fontsize=8)
            ax_heal.set_ylabel("pending heal GB", fontsize=8)
        for ax in (ax_mb, ax_n, ax_heal):
            ax.set_ylim(bottom=0)
        ax_n.set_ylim(0, max(1.0, ax_n.get_ylim()[1]))
        ax_n.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        decorate(fig, [ax_mb, ax_n, ax_heal], sc, obs, windows, (lo, hi), view.origin_s,
                 view.counted_from, legend=col == 0)
    last = axes[0][-1]
    if axes[0][0].get_lines():
        last.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False,
                    title="VMs" if obs["vm_io"]["vm"].nunique() <= PER_VM_LINES else "VM groups",
                    title_fontsize=7)
    axes[1][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
    if axes[2][0].get_lines():
        axes[2][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0),
                           frameon=False, title="volume", title_fontsize=7)
    return fig


def zoom_plots(sc: Scenario, obs: Observations, windows: Sequence[FaultWindow]) -> list[Plot]:
    """One figure per fault, numbered as in the report's fault table."""
    return [zoom_plot(i, w, sc, obs, windows) for i, w in enumerate(windows, start=1)]
