"""``hcisim lab image`` and ``hcisim lab libvirt``: clear messages, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def hcisim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from hcisim.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120)


def test_image_show_names_the_recipe_hash(tmp_path: Path) -> None:
    proc = hcisim("lab", "image", "show", "--cache", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "recipe " in proc.stdout and "not built" in proc.stdout


def test_image_build_into_an_impossible_cache_is_a_clear_error() -> None:
    proc = hcisim("lab", "image", "build", "--cache", "/proc/hcisim-no-such-dir")
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_libvirt_status_and_down_on_an_empty_workdir(tmp_path: Path) -> None:
    proc = hcisim("lab", "libvirt", "status", "--workdir", str(tmp_path))
    assert proc.returncode == 0 and "no libvirt lab" in proc.stdout
    proc = hcisim("lab", "libvirt", "up", "/nonexistent.yaml")
    assert proc.returncode == 2 and "cannot read file" in proc.stderr
