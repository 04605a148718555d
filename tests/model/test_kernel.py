"""The kernel's shortcuts (issue 16): a settle skips what cannot have changed, and the fixed
point of client views raises instead of stopping silently when it does not converge."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hcisim.model.engine import SettleError, StorageModel
from hcisim.model.io import DiskPlan
from hcisim.model.recording import RECORD_LEVELS, RecordLevel
from hcisim.scenario import Scenario

from .cases import scenarios
from .test_examples import OLTP, scenario, vm


def _model() -> StorageModel:
    sc: Scenario = scenario([vm("a", "host1", OLTP), vm("b", "host2", OLTP)], [])
    return StorageModel(sc)


def test_world_fingerprint_sees_every_mark_and_forgets_ended_ones() -> None:
    m = _model()
    w = m.world
    clean = w.fingerprint()
    marks: list[tuple[Counter[Any], Any]] = [
        (w.powered_off, "host2"), (w.hung, "host3"), (w.crashed, "data/host1"),
        (w.disk_failed, ("host1", "brick0")), (w.cuts, (frozenset(("host1", "host2")), "all"))]
    for counter, key in marks:
        counter[key] += 1
        assert w.fingerprint() != clean
        counter[key] -= 1  # a counter back at zero is the world it was
        assert w.fingerprint() == clean
    w.maintenance.add("host1")
    assert w.fingerprint() != clean


def test_settle_that_does_not_converge_raises() -> None:
    m = _model()
    m.apply(m.port.apply_queued)  # first settle: views at their fixed point
    m.views.reconcile = lambda t: True  # type: ignore[method-assign]  # always "changed"
    m.world.crashed["data/host1"] += 1  # a new world: views must be reconciled
    with pytest.raises(SettleError, match="still changing after 8 rounds"):
        m.settle()


def test_settle_with_an_unchanged_world_does_not_reconcile_views() -> None:
    m = _model()
    m.apply(m.port.apply_queued)
    calls: list[float] = []

    def reconcile(t: float) -> bool:
        calls.append(t)
        return False

    m.views.reconcile = reconcile  # type: ignore[method-assign]
    m.settle()
    assert calls == []
    m.world.crashed["data/host1"] += 1
    m.settle()
    assert len(calls) == 1


def test_plans_are_rebuilt_only_when_something_they_depend_on_changed() -> None:
    m = _model()
    m.apply(m.port.apply_queued)
    derived = 0
    derive = m._plans

    def counting(t: float) -> dict[str, DiskPlan]:
        nonlocal derived
        derived += 1
        return derive(t)

    m._plans = counting  # type: ignore[method-assign]
    plans = m.plans
    m.apply(lambda: None)  # a heal milestone: nothing a plan reads changed
    assert m.plans is plans and derived == 0
    for change in (m._set_load(("a",), 0.5), lambda: m.pause_vm("b", True),
                   lambda: m.place_vm("b", "host3"), lambda: m.maintenance("host3", True)):
        m.apply(change)
        assert derived == 1, change
        plans, derived = m.plans, 0
    m.world.crashed["data/host1"] += 1  # the world (then the views) changed
    m.apply(lambda: None)
    assert derived == 1
    plans, derived = m.plans, 0
    m.heal.blamed_version += 1  # the bricks blamed for a disk changed
    m.apply(lambda: None)
    assert derived == 1
    # nobody is blamed for anything more: every plan is kept, and so is the very dict
    # (its readers tell by ``is`` that nothing moved: vm_io, the disk flows)
    assert m.plans is plans


class _AlwaysFreshPlans(StorageModel):
    """The model without the plan shortcuts: every settle derives every plan again, as a
    new object."""

    def settle(self) -> None:
        self._plans_key = None
        self._plan_sources.clear()
        super().settle()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(max_faults=4), st.sampled_from(RECORD_LEVELS))
def test_kept_plans_give_the_tables_of_fresh_plans(sc: Scenario, level: RecordLevel) -> None:
    """Keeping the plans (all of them when nothing they depend on changed, each one whose
    inputs are the same) is exact: the same tables as deriving every plan again at every
    change, at every record level (the intervals level also keeps the statuses it
    recorded)."""
    kept = StorageModel(sc, record=level).run()
    fresh = _AlwaysFreshPlans(sc, record=level).run()
    for name in kept.tables:
        pd.testing.assert_frame_equal(kept[name], fresh[name], check_exact=True)
