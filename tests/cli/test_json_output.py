"""--json: stdout is one JSON document and nothing else (progress and notes go to stderr)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.shell import ROOT, hcisim


def test_run_json(tmp_path: Path) -> None:
    r = hcisim("run", "--json", "-o", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["results"] == str(tmp_path / "r") and doc["passed"] is True
    assert doc == {"results": doc["results"],
                   **json.loads((tmp_path / "r" / "summary.json").read_text())}


def test_capacity_json(tmp_path: Path) -> None:
    r = hcisim("capacity", str(ROOT / "scenarios/capacity/spec.yaml"), "--json",
               "-o", str(tmp_path / "c"))
    doc = json.loads(r.stdout)
    assert r.returncode == (0 if doc["answer"] else 1)
    assert doc == json.loads((tmp_path / "c" / "capacity.json").read_text())


def test_failover_json() -> None:
    r = hcisim("failover", "--json", str(ROOT / "scenarios/compute-n1-fails.yaml"))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["failover_pairs"] and "ha_reservation" in doc


def test_sweep_output_folder_is_not_reused(tmp_path: Path) -> None:
    args = ("sweep", "-q", "--set", "volumes[1].type=replica3,arbiter", "-w", "1",
            "-o", str(tmp_path / "s"))
    assert hcisim(*args).returncode == 0
    info = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert info["provenance"]["hcisim_version"] and info["provenance"]["node"]
    r = hcisim(*args)
    assert r.returncode == 2 and "not empty; use --force" in r.stderr
    assert hcisim(*args, "--force").returncode == 0
