"""The command line: clear errors and exit codes, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def hcisim(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from hcisim.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd or ROOT, timeout=600)


def test_check_accepts_the_default() -> None:
    r = hcisim("check", "scenarios/default.yaml")
    assert r.returncode == 0, r.stderr
    assert "ok (default" in r.stdout


def test_check_names_the_bad_field_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "scenarios/default.yaml").read_text().replace("type: replica3", "type: raid6", 1)
    bad.write_text(text)
    r = hcisim("check", str(bad))
    assert r.returncode == 2
    assert f"{bad}:25:5: volumes[0].type: must be replica3 or arbiter" in r.stdout
    assert "Traceback" not in r.stderr + r.stdout


def test_missing_scenario_file(tmp_path: Path) -> None:
    r = hcisim("run", str(tmp_path / "none.yaml"), "-q")
    assert r.returncode == 2 and "cannot read file" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_flag_is_a_usage_error() -> None:
    r = hcisim("run", "--no-such-flag")
    assert r.returncode == 2 and "No such option" in r.stderr


def test_schema_is_json_schema() -> None:
    r = hcisim("schema")
    schema = json.loads(r.stdout)
    assert schema["title"] == "hcisim scenario"
    assert {"hosts", "volumes", "vms", "faults", "claims"} <= set(schema["properties"])


def test_lab_up_unknown_backend_is_a_clear_error() -> None:
    r = hcisim("lab", "up", "scenarios/lab-power-loss.yaml", "--backend", "vmware")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    # names the bad value and the valid ones (the wording is the lab CLI's)
    assert r.stderr.startswith("error: --backend vmware: ")
    assert "netns" in r.stderr and "libvirt" in r.stderr


def test_lab_up_libvirt_checks_accel_before_building() -> None:
    r = hcisim("lab", "up", "scenarios/lab-power-loss.yaml", "--backend", "libvirt",
               "--accel", "hyperv")
    assert r.returncode == 2 and "--accel hyperv: use auto, kvm or qemu" in r.stderr


def test_lab_status_of_a_lab_that_does_not_exist() -> None:
    r = hcisim("lab", "status", "--name", "no-such-lab-7f3a")
    assert r.returncode == 2 and "no lab named 'no-such-lab-7f3a'" in r.stderr
