"""The guest run's pure parts: vdsm's downtime schedule as the model has it, the network a
migration stream crosses, and the rows that leave the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcisim.lab.guests.run import clip, downtime_steps, migration_network, policy_for
from hcisim.lab.guests.vmstate import StateRow
from hcisim.model.compute.migration import downtime_schedule_ms, step_wait_s
from hcisim.scenario import load_scenario

SC = load_scenario(Path(__file__).parents[2] / "scenarios" / "lab-migration-light.yaml")


def test_downtime_steps_are_the_models_schedule() -> None:
    m = SC.compute.migration
    steps = downtime_steps(SC, 1.0)
    limits = downtime_schedule_ms(m.downtime_ms, m.downtime_steps)
    wait = step_wait_s(m, 1.0)
    assert [ms for _, ms in steps] == [max(1, int(v)) for v in limits]
    assert [t for t, _ in steps] == pytest.approx([i * wait for i in range(len(limits))])
    assert steps[-1][1] == int(m.downtime_ms)


def test_policy_scales_the_bandwidth_like_the_guests_ram() -> None:
    pol = policy_for(SC, "vm1", 0.15625)
    assert pol.max_bandwidth_mib_s == pytest.approx(430e6 * 0.15625 / 2**20)
    assert pol.progress_timeout_s == SC.compute.migration.progress_timeout_s


def test_the_stream_uses_the_lab_network_sharing_the_migration_nic() -> None:
    assert migration_network(SC, "host1") == "storage"


def test_rows_are_cut_at_the_end_of_the_run() -> None:
    row = StateRow("vm1", "host1", 3.0, 41.0, "running", "started")
    assert clip(row, 30.0) == StateRow("vm1", "host1", 3.0, 30.0, "running", "started")
