"""Run the ``hcisim`` command as a user would: a subprocess, stdout not a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def hcisim(*args: str, cwd: Path | None = None, patch: str = "",
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``hcisim ARGS``; ``patch`` is Python run first (to make our own code fail on purpose)."""
    code = f"{patch}\nfrom hcisim.cli import main\nmain()"
    full_env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | (env or {})
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=600, env=full_env)


def no_traceback(r: subprocess.CompletedProcess[str]) -> bool:
    return "Traceback" not in r.stdout + r.stderr
