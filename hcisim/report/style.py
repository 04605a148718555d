"""How hcisim's plots look: one palette, one way to draw faults and time, for every page.

Colours are Okabe-Ito (Okabe & Ito, "Color Universal Design", 2008): eight colours that stay
apart for the common colour-blindnesses. Faults are hatched windows outlined in their kind's
colour, never a fill, so a fault over a "down" bar (solid vermillion) still shows both.
Lines that may coincide (VMs with the same load, bricks with nothing to heal) differ in
colour, dash and marker, and their markers sit at different x, so equal lines stay visible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, Locator, MaxNLocator
from matplotlib.transforms import ScaledTranslation, Transform

from hcisim.claims import FaultWindow
from hcisim.report.units import axis_unit

BLACK, ORANGE, SKY, GREEN = "#000000", "#E69F00", "#56B4E9", "#009E73"
YELLOW, BLUE, VERMILLION, PURPLE = "#F0E442", "#0072B2", "#D55E00", "#CC79A7"
GREY = "#999999"
LINE_COLOURS = (BLUE, ORANGE, GREEN, PURPLE, SKY, VERMILLION, BLACK)
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

FAULT_COLOURS = {"node_power_loss": BLACK, "nic_loss": BLUE, "brick_crash": ORANGE,
                 "node_hang": PURPLE, "partition": SKY, "link_slowdown": GREEN,
                 "disk_failure": VERMILLION}
FAULT_HATCH = "///"
FAULT_HATCHES = ("///", "\\\\\\")  # faults alternate, so overlapping windows of one kind part
STATE_COLOURS = {"running": "#A6DBC8", "migrating": SKY, "paused": YELLOW,
                 "restarting": PURPLE, "down": VERMILLION}
UP, DOWN = "#A6DBC8", VERMILLION
QUORUM_LOST = BLACK
PHASE: dict[str, Any] = {"color": GREY, "lw": 1.0, "ls": (0, (1, 2))}


def figure(width: float, height: float) -> Figure:
    """A figure on an Agg canvas (object API: no pyplot state, safe in worker processes)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def fault_colour(kind: str) -> str:
    return FAULT_COLOURS.get(kind, GREY)


def line_style(i: int, n: int, points: int) -> dict[str, Any]:
    """Style of the ``i``-th of ``n`` lines of ``points`` points: colour, dash and a marker
    every so often, shifted per line so that lines drawn on top of each other still show."""
    every = max(1, points // 8)
    return {"color": LINE_COLOURS[i % len(LINE_COLOURS)],
            "ls": LINE_STYLES[(i // len(LINE_COLOURS) + i) % len(LINE_STYLES)],
            "marker": MARKERS[i % len(MARKERS)], "markersize": 4,
            "markevery": ((i * every) // max(1, n), every), "lw": 1.1}


def _edge(ax: Axes, points: float) -> Transform:
    """x in data, y in axes fraction moved by ``points``: a marker that sits just inside the
    top (negative) or bottom (positive) edge whatever the axes' height."""
    fig = ax.get_figure()
    assert fig is not None
    return ax.get_xaxis_transform() + ScaledTranslation(0, points / 72, fig.dpi_scale_trans)


def shade_faults(ax: Axes, windows: Sequence[FaultWindow], horizon: float) -> None:
    """Every fault window on ``ax`` (over bars and lines): hatched, outlined in its colour,
    and a triangle at its start along the top, which shows even when the window is far
    narrower than a pixel (a minute in a month)."""
    for i, w in enumerate(windows):
        colour = fault_colour(w.kind)
        ax.axvspan(w.start_s, w.end_or(horizon), facecolor="none", edgecolor=colour,
                   hatch=FAULT_HATCHES[i % 2], lw=1.2, alpha=0.55, zorder=4, gid="fault")
        ax.plot([w.start_s], [1.0], marker="v", color=colour, markersize=6,
                transform=_edge(ax, -4.0), zorder=5, gid="fault-start")


def mark_quorum_loss(ax: Axes, lost: Sequence[tuple[float, float]]) -> None:
    """Client quorum lost (on any volume): a black strip along the bottom of ``ax``, with a
    marker at its start so that a short loss shows at any time scale."""
    for a, b in lost:
        ax.axvspan(a, b, ymin=0.0, ymax=0.06, color=QUORUM_LOST, lw=0, zorder=4, gid="quorum")
        ax.plot([a], [0.0], marker="^", color=QUORUM_LOST, markersize=5,
                transform=_edge(ax, 4.0), zorder=5, gid="quorum-start")


def mark_phases(ax: Axes, starts: Iterable[float]) -> None:
    for t in starts:
        ax.axvline(t, zorder=3, gid="phase", **PHASE)


def legend_handles(windows: Sequence[FaultWindow], phases: bool = False,
                   quorum: bool = False) -> list[Any]:
    """One legend entry per fault kind present (and phases, quorum loss when shown)."""
    handles: list[Any] = []
    for kind in dict.fromkeys(w.kind for w in windows):
        handles.append(Patch(facecolor="none", edgecolor=fault_colour(kind), hatch=FAULT_HATCH,
                             label=f"fault: {kind}"))
    if phases:
        handles.append(Line2D([], [], label="workload phase starts", **PHASE))
    if quorum:
        handles.append(Patch(color=QUORUM_LOST, label="client quorum lost"))
    return handles


class UnitLocator(Locator):
    """Ticks at round numbers of a unit (s, min, h, d) counted from ``origin``."""

    def __init__(self, scale: float, origin: float = 0.0) -> None:
        self.scale, self.origin = scale, origin
        self.inner = MaxNLocator(nbins=10, steps=[1, 2, 2.5, 5, 10])

    def __call__(self) -> Sequence[float]:
        assert isinstance(self.axis, Axis)
        lo, hi = self.axis.get_view_interval()
        return self.tick_values(float(lo), float(hi))

    def tick_values(self, vmin: float, vmax: float) -> Sequence[float]:
        inner = self.inner.tick_values((vmin - self.origin) / self.scale,
                                       (vmax - self.origin) / self.scale)
        return [float(x) * self.scale + self.origin for x in inner]


def time_axis(ax: Axes, lo: float, hi: float, origin: float = 0.0,
              label: str | None = "time since start") -> None:
    """x from ``lo`` to ``hi`` seconds, ticked and labelled in the unit that fits the span;
    tick values count from ``origin`` (a zoom counts from its fault's start)."""
    unit, scale = axis_unit(hi - lo)
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(UnitLocator(scale, origin))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{(x - origin) / scale:g}"))
    ax.grid(alpha=0.3, lw=0.5)
    if label:
        ax.set_xlabel(f"{label} ({unit})")
