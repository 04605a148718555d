"""Shared paths and the command runner of the importer tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def hcisim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from hcisim.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
