"""The compiled pre-copy steps (hcisim/model/compute/precopy_kernel.py) against the Python
ones (PreCopy.step): a migration run ahead batch by batch either way, at rates that change
between batches, has the same state after every batch, bit for bit (every attribute's
repr: floats to the last bit and sign, ints stay ints, None stays None), the same steps,
the same wake and the same result."""

from __future__ import annotations

from typing import Any

import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.model.compute import live, migration, precopy_kernel
from hcisim.model.compute.migration import GuestMemory, PreCopy
from hcisim.scenario.compute import Migration

RATES = [0.0, 1e-3, 5.0, 30.0, 54.52595, 100.0, 125.0, 1250.0, 3000.0]


@st.composite
def migrations(draw: st.DrawFn) -> tuple[GuestMemory, Migration, float]:
    mem = GuestMemory.of(
        float(draw(st.sampled_from([0.5, 1, 2, 4, 8, 16]))),
        float(draw(st.sampled_from([0.0, 1.0, 10.0, 50.0, 200.0, 1000.0]))),
        draw(st.sampled_from([None, 0.1, 0.5, 2.0])),
        draw(st.sampled_from([None, 0.25, 1.0, 3.0])))
    s = Migration(
        policy=draw(st.sampled_from(["minimal_downtime", "suspend_workload_if_needed",
                                     "post_copy"])),
        max_bandwidth_mb_s=draw(st.sampled_from([54.52595, 30.0, 1000.0])),
        downtime_ms=draw(st.sampled_from([100.0, 500.0, 2000.0])),
        downtime_steps=draw(st.sampled_from([1, 3, 5])),
        max_rounds=draw(st.sampled_from([2, 5, 30])),
        progress_timeout_s=draw(st.sampled_from([20.0, 240.0])),
        downtime_delay_per_gib_s=draw(st.sampled_from([0.0, 7.5, 75.0])),
        max_time_per_gib_s=draw(st.sampled_from([0.0, 8.0, 64.0])),
        setup_ms=draw(st.sampled_from([0.0, 20.0])),
        sync_ms_per_gib=draw(st.sampled_from([0.0, 2.0])),
        switchover_ms=draw(st.sampled_from([0.0, 15.0])),
        send_buffer_mb=draw(st.sampled_from([0.0, 4.194304])))
    t0 = draw(st.sampled_from([0.0, 12_345.678, 3.1e7 + 0.1, 0]))  # int: Python steps
    return mem, s, t0


def _state(pc: PreCopy) -> str:
    return repr(sorted(vars(pc).items()))


def _active(pc: PreCopy) -> Any:
    return live._Active("vm", "a", "b", simpy.Environment().event(), pc)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(migrations(), st.lists(st.tuples(st.sampled_from(RATES), st.sampled_from([1, 3, 64])),
                              min_size=1, max_size=40))
def test_compiled_steps_are_the_python_steps(
        m: tuple[GuestMemory, Migration, float], batches: list[tuple[float, int]]) -> None:
    mem, s, t0 = m
    py, nb = PreCopy(mem, s, t0), PreCopy(mem, s, t0)
    a_py, a_nb = _active(py), _active(nb)
    now = t0
    for rate, limit in batches:
        if py.result is not None:
            break
        a_py.rate = a_nb.rate = rate
        expected = live._run_ahead_in_python(a_py, now, limit)
        got = live._run_ahead(a_nb, now, limit)
        assert got == expected
        assert a_nb.steps == a_py.steps
        assert _state(nb) == _state(py)
        now = got[0]
    assert nb.result == py.result


def test_the_kernel_uses_the_migration_constants() -> None:
    """The kernel's copies of migration.py's constants are the same numbers."""
    for name in ("_EPS", "WIRE_PER_PAGE_BYTE", "THROTTLE_TRIGGER", "THROTTLE_INITIAL",
                 "THROTTLE_INCREMENT", "THROTTLE_MAX", "BUFFER_DELAY_S"):
        assert getattr(precopy_kernel, name) == getattr(migration, name), name
    assert set(precopy_kernel.PHASES) == set(migration.DEAD_TIME | migration.STOPPED | {
        "copy", "post_copy", "done"})
