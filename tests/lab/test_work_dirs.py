"""A lab run's scratch directory outlives a SIGKILLed harness; ``hcisim lab down`` removes
it, and only it (session 4's finding: ``/tmp/hcisim-labrun-*`` was left behind)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from hcisim.lab.run import (
    HARNESS_FILE,
    make_work_dir,
    orphaned_work_dirs,
    remove_orphaned_work_dirs,
)


def made_by_a_process_that_is_gone(tmp: Path) -> Path:
    code = "from hcisim.lab.run import make_work_dir; print(make_work_dir())"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TMPDIR": str(tmp)},
                         capture_output=True, text=True, check=True).stdout
    return Path(out.strip())


def test_only_directories_of_harnesses_that_are_gone_are_removed(
        tmp_path: Path) -> None:
    dead = made_by_a_process_that_is_gone(tmp_path)
    assert dead.parent == tmp_path and (dead / HARNESS_FILE).is_file()
    old = tempfile.tempdir
    tempfile.tempdir = str(tmp_path)
    try:
        mine = make_work_dir()  # this process runs: not orphaned
    finally:
        tempfile.tempdir = old
    reused = tmp_path / "hcisim-labrun-reused"  # a live pid, but not the process that wrote it
    reused.mkdir()
    me = psutil.Process()
    (reused / HARNESS_FILE).write_text(f"{me.pid} {me.create_time() - 100.0!r}\n")
    unsigned = tmp_path / "hcisim-labrun-unsigned"  # not ours to judge
    unsigned.mkdir()
    (tmp_path / "hcisim-labrun-garbled").mkdir()
    (tmp_path / "hcisim-labrun-garbled" / HARNESS_FILE).write_text("not a pid\n")

    assert orphaned_work_dirs(tmp_path) == sorted([dead, reused])
    assert remove_orphaned_work_dirs(tmp_path) == sorted([dead, reused])
    assert not dead.exists() and not reused.exists()
    assert mine.is_dir() and unsigned.is_dir()
    assert orphaned_work_dirs(tmp_path) == []
