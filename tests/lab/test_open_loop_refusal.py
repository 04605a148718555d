"""fio runs only open-loop profiles: a closed-loop one is refused before any lab is built,
naming the disk and its profile (no lab needed: the refusal comes first)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hcisim.calibration.cases import fault, lab_scenario
from hcisim.cli import EXIT_ENGINE
from hcisim.engines import EngineError, observe
from hcisim.lab.errors import LabError
from hcisim.lab.fio import closed_loop_disks, refuse_closed_loop
from hcisim.scenario import Scenario, load_scenario, with_overrides

REPO = Path(__file__).resolve().parents[2]


def closed_loop_case() -> Scenario:
    sc = lab_scenario("closed", [fault("node_power_loss", 10, 15)], 45)
    return with_overrides(sc, {"io_profiles.writer.catch_up": False})


def test_closed_loop_profile_refused_with_its_disks() -> None:
    sc = closed_loop_case()
    assert closed_loop_disks(sc) == [f"vms[{i}].disks[0] of vm{i + 1} (profile writer)"
                                     for i in range(3)]
    with pytest.raises(LabError, match=r"vms\[0\]\.disks\[0\] of vm1 \(profile writer\).*"
                       r"catch_up is false.*fio's rate pacing always catches up"):
        refuse_closed_loop(sc)
    # through the engine registry: an EngineError (exit code 3), before anything is built
    with pytest.raises(EngineError, match="catch_up is false"):
        observe("lab+netns", sc)


def test_cli_reports_the_refusal_with_the_engine_exit_code(tmp_path: Path) -> None:
    path = tmp_path / "closed.yaml"
    path.write_text(yaml.safe_dump(closed_loop_case().model_dump(mode="json")))
    res = subprocess.run([sys.executable, "-c", "from hcisim.cli import main; main()", "run",
                          str(path), "--engine", "lab+netns", "-o", str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=REPO, timeout=600)
    assert res.returncode == EXIT_ENGINE, res.stderr
    assert "catch_up is false" in res.stderr and "Traceback" not in res.stderr


def test_inline_and_open_loop_profiles() -> None:
    sc = lab_scenario("open", [fault("node_power_loss", 10, 15)], 45)
    refuse_closed_loop(sc)  # the calibration and validation cases run as they are
    data = sc.model_dump(mode="json")
    data["vms"][1]["disks"][0]["io"] = {"iops": 10, "catch_up": False}
    assert closed_loop_disks(Scenario.model_validate(data)) == [
        "vms[1].disks[0] of vm2 (profile inline)"]


def test_lab_catalogue_says_how_its_writers_pace() -> None:
    """Every lab scenario names catch_up in each profile: true where fio writes (fio's
    pacing), false where the guest agent does (it sleeps out its interval: closed loop)."""
    for path in sorted((REPO / "scenarios").glob("lab-*.yaml")):
        raw = yaml.safe_load(path.read_text())
        sc = load_scenario(path)
        fio = sc.lab.vms == "fio" and not sc.lab.plane
        for name, prof in raw["io_profiles"].items():
            assert prof.get("catch_up") is fio, (path.name, name)
        if fio:
            refuse_closed_loop(sc)
