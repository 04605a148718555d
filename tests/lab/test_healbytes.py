"""The bytes a returning brick receives by heal, from brick process write counters."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from hcisim.lab.healbytes import BrickIo, heal_received, read_brick_io


def fake_proc(root: Path, pid: int, argv: list[str], written: int) -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (d / "io").write_text(f"rchar: 1\nwchar: 2\nread_bytes: 0\nwrite_bytes: {written}\n"
                          "cancelled_write_bytes: 0\n")


def test_reads_the_counter_only_of_the_process_serving_that_brick(tmp_path: Path) -> None:
    fake_proc(tmp_path, 41, ["/usr/sbin/glusterfsd", "--brick-name", "/b/data"], 4096)
    fake_proc(tmp_path, 42, ["/usr/sbin/glusterfsd", "--brick-name", "/b/data2"], 8192)
    assert read_brick_io(41, "/b/data", tmp_path) == BrickIo(41, 4096)
    assert read_brick_io(42, "/b/data", tmp_path) is None  # a prefix is not the brick
    assert read_brick_io(43, "/b/data", tmp_path) is None  # gone


def series(values: Sequence[tuple[int, int] | None], dt: float = 1.0
           ) -> list[tuple[float, BrickIo | None]]:
    return [(i * dt, None if v is None else BrickIo(*v)) for i, v in enumerate(values)]


def test_same_process_subtracts_what_a_quiet_data_brick_wrote() -> None:
    # polls at 0..5: the brick is cut off at 1-2 (flat), heals 30 from 3 to 5 while the
    # foreground writes 2 per poll to every reachable brick
    ref = series([(7, 100), (7, 102), (7, 104), (7, 106), (7, 108), (7, 110)])
    ret = series([(8, 100), (8, 100), (8, 100), (8, 112), (8, 124), (8, 136)])
    assert heal_received([ref, ret], 1, [0], back_at=2.0, end=5.0) == 30.0


def test_a_restarted_brick_counts_from_its_first_poll() -> None:
    ref = series([(7, 100), (7, 102), (7, 104), (7, 106), (7, 108)])
    ret = series([(8, 100), None, (9, 15), (9, 27), (9, 29)])  # killed, restarted at 2
    assert heal_received([ref, ret], 1, [0], back_at=1.0, end=4.0) == 29 - (108 - 104)


def test_a_lagging_counter_poller_is_read_after_the_heal_ended() -> None:
    """The heal poll saw the heal over at 3.5, but the counter poller (stalled under load)
    last read at 3.0, before the heal's last 8 of 20: the first readings at or after the end
    hold them, on both bricks (the foreground over the same polls cancels)."""
    ref = series([(7, 100), (7, 102), (7, 104), (7, 106), (7, 108)])
    ret = series([(9, 0), (9, 2), (9, 10), (9, 18), (9, 28)])  # restarted at 0, heals 24
    assert heal_received([ref, ret], 1, [0], back_at=None, end=3.5) == 28 - (108 - 100)


def test_no_answer_without_a_reference_that_kept_one_process() -> None:
    ref = series([(7, 100), (7, 102), (5, 1), (5, 3)])  # the reference restarted too
    ret = series([(8, 100), (8, 100), (8, 110), (8, 120)])
    assert heal_received([ref, ret], 1, [0], back_at=1.0, end=3.0) is None
    assert heal_received([ref, ret], 1, [], back_at=1.0, end=3.0) is None


@given(fg=st.lists(st.integers(0, 10**7), min_size=6, max_size=6),
       heal=st.lists(st.integers(0, 10**7), min_size=3, max_size=3),
       before=st.integers(0, 10**9))
def test_recovers_the_heal_bytes_whatever_the_foreground(fg: list[int], heal: list[int],
                                                         before: int) -> None:
    """Oracle: the returning brick gets every foreground write after it is back plus the
    heal; the quiet brick gets every foreground write. The difference is the heal."""
    ref_w, ret_w, ref, ret = before, before, [], []
    for i in range(6):
        ref_w += fg[i]
        if i >= 3:  # back from poll 3 on
            ret_w += fg[i] + heal[i - 3]
        ref.append((1, ref_w))
        ret.append((2, ret_w))
    got = heal_received([series(ref), series(ret)], 1, [0], back_at=2.0, end=5.0)
    assert got == float(sum(heal))
