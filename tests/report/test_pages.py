"""Every page comes from the package's templates; capacity and sweep plots read to scale."""

from __future__ import annotations

from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import pytest
from markupsafe import Markup
from matplotlib.patches import Rectangle

from hcisim.capacity import load_spec, size, write_capacity
from hcisim.capacity.report import capacity_plot
from hcisim.report import pages
from hcisim.sweep.grid import Factor
from hcisim.sweep.plots import factor_figure, unit
from tests.report.runs import REPO

SPEC = REPO / "scenarios" / "capacity" / "spec.yaml"


def test_templates_load_from_the_package_only() -> None:
    env = pages.environment()
    assert isinstance(env.loader, jinja2.PackageLoader)
    assert env.loader.package_name == "hcisim"
    assert {"base.html.j2", "run.html.j2", "capacity.html.j2", "sweep.html.j2"} <= set(
        env.list_templates())
    assert env.autoescape is True
    assert not (REPO / "reports" / "run.html.j2").exists()  # one copy, in the package


def test_tables_are_markup_and_their_cells_escaped() -> None:
    html = pages.table_html(pd.DataFrame({"vm": ["<b>x</b>"], "MB/s": [1.5]}))
    assert isinstance(html, Markup)
    assert "<table" in html and "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x" not in html
    page = jinja2.Environment(autoescape=True).from_string("{{ t }}{{ u }}").render(
        t=html, u="<i>user</i>")
    assert page.startswith("<table") and page.endswith("&lt;i&gt;user&lt;/i&gt;")


@pytest.fixture(scope="module")
def capacity() -> dict[str, object]:
    return size(*load_spec(SPEC))


def test_capacity_bars_show_the_reserve_the_check_keeps(capacity: dict[str, object]) -> None:
    fig = capacity_plot(capacity)
    ax = fig.axes[0]
    reserve = capacity["spec"]["thresholds"]["capacity_reserve_pct"] / 100  # type: ignore[index]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    solid = [b for b in bars if not b.get_hatch()]
    kept = [b for b in bars if b.get_hatch()]
    assert len(solid) == len(kept) > 0
    limits = sorted(c["limit"] / 1000 for a in capacity["assessments"]  # type: ignore[attr-defined]
                    for c in a["checks"] if c["name"] == "capacity")
    assert sorted(b.get_height() for b in solid) == pytest.approx(limits)
    for room, spare in zip(solid, kept, strict=True):
        assert spare.get_y() == pytest.approx(room.get_height())  # stacked on top
        assert spare.get_height() == pytest.approx(room.get_height() * reserve / (1 - reserve))
    legend = ax.get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert any("reserve kept free (20%)" in t for t in labels)
    assert "provisioned VM disks" in labels


def test_capacity_page_is_self_contained(tmp_path: Path, capacity: dict[str, object]) -> None:
    html = write_capacity(capacity, tmp_path)["capacity.html"].read_text()
    assert html.count('src="data:image/png;base64,') == 2
    assert "keeps <b>20%</b> of usable space free" in html
    checks = html.split("<h2>Every check</h2>")[1]
    assert checks.count('<span class="badge pass">pass</span>') > 0
    assert "&lt;" not in checks  # rendered, not shown as source
    assert "http://" not in html and "https://" not in html


def test_sweep_panels_have_units_and_a_zero_baseline() -> None:
    df = pd.DataFrame({
        "f": [1, 1, 2, 2], "error": [""] * 4, "passed": [True, False, True, True],
        "vms.max_io_stall_s.max": [30.0, 32.0, 40.0, 41.0],
        "volumes.bytes_healed.sum": [2e9, 2e9, 3e9, 3e9],
        "claim.fast.measured": [0.0, 0.0, 0.0, 0.0], "claim.fast.unit": ["ms"] * 4})
    metrics = ["vms.max_io_stall_s.max", "volumes.bytes_healed.sum", "passed",
               "claim.fast.measured"]
    assert [unit(df, m) for m in metrics] == [("s", 1.0), ("GB", 1e-9), ("% of runs", 100.0),
                                              ("ms", 1.0)]
    fig = factor_figure(df, Factor("f", (1, 2)), [], metrics)
    for ax, want in zip(fig.axes, ["s", "GB", "% of runs", "ms"], strict=False):
        assert ax.get_ylabel() == want
        lo, hi = ax.get_ylim()
        assert lo <= 0 < hi and (lo == 0 or lo >= -3), (want, lo, hi)
        flat = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
        assert any(len(y) == 2 and not y.any() for y in flat)  # the zero baseline
    stall = fig.axes[0]
    assert stall.get_ylim()[1] > 41  # the largest value fits
