"""The result store: folders no two runs share, runs/latest, -o refused when not empty."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import pytest

from hcisim.results import ResultFolderError, new_run_folder, point_latest, use_folder

PER_PROCESS = 25


def _make_folders(root: str, start: mp.synchronize.Event, out: mp.Queue[list[str]]) -> None:
    start.wait()
    out.put([new_run_folder("same-name", Path(root)).name for _ in range(PER_PROCESS)])


def test_parallel_processes_never_share_a_folder(tmp_path: Path) -> None:
    """Six processes released at once, each asking for 25 folders of the same name."""
    ctx = mp.get_context("spawn")
    start, queue = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_make_folders, args=(str(tmp_path), start, queue))
             for _ in range(6)]
    for p in procs:
        p.start()
    start.set()
    names = [n for _ in procs for n in queue.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(names) == 6 * PER_PROCESS
    assert len(set(names)) == len(names)
    on_disk = {p.name for p in tmp_path.iterdir() if p.name != "latest"}
    assert on_disk == set(names)
    assert (tmp_path / "latest").is_symlink()
    assert os.readlink(tmp_path / "latest") in set(names)


def test_folder_name_has_sub_second_time_and_suffix(tmp_path: Path) -> None:
    a, b = new_run_folder("x", tmp_path), new_run_folder("x", tmp_path)
    assert a != b and a.is_dir() and b.is_dir()
    stem, date, time_ms, suffix = a.name.split("-")
    assert (stem, len(date), len(suffix)) == ("x", 8, 6)
    assert time_ms[6] == "." and time_ms[7:].isdigit()


def test_latest_follows_the_newest_run(tmp_path: Path) -> None:
    first = new_run_folder("a", tmp_path)
    assert (tmp_path / "latest").resolve() == first.resolve()
    second = new_run_folder("b", tmp_path)
    assert (tmp_path / "latest").resolve() == second.resolve()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".latest")]


def test_latest_leaves_a_real_folder_named_latest_alone(tmp_path: Path) -> None:
    (tmp_path / "latest").mkdir()
    (tmp_path / "latest" / "mine.txt").write_text("keep")
    run = new_run_folder("a", tmp_path)
    assert not point_latest(run)
    assert (tmp_path / "latest" / "mine.txt").read_text() == "keep"


def test_output_folder_not_empty_is_refused(tmp_path: Path) -> None:
    (tmp_path / "journal.json").write_text("{}")
    with pytest.raises(ResultFolderError, match="not empty; use --force"):
        use_folder(tmp_path)
    assert (tmp_path / "journal.json").exists()


def test_force_removes_the_earlier_result(tmp_path: Path) -> None:
    (tmp_path / "scenario.yaml").write_text("name: old")
    (tmp_path / "report.html").write_text("<html>old scenario</html>")
    (tmp_path / "report_files").mkdir()
    (tmp_path / "report_files" / "vm_io.png").write_bytes(b"png")
    use_folder(tmp_path, force=True)
    assert list(tmp_path.iterdir()) == []


def test_force_refuses_a_folder_that_is_no_result(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(ResultFolderError, match="not an hcisim result folder"):
        use_folder(tmp_path, force=True)
    assert (tmp_path / "thesis.tex").exists()


def test_unwritable_output_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ResultFolderError, match="cannot write there"):
        use_folder(tmp_path / "file" / "run")
    with pytest.raises(ResultFolderError, match="is not a folder"):
        use_folder(tmp_path / "file")


def test_missing_output_folder_is_created(tmp_path: Path) -> None:
    assert use_folder(tmp_path / "a" / "b").is_dir()
