"""The journal: provenance, and a record of runs that fail or are interrupted."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import pytest

import hcisim
from hcisim.results import TRACEBACK, git_commit, hcisim_version, recording, write_result
from hcisim.runner import judge, run_scenario
from hcisim.scenario import load_scenario

SC = load_scenario()


def _journal(folder: Path) -> dict[str, object]:
    doc = json.loads((folder / "journal.json").read_text())
    assert isinstance(doc, dict)
    return doc


def test_completed_run_journal_has_provenance(tmp_path: Path) -> None:
    run_scenario(SC, out=tmp_path)
    j = _journal(tmp_path)
    assert j["status"] == "completed" and j["error"] is None
    assert j["hcisim_version"] == hcisim_version()
    assert j["node"] == platform.node()
    assert j["python"]["version"] == platform.python_version()  # type: ignore[index]
    assert j["platform"]["system"] == platform.system()  # type: ignore[index]
    assert j["started"] <= j["finished"]  # type: ignore[operator]
    assert j["passed"] is True and j["claims"] and j["events"]
    assert {"scenario.yaml", "summary.json", "observations"} <= {
        p.name for p in tmp_path.iterdir()}


def test_failed_run_keeps_scenario_and_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="brick on fire"), recording(tmp_path, SC, "model"):
        raise RuntimeError("brick on fire [sda]")
    j = _journal(tmp_path)
    assert j["status"] == "failed" and j["finished"] is not None
    assert j["error"] == {"type": "RuntimeError", "message": "brick on fire [sda]",
                          "traceback": TRACEBACK}
    assert "brick on fire" in (tmp_path / TRACEBACK).read_text()
    assert load_scenario(tmp_path / "scenario.yaml") == SC


def test_interrupted_run_says_so(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), recording(tmp_path, SC, "lab"):
        raise KeyboardInterrupt
    j = _journal(tmp_path)
    assert (j["status"], j["engine"]) == ("interrupted", "lab")
    assert (tmp_path / "scenario.yaml").exists()


def test_journal_is_written_before_the_engine_runs(tmp_path: Path) -> None:
    seen: list[dict[str, object]] = []
    with recording(tmp_path, SC, "model") as record:
        seen.append(_journal(tmp_path))
        record.complete(run_scenario(SC))
    assert seen[0]["status"] == "running" and seen[0]["finished"] is None
    assert _journal(tmp_path)["status"] == "completed"


def test_write_result_of_a_judged_run(tmp_path: Path) -> None:
    result = run_scenario(SC)
    write_result(judge(SC, result.observations), tmp_path, 1.0, 3.5)
    j = _journal(tmp_path)
    assert (j["status"], j["wall_s"]) == ("completed", 2.5)


def test_git_commit_of_a_checkout(tmp_path: Path) -> None:
    package = tmp_path / "hcisim"
    package.mkdir()
    (package / "x.py").write_text("")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    assert git_commit(package) == {"commit": git("rev-parse", "HEAD"), "dirty": False}
    (package / "x.py").write_text("changed = 1\n")
    git_commit.cache_clear()
    assert git_commit(package) == {"commit": git("rev-parse", "HEAD"), "dirty": True}


def test_no_git_commit_outside_a_checkout(tmp_path: Path) -> None:
    (tmp_path / "hcisim").mkdir()
    assert git_commit(tmp_path / "hcisim") is None


def test_version_is_the_installed_distribution() -> None:
    assert hcisim_version() == hcisim.__version__
