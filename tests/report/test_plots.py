"""What the plots show: faults by kind, a zoom that makes a short stall visible in a month,
readable time units, phases and quorum loss, lines that stay apart, no overlapping text."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.colors import to_hex, to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from hcisim.claims import fault_windows
from hcisim.observations import Observations
from hcisim.report import style
from hcisim.report.figures import figures
from hcisim.report.zoom import views, zoom_figure
from hcisim.scenario import Scenario, load_scenario
from tests.report.runs import MONTH_S, big_run, model_run, month_run, small_run

OKABE_ITO = {style.BLACK, style.ORANGE, style.SKY, style.GREEN, style.YELLOW, style.BLUE,
             style.VERMILLION, style.PURPLE}


def _load(result: Path) -> tuple[Scenario, Observations]:
    return load_scenario(result / "scenario.yaml"), Observations.load(result)


def _hex(colour: Any) -> str:
    return to_hex(colour, keep_alpha=False).upper()


def _x(line: Line2D) -> np.ndarray:
    return np.asarray(line.get_xdata(), dtype=float)


def test_each_fault_kind_has_its_colour_a_legend_entry_and_no_fill(tmp_path: Path) -> None:
    month_run(tmp_path)
    sc, obs = _load(tmp_path)
    windows = fault_windows(sc, obs)
    assert [w.kind for w in windows] == ["node_power_loss", "brick_crash"]
    for name, fig in figures(sc, obs, windows).items():
        legend_texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
        assert {"fault: node_power_loss", "fault: brick_crash"} <= set(legend_texts), name
        for ax in fig.axes:
            spans = [p for p in ax.patches if p.get_gid() == "fault"]
            assert len(spans) == 2, (name, ax.get_title())
            edges = {_hex(p.get_edgecolor()) for p in spans}
            assert edges == {style.fault_colour("node_power_loss"),
                             style.fault_colour("brick_crash")}
            for p in spans:
                assert to_rgba(p.get_facecolor())[3] == 0.0 and p.get_hatch()  # no fill
    assert len(set(style.FAULT_COLOURS.values())) == len(style.FAULT_COLOURS)
    assert set(style.FAULT_COLOURS.values()) <= OKABE_ITO
    assert style.STATE_COLOURS["down"] == style.VERMILLION  # solid: unlike a hatched fault


def test_a_35_s_stall_in_a_30_day_run_is_visible_in_the_fault_zoom(tmp_path: Path) -> None:
    month_run(tmp_path)
    sc, obs = _load(tmp_path)
    windows = fault_windows(sc, obs)
    whole = figures(sc, obs, windows)["io"]
    assert whole.axes[-1].get_xlabel() == "time since start (d)"
    power = windows[0]
    fig = zoom_figure(power, sc, obs, windows)
    ax_n = fig.axes[1]
    lo, hi = ax_n.get_xlim()
    assert lo <= power.start_s and hi >= power.end_or(MONTH_S) and hi - lo <= 3600
    assert ax_n.get_xlabel() == "" and fig.axes[2].get_xlabel() == "from the fault's start (min)"
    stalled = next(line for line in ax_n.get_lines()
                   if str(line.get_label()).startswith("I/O"))
    x, y = _x(stalled), np.asarray(stalled.get_ydata(), dtype=float)
    hit = [float(t) for t in x[y == 2]]  # both survivors stalled
    assert hit and power.start_s <= min(hit) and max(hit) <= power.start_s + 36 + (hi - lo) / 300
    crash = windows[1]
    assert [v.caption for v in views(crash, MONTH_S)] == ["onset of the fault", "its repair"]


def test_phases_and_quorum_loss_are_on_every_time_axis(tmp_path: Path) -> None:
    month_run(tmp_path)
    sc, obs = _load(tmp_path)
    windows = fault_windows(sc, obs)
    crash = 20 * 86400.0
    for name, fig in figures(sc, obs, windows).items():
        for ax in fig.axes:
            phases = [line for line in ax.get_lines() if line.get_gid() == "phase"]
            assert [_x(line)[0] for line in phases] == [10 * 86400.0], name
            lost = [p for p in ax.patches if p.get_gid() == "quorum"]
            assert len(lost) == 1 and isinstance(lost[0], Rectangle)
            assert lost[0].get_x() == pytest.approx(crash + 1)
            assert lost[0].get_width() == pytest.approx(60.0)
    legend = [t.get_text() for leg in figures(sc, obs, windows)["io"].legends
              for t in leg.get_texts()]
    assert "client quorum lost" in legend and "workload phase starts" in legend


@pytest.mark.parametrize(("span", "unit"), [(400, "s"), (1800, "min"), (86400, "h"),
                                            (MONTH_S, "d")])
def test_time_axis_unit_fits_the_span(span: float, unit: str) -> None:
    fig = style.figure(6, 2)
    ax = fig.subplots()
    style.time_axis(ax, 0.0, span)
    assert ax.get_xlabel() == f"time since start ({unit})"
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert 3 <= len(labels) <= 11 and all(len(t) <= 4 for t in labels), labels


def test_identical_lines_differ_in_colour_dash_and_marker(tmp_path: Path) -> None:
    small_run(tmp_path)  # VMs a and c have the same I/O all the run
    sc, obs = _load(tmp_path)
    ax = figures(sc, obs, fault_windows(sc, obs))["io"].axes[0]
    lines = [line for line in ax.get_lines() if not line.get_gid()]
    looks = [(line.get_color(), line.get_linestyle(), line.get_marker(),
              str(line.get_markevery())) for line in lines]
    assert len(lines) == 3
    for one, other in itertools.combinations(looks, 2):
        assert all(a != b for a, b in zip(one, other, strict=True)), (one, other)


def _texts(fig: Figure) -> list[Text]:
    """Every text drawn: titles, axis and tick labels, legends (ticks outside the view are
    not drawn and are left out)."""
    drawn: set[int] = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks():
                if not lo - 1e-9 <= tick.get_loc() <= hi + 1e-9:
                    drawn.update({id(tick.label1), id(tick.label2)})
    return [t for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and id(t) not in drawn]


def _inner(box: Bbox) -> Bbox:
    """``box`` less a pixel on every side: texts that only touch do not count."""
    return Bbox.from_extents(box.x0 + 1, box.y0 + 1, box.x1 - 1, box.y1 - 1)


@pytest.mark.parametrize("make", [small_run, big_run, month_run, model_run],
                         ids=["three-vms", "hundred-vms", "month", "model-default"])
def test_no_text_overlaps_another(tmp_path: Path, make: Callable[[Path], Path]) -> None:
    make(tmp_path)
    sc, obs = _load(tmp_path)
    windows = fault_windows(sc, obs)
    figs = dict(figures(sc, obs, windows))
    figs |= {f"fault{i}": zoom_figure(w, sc, obs, windows) for i, w in enumerate(windows)}
    for name, fig in figs.items():
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg canvas
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _texts(fig)]
        assert len(boxes) > 10
        for (s1, b1), (s2, b2) in itertools.combinations(boxes, 2):
            if b1.width and b2.width:
                assert not _inner(b1).overlaps(_inner(b2)), (name, s1, s2)


def test_markers_of_a_fault_start_show_even_when_the_window_is_thin(tmp_path: Path) -> None:
    month_run(tmp_path)
    sc, obs = _load(tmp_path)
    windows = fault_windows(sc, obs)
    ax = figures(sc, obs, windows)["io"].axes[0]
    starts = [line for line in ax.get_lines() if line.get_gid() == "fault-start"]
    assert sorted(float(_x(line)[0]) for line in starts) == [w.start_s for w in windows]
    assert all(isinstance(line, Line2D) and line.get_marker() == "v" for line in starts)
