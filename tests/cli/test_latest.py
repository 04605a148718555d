"""README's promise: every run its own folder, and ``hcisim report runs/latest`` reads the
newest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli.shell import hcisim


def test_two_runs_two_folders_and_latest_is_the_newest(tmp_path: Path) -> None:
    first = hcisim("run", "-q", "--json", cwd=tmp_path)
    second = hcisim("run", "-q", "--json", "--seed", "7", cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    a, b = (tmp_path / json.loads(r.stdout)["results"] for r in (first, second))
    assert a != b and a.parent == b.parent == tmp_path / "runs"
    assert (tmp_path / "runs" / "latest").resolve() == b.resolve()
    assert json.loads((b / "journal.json").read_text())["seed"] == 7
    report = hcisim("report", "runs/latest", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (b / "report.html").is_file() and not (a / "report.html").exists()


def test_parallel_runs_of_the_same_scenario_keep_both_results(tmp_path: Path) -> None:
    """The issue's lost result: two runs started together used to share a folder."""
    code = "from hcisim.cli import main; main()"
    procs = [subprocess.Popen([sys.executable, "-c", code, "run", "-q", "--json"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [e for _, e in outs]
    folders = {json.loads(o)["results"] for o, _ in outs}
    assert len(folders) == 3
    for f in folders:
        assert json.loads((tmp_path / f / "journal.json").read_text())["status"] == "completed"
