"""Resampling interval tables onto the plot grid: exact integrals, no lost stalls."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.report.series import band, bin_sums, grid, vm_series


@settings(max_examples=60, deadline=None)
@given(pieces=st.lists(st.tuples(st.floats(0.0, 50.0), st.floats(0.1, 50.0),
                                 st.floats(0.0, 100.0)), min_size=1, max_size=8),
       bins=st.integers(1, 40))
def test_bin_sums_equal_the_exact_overlap_integral(pieces: list[tuple[float, float, float]],
                                                   bins: int) -> None:
    """Oracle: brute-force overlap of every interval with every bin (gaps between
    intervals are allowed and count as zero)."""
    t, rows = 0.0, []
    for gap, length, value in pieces:
        rows.append((t + gap, t + gap + length, value))
        t += gap + length
    t0, t1, v = (np.array(c) for c in zip(*rows, strict=True))
    edges = grid(t * 1.1, bins)
    got = bin_sums(t0, t1, v, edges)
    want = [sum(val * max(0.0, min(b, e) - max(a, s)) for s, e, val in rows)
            for a, b in itertools.pairwise(edges)]
    assert got == pytest.approx(want, rel=1e-9, abs=1e-6)
    assert got.sum() == pytest.approx(float(((t1 - t0) * v).sum()), rel=1e-9)


def _io(rows: list[tuple[float, float, float, str]]) -> pd.DataFrame:
    return pd.DataFrame([{"volume": "data", "t_start_s": a, "t_end_s": b, "read_mb_s": mb,
                          "write_mb_s": 0.0, "latency_p99_ms": 2.0 if s == "ok" else np.nan,
                          "status": s} for a, b, mb, s in rows])


def test_a_stall_shorter_than_a_bin_still_shows() -> None:
    io = _io([(0, 100.5, 10.0, "ok"), (100.5, 101.0, 0.0, "stalled"), (101, 400, 10.0, "ok")])
    s = vm_series(io, grid(400.0, 40))  # 10 s bins: the stall is 0.5 s of bin 10
    assert s.stalled[10] == pytest.approx(0.05)
    assert np.count_nonzero(s.stalled) == 1
    assert s.mb_s[10] == pytest.approx(9.5)
    assert s.p99_ms[10] == pytest.approx(2.0)  # mean over the time with I/O ok


def test_latency_is_missing_where_nothing_completed() -> None:
    io = _io([(0, 100, 10.0, "ok"), (100, 200, 0.0, "error")])
    s = vm_series(io, grid(200.0, 2))
    assert s.p99_ms[0] == pytest.approx(2.0) and np.isnan(s.p99_ms[1])


def test_band_ignores_vms_without_a_value() -> None:
    lo, med, hi = band(np.array([[1.0, np.nan], [3.0, np.nan], [2.0, 5.0]]))
    assert (lo[0], med[0], hi[0]) == (1.0, 2.0, 3.0)
    assert (lo[1], med[1], hi[1]) == (5.0, 5.0, 5.0)
