"""Exit codes (docs/results.md): 0 claims hold, 1 a claim failed, 2 usage or bad input,
3 engine or target error, 4 internal error with the traceback in a file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.cli.shell import ROOT, hcisim, no_traceback

FAILING_CLAIM = """
claims:
  - {kind: zero_downtime, name: no stall at all, max_stall_s: 0.5}
"""


def _failing_scenario(tmp_path: Path) -> Path:
    text = (ROOT / "scenarios/default.yaml").read_text()
    text = re.sub(r"(?ms)^claims:.*?(?=^\S|\Z)", "", text) + FAILING_CLAIM
    path = tmp_path / "strict.yaml"
    path.write_text(text)
    return path


def test_claims_hold_exit_0(tmp_path: Path) -> None:
    r = hcisim("run", "-q", "-o", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "r" / "journal.json").read_text())["status"] == "completed"


def test_a_failed_claim_exits_1_and_names_the_claim(tmp_path: Path) -> None:
    r = hcisim("run", "-q", str(_failing_scenario(tmp_path)), "-o", str(tmp_path / "r"))
    assert r.returncode == 1, r.stderr
    assert "no stall at all" in r.stderr and no_traceback(r)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["passed"] is False
    (claim,) = summary["claims"]
    worst = claim["evidence"][0]
    # the worst offender (VM and when), as the report names it
    assert f"worst: VM {worst['vm']} at " in r.stderr and f"({worst['at_s']:.1f} s)" in r.stderr


def test_unknown_engine_is_a_usage_error_with_a_suggestion(tmp_path: Path) -> None:
    r = hcisim("run", "-q", "--engine", "modle", "-o", str(tmp_path / "r"))
    assert r.returncode == 2
    assert "unknown engine 'modle'" in r.stderr and "did you mean model?" in r.stderr
    assert no_traceback(r)
    assert not (tmp_path / "r").exists()


def test_unknown_backend_is_a_usage_error(tmp_path: Path) -> None:
    r = hcisim("run", "-q", "--engine", "lab", "--backend", "libvrt", "-o", str(tmp_path))
    assert r.returncode == 2 and "did you mean 'libvirt'?" in r.stderr


def test_unwritable_output_exits_2_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    r = hcisim("run", "-q", "-o", str(tmp_path / "file" / "run"))
    assert r.returncode == 2 and no_traceback(r)
    assert "cannot write there" in r.stderr


def test_output_folder_not_empty_needs_force(tmp_path: Path) -> None:
    dest = tmp_path / "r"
    assert hcisim("run", "-q", "--report", "-o", str(dest)).returncode == 0
    (dest / "scenario.yaml").write_text("name: another scenario\n")
    r = hcisim("run", "-q", str(_failing_scenario(tmp_path)), "-o", str(dest))
    assert r.returncode == 2 and "not empty; use --force" in r.stderr
    assert (dest / "report.html").exists()
    r = hcisim("run", "-q", str(_failing_scenario(tmp_path)), "-o", str(dest), "--force")
    assert r.returncode == 1, r.stderr
    assert not (dest / "report.html").exists()  # the old scenario's report is gone
    assert "no stall at all" in (dest / "scenario.yaml").read_text()


def test_engine_error_exits_3_and_the_journal_says_failed(tmp_path: Path) -> None:
    patch = ("import hcisim.runner as r\n"
             "def down(*a, **k):\n"
             "    raise r.EngineError('h2 did not come up: [ssh: no route to host]')\n"
             "r.engine_observations = down")
    r = hcisim("run", "-q", "-o", str(tmp_path / "r"), patch=patch)
    assert r.returncode == 3 and no_traceback(r)
    assert "[ssh: no route to host]" in r.stderr  # not eaten as Rich markup
    journal = json.loads((tmp_path / "r" / "journal.json").read_text())
    assert journal["status"] == "failed"
    assert journal["error"]["message"] == "h2 did not come up: [ssh: no route to host]"
    assert (tmp_path / "r" / "scenario.yaml").exists()


def test_internal_error_exits_4_traceback_in_a_file(tmp_path: Path) -> None:
    patch = ("import hcisim.runner as r\n"
             "def bug(*a, **k):\n"
             "    raise ZeroDivisionError('division by zero in [judge]')\n"
             "r.judge = bug")
    r = hcisim("run", "-q", "-o", str(tmp_path / "r"), patch=patch)
    assert r.returncode == 4 and no_traceback(r)
    assert "division by zero in [judge]" in r.stderr
    found = re.search(r"traceback is in (\S+)", r.stderr)
    assert found, r.stderr
    saved = Path(found.group(1))
    assert "Traceback" in saved.read_text() and "ZeroDivisionError" in saved.read_text()
    saved.unlink()
    assert json.loads((tmp_path / "r" / "journal.json").read_text())["status"] == "failed"


def test_bad_flag_is_a_usage_error() -> None:
    r = hcisim("run", "--no-such-flag")
    assert r.returncode == 2 and "No such option" in r.stderr


def test_markup_in_a_user_error_is_shown_as_text() -> None:
    r = hcisim("report", "runs/no[bold]such[/bold]")
    assert r.returncode == 2
    assert "runs/no[bold]such[/bold]: no such result folder" in r.stderr


def test_version_and_python_m() -> None:
    from hcisim.results import hcisim_version

    for cmd in (["-c", "from hcisim.cli import main; main()"], ["-m", "hcisim"]):
        r = subprocess.run([sys.executable, *cmd, "--version"], capture_output=True, text=True,
                           cwd=ROOT, timeout=60)
        assert (r.returncode, r.stdout) == (0, f"hcisim {hcisim_version()}\n")


def test_help_names_the_exit_codes_at_full_width() -> None:
    r = hcisim("run", "--help")
    assert r.returncode == 0
    flat = " ".join(r.stdout.split())
    assert "3 engine or target error; 4 internal error" in flat
    assert "…" not in r.stdout  # nothing cut off
    assert max(len(line) for line in r.stdout.splitlines()) > 80


def test_tables_are_not_cut_when_stdout_is_no_terminal(tmp_path: Path) -> None:
    r = hcisim("run", "-o", str(tmp_path / "r"))
    assert r.returncode == 0
    header = next(line for line in r.stdout.splitlines() if "read MB/s" in line)
    assert "downtime s" in header and "…" not in r.stdout


def test_ssh_error_reason_in_brackets_is_shown() -> None:
    patch = ("import hcisim.accept as a\n"
             "def unreachable(*args, **kw):\n"  # SshError's own constructor is not the point
             "    e = a.SshError.__new__(a.SshError)\n"
             "    e.args = ('h1: [ssh: connect to host h1 port 22: no route to host]',)\n"
             "    raise e\n"
             "a.accept = unreachable")
    r = hcisim("accept", "--hosts", "ssh://root@h1,ssh://root@h2,ssh://root@h3",
               "--scenario", "scenarios/default.yaml", patch=patch)
    assert r.returncode == 3 and no_traceback(r)
    assert "h1: [ssh: connect to host h1 port 22: no route to host]" in r.stderr


def test_interrupted_run_exits_130_and_the_journal_says_so(tmp_path: Path) -> None:
    patch = ("import hcisim.runner as r\n"
             "def ctrl_c(*a, **k):\n"
             "    raise KeyboardInterrupt\n"
             "r.engine_observations = ctrl_c")
    r = hcisim("run", "-q", "-o", str(tmp_path / "r"), patch=patch)
    assert r.returncode == 130 and no_traceback(r)
    journal = json.loads((tmp_path / "r" / "journal.json").read_text())
    assert journal["status"] == "interrupted" and journal["finished"] is not None


def test_report_into_an_unwritable_place_exits_2(tmp_path: Path) -> None:
    dest = tmp_path / "r"
    assert hcisim("run", "-q", "-o", str(dest)).returncode == 0
    (dest / "report_files").write_text("a file where the report's folder goes")
    r = hcisim("report", str(dest))
    assert r.returncode == 2 and no_traceback(r)
    assert "report_files: cannot write the report" in r.stderr
