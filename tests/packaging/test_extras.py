"""A job whose optional extra is not installed says which extra to install (exit 2), and the
core works without them (the wheel test runs without any extra)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "importers" / "fixtures"


def _without(modules: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    """``hcisim ARGS`` in a process where ``modules`` cannot be imported."""
    hide = "; ".join(f"sys.modules[{m!r}] = None" for m in modules)
    code = f"import sys; {hide}; from hcisim.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_import_ovirt_names_the_ovirt_extra(tmp_path: Path) -> None:
    r = _without(("ovirtsdk4", "ovirtsdk4.reader", "ovirtsdk4.readers"), "import", "ovirt",
                 "--recorded", str(FIXTURES / "engine"), "-o", str(tmp_path / "o.yaml"))
    assert r.returncode == 2, r.stderr
    assert "pip install 'hcisim[ovirt]'" in r.stderr
    assert "Traceback" not in r.stderr


def test_sweep_on_dask_names_the_dask_extra(tmp_path: Path) -> None:
    r = _without(("distributed",), "sweep", "scenarios/lab-power-loss.yaml", "--set",
                 "volumes[1].type=replica3,arbiter", "--dask", "tcp://127.0.0.1:1", "-q",
                 "-o", str(tmp_path / "sweep"))
    assert r.returncode == 2, r.stderr
    assert "pip install 'hcisim[dask]'" in r.stderr.replace("\n", "")
