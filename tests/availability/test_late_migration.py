"""A live migration months into a run finishes: a pass whose remaining data takes less than
one ulp of the clock used to make the SimPy loop wait 0 s forever (year-long availability
runs hung in their first maintenance window after ~8 months)."""

from __future__ import annotations

import pytest

from hcisim.model.compute.migration import PreCopy
from hcisim.scenario.compute import Migration


@pytest.mark.parametrize("t0", [0.0, 2.08e7, 3.0e8])
def test_pass_ends_at_its_horizon_late_in_a_run(t0: float) -> None:
    pc = PreCopy(4096.0, 1.0, Migration(), t0)
    steps = 0
    while pc.result is None and steps < 1000:
        rate = 1000.0
        pc.advance(max(pc.t, min(pc.horizon(rate), pc.t + 60.0)), rate)
        steps += 1
    assert pc.result is not None, f"no end after {steps} steps at t0={t0}"
    assert pc.result.outcome == "converged"
    # a pass whose remaining data is far below the clock's resolution still ends
    # (1e-8 MB left at the 54.5 MB/s cap is 2e-10 s: below half an ulp of 2.08e7 s)
    pc = PreCopy(4096.0, 1.0, Migration(), t0)
    pc.round_total, pc.round_sent = 1.0, 1.0 - 1e-8
    pc.advance(pc.horizon(1000.0), 1000.0)
    assert pc.rounds == 2 or pc.result is not None
