"""Where results go: a fresh folder per run, never shared, never silently reused.

Default folders are ``runs/<stem>-<date>-<time>.<ms>-<random>``, created with an exclusive
``mkdir``: two runs started in the same millisecond (parallel CI jobs, a sweep's workers)
still get different folders, because the loser of the race draws a new suffix.
``runs/latest`` is a symlink to the newest one, replaced atomically (``rename`` over it), so a
reader never sees it missing. A folder named with ``-o`` must be empty; ``--force`` replaces an
earlier result's files (so no stale ``report.html`` sits beside new tables) but refuses a folder
that does not look like a result, so a typo cannot empty a home directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

RUNS = Path("runs")
LATEST = "latest"

# Files one of hcisim's commands writes at the top of a result folder.
RESULT_MARKERS = ("journal.json", "summary.json", "scenario.yaml", "sweep.json",
                  "capacity.json", "compare.json", "validate.json")


class ResultFolderError(Exception):
    """The result folder cannot be used (not empty, not writable...): bad input, exit 2."""


def new_run_folder(stem: str, root: Path = RUNS) -> Path:
    """Create and return a folder under ``root`` that no other run has or will have."""
    stem = stem.replace(":", "-").replace("/", "-")
    for _ in range(100):
        now = datetime.now()
        name = f"{stem}-{now:%Y%m%d-%H%M%S}.{now.microsecond // 1000:03d}-{secrets.token_hex(3)}"
        folder = root / name
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as exc:
            raise ResultFolderError(f"{root}: cannot create a result folder here "
                                    f"({exc.strerror}); choose one with -o") from None
        point_latest(folder)
        return folder
    raise ResultFolderError(f"{root}: could not find a free folder name for {stem}")


def point_latest(folder: Path) -> bool:
    """Make ``<folder's parent>/latest`` point at ``folder``; False where that is impossible
    (no symlinks, or ``latest`` is a real folder someone made)."""
    link = folder.parent / LATEST
    tmp = folder.parent / f".{LATEST}-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        os.symlink(folder.name, tmp, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
    return True


def _is_result_folder(folder: Path) -> bool:
    return any((folder / m).exists() for m in RESULT_MARKERS)


def use_folder(folder: Path, force: bool = False) -> Path:
    """``folder`` (from ``-o``) made ready for a new result: created if missing, refused when
    it holds something and ``force`` is off, emptied when ``force`` is on and it holds an
    earlier result. Raises ``ResultFolderError`` with what to do instead."""
    if folder.exists() and not folder.is_dir():
        raise ResultFolderError(f"-o {folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not force:
            raise ResultFolderError(
                f"-o {folder}: folder is not empty; use --force to replace the result in it, "
                "or choose another folder (without -o every run gets a new one)")
        if not _is_result_folder(folder):
            raise ResultFolderError(
                f"-o {folder}: not empty and not an hcisim result folder; --force only replaces "
                "earlier results: choose an empty folder")
        _empty(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ResultFolderError(f"-o {folder}: cannot write there ({exc.strerror})") from None
    return folder


def result_folder(output: Path | None, stem: str, force: bool = False) -> Path:
    """The folder a command writes to: ``output`` checked, or a new one under ``runs/``."""
    return new_run_folder(stem) if output is None else use_folder(output, force)


def _empty(folder: Path) -> None:
    for entry in folder.iterdir():
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            raise ResultFolderError(f"--force: cannot remove {entry} ({exc.strerror})") from None
