"""The installed pytest plugin: ``pytest --hcisim-target ENGINE FILES`` judges every claim of
the scenario files named, one item per claim; dormant without ``--hcisim-target``."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAB = (ROOT / "scenarios" / "lab-power-loss.yaml").read_text()


def _pytest(cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], ET.Element | None]:
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:randomly", "-p",
                        "no:cacheprovider", "--junitxml", "junit.xml", *args],
                       capture_output=True, text=True, cwd=cwd, timeout=600)
    junit = cwd / "junit.xml"
    return r, ET.parse(junit).getroot() if junit.exists() else None


def _cases(root: ET.Element) -> dict[str, str]:
    """``file::claim`` -> passed | failed | skipped."""
    out = {}
    for case in root.iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        where = case.get("classname", "").removesuffix(".yaml")  # the file's stem
        out[f"{where}::{case.get('name', '')}"] = {"failure": "failed", "error": "failed",
                                     "skipped": "skipped"}.get(kinds[0] if kinds else "",
                                                               "passed")
    return out


def test_claims_of_named_files_are_items(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(LAB)
    (tmp_path / "strict.yaml").write_text(
        LAB.replace("name: lab-power-loss", "name: strict")
        .replace("\nclaims:\n", "\nclaims:\n  - {kind: zero_downtime, name: no stall at all, "
                                "max_stall_s: 0.001}\n"))
    (tmp_path / "broken.yaml").write_text(LAB.replace("type: replica3", "type: raid6", 1))
    r, junit = _pytest(tmp_path, "--hcisim-target", "model", "good.yaml", "strict.yaml",
                       "broken.yaml")
    assert junit is not None, r.stdout + r.stderr
    cases = _cases(junit)
    assert r.returncode == 1, r.stdout
    claims = ("survivors-ride-through", "replica-3-writes-on-two-bricks",
              "arbiter-writes-on-a-data-brick", "no_split_brain", "heal_within")
    for stem in ("good", "strict"):
        assert [cases[f"{stem}::{c}"] for c in claims] == ["passed"] * 5, cases
    assert cases["strict::no-stall-at-all"] == "failed"
    assert cases["broken::load"] == "failed"  # one failing item, not silence
    assert len(cases) == 12  # 5 + 6 claims, 1 load
    assert "claim 'no stall at all' (zero_downtime) failed on model" in r.stdout
    assert "volumes[0].type: must be replica3 or arbiter" in r.stdout
    verdicts = {p.get("name"): p.get("value") for p in junit.iter("property")}
    assert verdicts["engine"] == "model"


def test_dormant_without_a_target(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(LAB)
    r, _ = _pytest(tmp_path, "good.yaml")
    assert r.returncode == 4 or r.returncode == 5, r.stdout  # nothing collected from YAML
    assert "passed" not in r.stdout


def test_a_bad_target_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(LAB)
    r, _ = _pytest(tmp_path, "--hcisim-target", "modle", "good.yaml")
    assert r.returncode == 4
    assert "unknown engine 'modle'" in r.stderr and "did you mean model" in r.stderr
