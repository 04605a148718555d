"""A writer that dies or loses its quorum mid-write leaves AFR's dirty flag on every brick.

Read in the validation matrix's kept self-heal daemon logs (docs/model.md "Interrupted
writes"): after every power loss and partition of host2, all 16 shards of vm2's disk were
healed ``sources=[2] sinks=0 1`` (replica 3) or ``sources=[1] sinks=0 2`` (arbiter), never
after a hang, a brick crash or a disk failure. The model: the disk's writes of the last
``POST_OP_DELAY_S`` are dirty on every data brick but the last, without blame.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from hcisim.calibration.cases import fault, lab_scenario
from hcisim.model import simulate
from hcisim.model.heal import POST_OP_DELAY_S
from hcisim.scenario import Scenario

SHARD = 4 * 1024 * 1024


def _run(kind: str, **kw: object) -> tuple[Scenario, dict[str, pd.DataFrame]]:
    sc = lab_scenario(f"iw-{kind}", [fault(kind, 11.3, 15)], 60, **kw)  # type: ignore[arg-type]
    obs = simulate(sc)
    return sc, {"events": obs["events"], "heal": obs["heal"]}


def _dead_writer_shards(sc: Scenario, vm: str) -> int:
    """Whole shards the last second of ``vm``'s random writes touched: the coupon collector
    over its disk's shards, rounded up (one write dirties a whole shard)."""
    v = sc.vm(vm)
    d = v.disks[0]
    prof = sc.io_profile(d.io)
    assert prof is not None and prof.iops is not None
    n = math.ceil(d.size_gb * 1e9 / SHARD)
    k = float(prof.iops) * (1 - prof.read_pct / 100) * POST_OP_DELAY_S
    return math.ceil(n * (1 - math.pow(1 - 1 / n, k)) - 1e-9)


def test_power_loss_heals_the_dead_writers_shards_into_every_brick_but_the_last() -> None:
    sc, obs = _run("node_power_loss")
    ev, heal = obs["events"], obs["heal"]
    cut = ev[ev["kind"] == "writes_interrupted"]
    assert list(cut["target"]) == ["data/vm2"]
    assert float(cut["t_s"].iloc[0]) == pytest.approx(11.3)  # with the host
    assert "healed from host3 into host1, host2" in str(cut["detail"].iloc[0])
    n = _dead_writer_shards(sc, "vm2")
    assert 1 <= n <= 16
    into1 = heal[heal["brick"] == "host1"]
    assert list(into1["shards"]) == [n] and list(into1["bytes"]) == [n * SHARD]
    assert heal[heal["brick"] == "host3"].empty  # the source
    # host2 heals what it missed of vm1 and vm3 and vm2's own last shards
    assert int(heal[heal["brick"] == "host2"]["shards"].sum()) >= n


def test_arbiter_heals_them_from_its_last_data_brick() -> None:
    """Data bricks host1 and host2: host2 (the one that lost power) is the source of vm2's
    shards, host1 their only data sink (it still counts as a good copy meanwhile:
    tests/model/test_catalogue.py, arbiter-power-loss)."""
    sc, obs = _run("node_power_loss", volume_type="arbiter")
    heal = obs["heal"]
    n = _dead_writer_shards(sc, "vm2")
    assert list(heal[heal["brick"] == "host1"]["shards"]) == [n]
    assert "healed from host2 into host1" in str(
        obs["events"][obs["events"]["kind"] == "writes_interrupted"]["detail"].iloc[0])


@pytest.mark.parametrize("kind", ["partition", "nic_loss"])
def test_a_client_that_loses_quorum_interrupts_its_writes_when_it_knows(kind: str) -> None:
    """Cut off, vm2's client stalls until its ping timer fires, then fails (ENOTCONN): the
    writes it had in flight are abandoned then."""
    _sc, obs = _run(kind)
    ev = obs["events"]
    cut = ev[ev["kind"] == "writes_interrupted"]
    paused = ev[(ev["kind"] == "vm_paused") & (ev["target"] == "vm2")]
    assert list(cut["target"]) == ["data/vm2"]
    assert float(cut["t_s"].iloc[0]) == pytest.approx(float(paused["t_s"].iloc[0]))
    assert not obs["heal"][obs["heal"]["brick"] == "host1"].empty


@pytest.mark.parametrize("kind", ["node_hang", "brick_crash", "brick_hang", "disk_failure"])
def test_writers_that_live_on_interrupt_nothing(kind: str) -> None:
    """A hung host's writer resumes and finishes its transactions; a brick fault leaves
    every writer running: no heal into the bricks that stayed up."""
    _sc, obs = _run(kind)
    assert (obs["events"]["kind"] != "writes_interrupted").all()
    assert obs["heal"][obs["heal"]["brick"] != "host2"].empty


def test_interrupted_twice_stays_unblamed_and_a_missed_write_accuses() -> None:
    """The books of one brick: interrupted writes leave a disk pending but unblamed (not
    stale), a second interruption too; a write the brick then misses accuses it."""
    from hcisim.model.heal import BrickHeal

    h = BrickHeal(brick=None, shard_bytes=float(SHARD))  # type: ignore[arg-type]
    h.interrupted("vm2#0", 16, 42 * 8192.0, 42.0, True)
    h.interrupted("vm2#0", 16, 42 * 8192.0, 42.0, True)
    assert h.pending_shards() > 0 and h.stale_map() == {} and h.unblamed == {"vm2#0"}
    h.missed_writes("vm2#0", 16, 8192.0, 1.0, True)
    assert set(h.stale_map()) == {"vm2#0"} and not h.unblamed
