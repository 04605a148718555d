"""The model's known error: the shipped numbers are docs/validation.md's table, and a model
run's page states them next to what it predicts (a lab run's page does not)."""

from __future__ import annotations

import re
from pathlib import Path

from hcisim.report import write_report
from hcisim.report.model_error import model_error, raw
from tests.report.runs import REPO, month_run

LABELS = {"max stall (s)": "max_stall_s", "throughput (MB/s)": "throughput_mb_s",
          "heal time (s)": "heal_time_s", "bytes healed (MB)": "bytes_healed"}


def _validation_table() -> dict[str, list[tuple[str, float, float, float]]]:
    """The rows of docs/validation.md's model-against-lab table that carry an error."""
    text = (REPO / "docs" / "validation.md").read_text()
    name = re.escape(str(raw()["scenario"]))  # the section of the shipped numbers' scenario
    section = re.search(rf"^## {name}\b.*?(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert section is not None, f"docs/validation.md has no section {name}"
    text = section.group(0)
    rows: dict[str, list[tuple[str, float, float, float]]] = {}
    for m in re.finditer(r"^\| (.+?) \| (.+?) \| ([\d.]+) \| ([\d.]+) \| ([-+]?\d+)% \|$",
                         text, re.MULTILINE):
        metric, subject, model, lab, err = m.groups()
        rows.setdefault(LABELS[metric], []).append(
            (subject, float(model), float(lab), float(err)))
    return rows


def test_shipped_numbers_are_the_validation_table() -> None:
    table = _validation_table()
    shipped = {k: [(r["subject"], float(r["model"]), float(r["lab"]), float(r["error_pct"]))
                   for r in m["rows"]] for k, m in raw()["metrics"].items()}
    assert shipped == table
    for rows in table.values():  # the error column is (model - lab) / lab (of unrounded
        for _, model, lab, err in rows:  # values: a point off the rounded ones at most)
            assert abs(100 * (model - lab) / lab - err) <= 1.0
    errors = model_error()
    assert errors.by_metric["heal_time_s"] == "-93% .. -91%"
    assert errors.by_metric["max_stall_s"] == "-33% .. 0%"
    assert errors.for_claim("zero_downtime") == "-33% .. 0%"
    assert errors.for_claim("replicas") == ""


def test_a_model_run_states_the_known_error_and_a_lab_run_does_not(tmp_path: Path) -> None:
    page = write_report(month_run(tmp_path / "model")).read_text()
    assert "Predicted by the model: known error" in page
    assert re.search(r'<td class="err">-33% \.\. 0%</td>', page)  # beside the stall claim
    lab = write_report(month_run(tmp_path / "lab", engine="lab:netns")).read_text()
    assert "engine <b>lab:netns</b>" in lab
    assert "known error" not in lab and 'class="err"' not in lab
