"""A live migration months into a run finishes: a pass whose remaining data takes less than
one ulp of the clock used to make the SimPy loop wait 0 s forever (year-long availability
runs hung in their first maintenance window after ~8 months)."""

from __future__ import annotations

from typing import Any

import pytest

from hcisim.model.compute import migration
from hcisim.scenario.compute import Migration


def precopy(t0: float) -> Any:
    """A 4 GiB guest's migration starting at ``t0`` (the constructor changed when migration
    became mechanistic: a GuestMemory instead of RAM and dirty rate)."""
    memory = getattr(migration, "GuestMemory", None)
    if memory is not None:
        return migration.PreCopy(memory.of(4.0, 1.0), Migration(), t0)
    return migration.PreCopy(4096.0, 1.0, Migration(), t0)  # type: ignore[call-arg,arg-type]


def state(pc: Any) -> tuple[object, ...]:
    return (pc.round_total, pc.round_sent, getattr(pc, "phase", None), pc.rounds, pc.result)


@pytest.mark.parametrize("t0", [0.0, 2.08e7, 3.0e8])
def test_pass_ends_at_its_horizon_late_in_a_run(t0: float) -> None:
    pc = precopy(t0)
    steps = 0
    while pc.result is None and steps < 1000:
        pc.advance(max(pc.t, min(pc.horizon(1000.0), pc.t + 60.0)), 1000.0)
        steps += 1
    assert pc.result is not None, f"no end after {steps} steps at t0={t0}"
    # a pass whose remaining data is far below the clock's resolution still ends:
    # 1e-8 MB left at the 54.5 MB/s cap is 2e-10 s, below half an ulp of 2.08e7 s
    pc = precopy(t0)
    while getattr(pc, "phase", "copy") != "copy" and pc.result is None:  # setup: no data
        pc.advance(pc.horizon(1000.0), 1000.0)
    pc.round_total, pc.round_sent = 1.0, 1.0 - 1e-8
    before = state(pc)
    pc.advance(pc.horizon(1000.0), 1000.0)
    assert state(pc) != before
