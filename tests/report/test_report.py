"""The report: files beside the data, every time plot shaded, readable at 100 VMs."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from hcisim.claims import fault_windows
from hcisim.observations import COLUMNS, Observations
from hcisim.report import write_report
from hcisim.report.figures import figures
from hcisim.scenario import load_scenario
from tests.report.runs import big_run, model_run, small_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_is_written_beside_the_data_with_its_files(tmp_path: Path) -> None:
    page = write_report(small_run(tmp_path))
    assert page == tmp_path / "report.html"
    text = page.read_text()
    files = tmp_path / "report_files"
    for name in ("io", "fault1", "vm_states", "bricks"):
        assert (files / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 4 and all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    links = re.findall(r'href="(report_files/[^"]+)"', text)
    assert {f"report_files/{t}.csv" for t in COLUMNS} | {"report_files/claims.csv"} <= set(links)
    assert all((tmp_path / link).exists() for link in links)
    assert "http://" not in text and "https://" not in text  # nothing fetched from a server


def test_csvs_hold_the_raw_tables(tmp_path: Path) -> None:
    write_report(small_run(tmp_path))
    obs = Observations.load(tmp_path)
    for name in COLUMNS:
        df = pd.read_csv(tmp_path / "report_files" / f"{name}.csv")
        assert list(df.columns) == list(COLUMNS[name]) and len(df) == len(obs[name])
    claims = pd.read_csv(tmp_path / "report_files" / "claims.csv")
    assert list(claims["verdict"]) == ["pass", "fail"]


def test_page_shows_claims_failover_ha_and_the_scenario(tmp_path: Path) -> None:
    text = write_report(small_run(tmp_path)).read_text()
    assert "claims failed" in text
    assert re.search(r"survivors</td><td>zero_downtime</td>\s*<td><span class=\"badge pass\">",
                     text)
    assert re.search(r"heal_within</td><td>heal_within</td>\s*<td><span class=\"badge fail\">",
                     text)
    assert "If this host fails" in text or "if this host fails" in text
    scenario_text = (tmp_path / "scenario.yaml").read_text()
    assert "name: claims-case" in scenario_text and "name: claims-case" in text
    assert "node_power_loss" in text


def test_every_time_axis_shades_every_fault_window(tmp_path: Path) -> None:
    small_run(tmp_path)
    sc = load_scenario(tmp_path / "scenario.yaml")
    obs = Observations.load(tmp_path)
    windows = fault_windows(sc, obs)
    assert [(w.start_s, w.end_s) for w in windows] == [(100.0, 150.0)]
    for name, fig in figures(sc, obs, windows).items():
        for ax in fig.axes:
            spans = [p for p in ax.patches if p.get_gid() == "fault"]
            assert len(spans) == 1, (name, ax.get_title())
            assert isinstance(spans[0], Rectangle)
            x0, x1 = spans[0].get_x(), spans[0].get_x() + spans[0].get_width()
            assert (x0, x1) == pytest.approx((100.0, 150.0))


def test_an_unrepaired_fault_is_shaded_to_the_end_of_the_run(tmp_path: Path) -> None:
    small_run(tmp_path)
    sc = load_scenario(tmp_path / "scenario.yaml")
    obs = Observations.load(tmp_path)
    ev = obs.tables["events"]
    obs.tables["events"] = ev[ev["kind"] != "fault_end"].reset_index(drop=True)
    windows = fault_windows(sc, obs)
    fig = figures(sc, obs, windows)["io"]
    span = next(p for p in fig.axes[0].patches if p.get_gid() == "fault")
    assert isinstance(span, Rectangle)
    assert span.get_x() + span.get_width() == pytest.approx(400.0)


def test_a_hundred_vms_stay_readable(tmp_path: Path) -> None:
    big_run(tmp_path)
    sc = load_scenario(tmp_path / "scenario.yaml")
    obs = Observations.load(tmp_path)
    figs = figures(sc, obs, fault_windows(sc, obs))
    legend = figs["io"].axes[0].get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == [
        "oltp (34 VMs)", "web (33 VMs)", "backup (33 VMs)"]
    states = figs["vm_states"].axes[0]
    assert len(states.get_yticks()) == 100
    assert figs["vm_states"].get_size_inches()[1] < 14  # one thin row per VM
    page = write_report(tmp_path)
    assert page.stat().st_size < 3_000_000


def test_missing_summary_is_judged_again_from_the_tables(tmp_path: Path) -> None:
    small_run(tmp_path)
    before = json.loads((tmp_path / "summary.json").read_text())["claims"]
    (tmp_path / "summary.json").unlink()
    write_report(tmp_path)
    again = pd.read_csv(tmp_path / "report_files" / "claims.csv")
    assert list(again["verdict"]) == [c["verdict"] for c in before]


def test_report_of_a_model_run(tmp_path: Path) -> None:
    model_run(tmp_path, "replica3-power-loss")
    text = write_report(tmp_path).read_text()
    assert "engine <b>model</b>" in text
    assert text.count('src="data:image/png;base64,') == 4


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from hcisim.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_report_and_its_errors(tmp_path: Path) -> None:
    small_run(tmp_path / "run")
    ok = _cli("report", str(tmp_path / "run"))
    assert ok.returncode == 0 and "report.html" in ok.stdout
    missing = _cli("report", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no such result folder" in " ".join(missing.stderr.split())
    (tmp_path / "empty").mkdir()
    empty = _cli("report", str(tmp_path / "empty"))
    assert empty.returncode == 2 and "no scenario.yaml" in " ".join(empty.stderr.split())
    assert "Traceback" not in missing.stderr + empty.stderr


def test_provenance_from_the_journal_and_an_unfinished_run(tmp_path: Path) -> None:
    small_run(tmp_path)
    journal = json.loads((tmp_path / "journal.json").read_text())
    text = write_report(tmp_path).read_text()
    assert '<h2 id="provenance">Provenance</h2>' in text
    assert f"<th>status</th><td>{journal['status']}</td>" in text
    assert f"<th>hcisim</th><td>{journal['hcisim_version']}" in text
    assert "did not complete" not in text
    journal.update(status="interrupted", error="stopped by Ctrl-C")
    (tmp_path / "journal.json").write_text(json.dumps(journal))
    text = write_report(tmp_path).read_text()
    assert "This run did not complete</b> (status interrupted)" in text
    assert "<th>error</th><td>stopped by Ctrl-C</td>" in text
