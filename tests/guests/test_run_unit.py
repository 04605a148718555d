"""The guest run's pure parts: vdsm's downtime schedule and monitor as the model has them,
the network a migration stream crosses, and the rows that leave the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcisim.lab.guests.links import migration_lab_network, migration_link_mbit
from hcisim.lab.guests.migrate import MigrationPolicy, _Monitor
from hcisim.lab.guests.operations import downtime_limits, policy_for
from hcisim.lab.guests.run import clip
from hcisim.lab.guests.vmstate import StateRow
from hcisim.model.compute.migration import downtime_schedule_ms, step_wait_s
from hcisim.scenario import load_scenario

SC_DIR = Path(__file__).parents[2] / "scenarios"
SC = load_scenario(SC_DIR / "lab-migration-light.yaml")


def test_downtime_steps_are_the_models_schedule() -> None:
    m = SC.compute.migration
    limits, wait = downtime_limits(SC, 1.0)
    model = downtime_schedule_ms(m.downtime_ms, m.downtime_steps)
    assert list(limits) == [max(1, int(v)) for v in model]
    assert wait == pytest.approx(step_wait_s(m, 1.0))
    assert limits[-1] == int(m.downtime_ms)


def test_monitor_steps_the_downtime_from_the_first_new_iteration_as_vdsm() -> None:
    """vdsm: the first limit from the start; the DowntimeThread starts when a sample sees
    the remaining data grow (the model's ``PreCopy._monitor_tick``), sets the next limit at
    once, then one per ``step_wait_s``."""
    pol = MigrationPolicy(downtime_limits_ms=(101, 104, 120), step_wait_s=3.0,
                          monitor_interval_s=1.0, progress_timeout_s=100.0)
    mon = _Monitor(pol, 0.0)
    limits = list(pol.downtime_limits_ms)
    assert mon.sample(0.5, 100) == ""  # not due: samples at 1, 2, 3 ...
    assert mon.samples == 0
    for t, remaining in ((1.0, 100), (2.0, 50)):  # first pass: falling
        assert mon.sample(t, remaining) == ""
        assert mon.due_limits(t, limits) == []
    assert mon.sample(3.0, 80) == ""  # it grew: a new iteration
    assert mon.due_limits(3.0, limits) == [104]
    assert mon.due_limits(5.9, limits) == []
    assert mon.due_limits(6.0, limits) == [120]
    assert mon.due_limits(60.0, limits) == []


def test_monitor_aborts_without_a_new_low_for_the_progress_timeout_and_on_max_time() -> None:
    pol = MigrationPolicy(monitor_interval_s=1.0, progress_timeout_s=2.5, max_time_s=100.0)
    mon = _Monitor(pol, 0.0)
    assert mon.sample(1.0, 50) == ""  # the low mark: 50 at 1 s
    assert mon.sample(2.0, 60) == "" and mon.sample(3.0, 50) == ""  # not lower
    assert mon.sample(4.0, 55).startswith("no progress")  # 3 s > 2.5 s since the low
    late = _Monitor(MigrationPolicy(monitor_interval_s=1.0, max_time_s=2.5), 0.0)
    assert late.sample(1.0, 50) == "" and late.sample(2.0, 40) == ""
    assert late.sample(3.0, 30).startswith("longer than")


def test_policy_scales_the_bandwidth_like_the_guests_ram() -> None:
    pol = policy_for(SC, "vm1", 0.15625)
    assert pol.max_bandwidth_mib_s == pytest.approx(430e6 * 0.15625 / 2**20)
    assert pol.progress_timeout_s == SC.compute.migration.progress_timeout_s
    assert pol.monitor_interval_s == SC.compute.migration.monitor_interval_s


def test_the_stream_uses_the_lab_network_sharing_the_migration_nic() -> None:
    assert migration_lab_network(SC, "host1") == "storage"
    dedicated = load_scenario(SC_DIR / "lab-migration-nic-loss.yaml")
    assert migration_lab_network(dedicated, "host1") == "migration"  # its own link


def test_rows_are_cut_at_the_end_of_the_run() -> None:
    row = StateRow("vm1", "host1", 3.0, 41.0, "running", "started")
    assert clip(row, 30.0) == StateRow("vm1", "host1", 3.0, 30.0, "running", "started")


def test_a_migration_link_of_its_own_is_shaped_to_the_nic_times_the_guest_scale() -> None:
    light_fast = load_scenario(SC_DIR / "lab-migration-light-fast.yaml")
    assert migration_lab_network(light_fast, "host1") == "management"
    assert migration_link_mbit(light_fast, 0.15625) == pytest.approx(
        {h: 1000 * 0.15625 for h in ("host1", "host2", "host3")})
    assert migration_link_mbit(SC, 0.15625) == {}  # shares the storage NIC: not shaped
