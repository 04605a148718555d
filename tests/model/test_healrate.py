"""The heal-rate formulas shared by the model, the fit and the capacity planner: a float
call and an array call give the same numbers (the fit evaluates on arrays what the model
evaluates on floats), and the formulas' shape by hand."""

from __future__ import annotations

import numpy as np
import pytest

from hcisim.model.healrate import heal_cpu_mb_s, heal_thread_mb_s


def test_cpu_cap_by_hand() -> None:
    """Up to one entry in flight per core: every core at its rate; beyond: each entry per
    core beyond one costs ``concurrency`` of it (16 on 2 cores, 2.6: 8 x 41.5 / 19.2)."""
    assert heal_cpu_mb_s(2.0, 41.5, 1, 2.6) == 83.0
    assert heal_cpu_mb_s(2.0, 41.5, 2, 2.6) == 83.0
    assert heal_cpu_mb_s(2.0, 41.5, 16, 2.6) == pytest.approx(83.0 / (1 + 2.6 * 7))
    assert heal_cpu_mb_s(2.0, 41.5, 16, 0.0) == 83.0  # no concurrency cost: cores x rate


def test_floats_and_arrays_agree_bit_for_bit() -> None:
    n = np.arange(1.0, 33.0)
    kappa = np.array([0.0, 0.5, 2.599, 20.0])
    grid = heal_cpu_mb_s(4.0, 41.521, n[None, :], kappa[:, None])
    assert grid.shape == (4, 32)
    for i, k in enumerate(kappa):
        for j, m in enumerate(n):
            assert grid[i, j] == heal_cpu_mb_s(4.0, 41.521, float(m), float(k))


def test_thread_rate_pays_the_entry_cost_per_shard() -> None:
    """64 MiB at 50 MB/s and 0.05 s an entry: 67.1 MB in 1.342 + 0.05 s; none: the rate."""
    mib64 = 64 * 2**20
    assert heal_thread_mb_s(mib64, 50.0, 0.05) == pytest.approx(
        mib64 / 1e6 / (mib64 / 1e6 / 50.0 + 0.05))
    assert heal_thread_mb_s(mib64, 50.0, 0.0) == 50.0
    assert heal_thread_mb_s(4 * 2**20, 50.0, 0.05) < heal_thread_mb_s(mib64, 50.0, 0.05)
