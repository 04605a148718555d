"""The healed brick's own self-heal daemon heals it too, unless the brick was replaced empty
(hcisim.model.selfheal SelfHeal.healers; measured: calibration part 5 and the validation
matrix's kept daemon logs, docs/calibration.md "Part 5b").

Oracles: the daemons' CHILD_UP events the model records, and the fluid drain of
hcisim.calibration.fit with each daemon joining at its own CHILD_UP (the drain the fit
applies to the lab's readings must be the model's to the last microsecond).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from hcisim.calibration.fit import HealTrial, drain_s
from hcisim.model import simulate
from hcisim.observations import Observations
from hcisim.scenario import Scenario

from .cases import HOSTS
from .test_selfheal_wake import AT, wake_scenario

OWN = "glustershd on host2"
# a per-thread rate that bounds the heal (no CPU cap), one thread per daemon: the drain's
# length says how many daemons healed when
# (heal_noticed_s 0: the fit applies the joins, measured from the first CHILD_UP, from the
# drain's start, which is exact only without a delay before heal)
SLOW: dict[str, Any] = {"heal_thread_mb_s": 20.0, "heal_core_mb_s": 0.0, "heal_entry_s": 0.0,
                        "heal_noticed_s": 0.0}
ONE: dict[str, Any] = {"shd_max_threads": 1}


def _ups(ev: pd.DataFrame, after: float) -> dict[str, float]:
    """Each daemon's first CHILD_UP of host2's brick at or after ``after``."""
    up = ev[(ev["kind"] == "shd_brick_up") & (ev["target"] == "v/host2")
            & (ev["t_s"] >= after - 1e-9)]
    return {str(k): float(v) for k, v in up.groupby("detail")["t_s"].min().items()}


def _first_heal(obs: Observations) -> pd.Series:
    heal = obs["heal"]
    return heal[heal["brick"] == "host2"].sort_values("t_start_s").iloc[0]


def _drains_with(row: pd.Series, daemons: int) -> bool:
    """Whether heal episode ``row`` took the fluid drain of ``daemons`` daemons at one
    thread each, all from its start (20 MB/s a thread, no entry cost, no CPU cap)."""
    shards = int(row["shards"])
    trial = HealTrial(shards, float(row["bytes"]) / shards, daemons, 1e9, 0.0,
                      daemons=daemons)
    return bool(float(row["t_end_s"] - row["t_start_s"])
                == pytest.approx(drain_s(trial, 0.0, 20.0), rel=1e-6))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_after_a_power_loss_the_own_daemon_heals_from_its_start(seed: int) -> None:
    """host2 is off for 60 s: the other daemons' connections gave up on keepalive and come
    back on their SYNs; host2's daemon starts with the host and sees its brick and a
    source at once. Heal starts at the first CHILD_UP of a daemon that can heal (+
    ``heal_noticed_s``), and drains with the daemons joining one by one as they come
    back: the fit's drain with those joins, to the microsecond."""
    sc = wake_scenario("node_power_loss", 60.0, seed, model=SLOW, options=ONE)
    obs = simulate(sc)
    ups = _ups(obs["events"], AT + 60.0)
    assert set(ups) == {f"glustershd on {h}" for h in HOSTS}
    first = _first_heal(obs)
    woke = min(ups.values())
    assert float(first["t_start_s"]) == pytest.approx(woke + sc.model.heal_noticed_s)
    done = float(first["t_end_s"])
    joins = tuple(sorted(t - woke for t in ups.values() if t <= done)[1:])
    daemons = 1 + len(joins)
    shards = int(first["shards"])
    trial = HealTrial(shards, float(first["bytes"]) / shards, daemons, 1e9, 0.0,
                      daemons=daemons, cores=float(daemons), joins_s=joins)
    assert done - woke == pytest.approx(
        sc.model.heal_noticed_s + drain_s(trial, 0.0, 20.0), abs=1e-6)


def test_a_brick_replaced_empty_is_healed_by_the_other_daemons_only() -> None:
    """A failed disk, replaced: its brick's index is gone with it, so host2's daemon has
    nothing of it to heal; host1's and host3's daemons heal it whole (2 threads in flight
    with one per daemon), and once it is whole its own index tracks it again."""
    sc = wake_scenario("disk_failure", 30.0, 1, model=SLOW, options=ONE)  # host2's 1st disk
    first = _first_heal(simulate(sc))
    assert _drains_with(first, 2) and not _drains_with(first, 3)


def test_after_a_brick_crash_all_three_daemons_heal() -> None:
    """A brick crash: every daemon's connection to host2's brick drops (RST) and comes back
    on the same reconnect try, host2's own too, so three daemons heal from the start."""
    sc = wake_scenario("brick_crash", 10.0, 1, model={**SLOW, "reconnect_timer_s": 0.0},
                       options=ONE)
    obs = simulate(sc)
    ups = _ups(obs["events"], AT + 10.0)
    assert len(ups) == 3 and max(ups.values()) - min(ups.values()) < 1e-9
    first = _first_heal(obs)
    assert _drains_with(first, 3) and not _drains_with(first, 2)


def test_once_healed_whole_the_replaced_bricks_own_daemon_heals_it_again() -> None:
    """The replaced brick's own index tracks it again once the others have healed it whole:
    a brick crash of host2 later is healed by all three daemons (3 threads in flight)."""
    sc = wake_scenario("disk_failure", 30.0, 1, model={**SLOW, "reconnect_timer_s": 0.0},
                       options=ONE)
    d = sc.model_dump(mode="json")
    later = {**d["faults"][0], "kind": "brick_crash", "at_s": 900.0, "duration_s": 10.0}
    later.pop("disk", None)
    d["faults"].append(later)
    d["vms"][0]["disks"][0]["size_gb"] = 2  # the rebuild ends well before the crash
    obs = simulate(Scenario.model_validate(d))
    heal = obs["heal"]
    rows = heal[heal["brick"] == "host2"].sort_values("t_start_s")
    first, second = rows.iloc[0], rows[rows["t_start_s"] >= 900.0].iloc[0]
    assert float(first["t_end_s"]) < 900.0
    assert _drains_with(first, 2) and _drains_with(second, 3)


def test_at_power_on_the_own_daemon_reaches_its_brick_one_reconnect_timer_later() -> None:
    """host2's daemon starts with the host, as its brick does; its first connect to its own
    brick asks glusterd's portmap before the brick registered its port: refused, the next
    try on its reconnect timer (the lab's power-ons: 3.01-3.06 s in 37 of 45), while it
    reaches the other bricks at once (0.01-0.04 s). Heal into host2 waits for that (or for
    another daemon's CHILD_UP), not for the first CHILD_UP of a source."""
    sc = wake_scenario("node_power_loss", 60.0, 1, model={"reconnect_timer_s": 3.0})
    m = sc.model
    ev = simulate(sc)["events"]
    repair = AT + 60.0
    mine = ev[(ev["detail"] == OWN) & (ev["t_s"] >= repair - 1e-9)]
    up = mine[mine["kind"] == "shd_brick_up"].groupby("target")["t_s"].min()
    assert up["v/host2"] == pytest.approx(repair + m.reconnect_timer_s + m.reconnect_delay_s)
    assert up["v/host1"] == pytest.approx(repair + m.reconnect_delay_s)
    assert list(mine[mine["kind"] == "shd_brick_down"]["target"]) == ["v/host2"]
    others = ev[(ev["kind"] == "shd_brick_up") & (ev["target"] == "v/host2")
                & (ev["detail"] != OWN) & (ev["t_s"] >= repair)]["t_s"]
    start = float(ev[(ev["kind"] == "heal_start") & (ev["target"] == "v/host2")]["t_s"].min())
    assert start == pytest.approx(min(float(up["v/host2"]), float(others.min()))
                                  + m.heal_noticed_s)


def test_hosts_sharing_one_machines_cores_heal_on_that_pool() -> None:
    """``heal_cpu_pool_cores``: the netns lab's three hosts are namespaces of one two-core
    machine, so three daemons healing side by side have two cores between them, not six
    (calibration part 5b: one daemon alone healed 8 entries in flight at 0.1-0.2 s each,
    three 24 at ~1 s). A CPU-bound heal after a brick crash (three daemons, 8 threads each)
    drains as the fit's drain with that pool; without it, on the three hosts' six cores,
    faster."""
    model = {"heal_thread_mb_s": 200.0, "heal_entry_s": 0.0, "heal_core_mb_s": 100.0,
             "heal_concurrency": 0.5, "reconnect_timer_s": 0.0}

    def first(pool: float | None) -> pd.Series:
        sc = wake_scenario("brick_crash", 10.0, 1, model={**model, "heal_cpu_pool_cores": pool},
                           options={"shd_max_threads": 8})
        d = sc.model_dump(mode="json")
        for h in d["hosts"]:
            h["cores"] = 2
        return _first_heal(simulate(Scenario.model_validate(d)))

    pooled, free = first(2.0), first(None)
    shards = int(pooled["shards"])
    trial = HealTrial(shards, float(pooled["bytes"]) / shards, 24, 1e9, 0.0, daemons=3,
                      cores=6.0, pool_cores=2.0)
    took = float(pooled["t_end_s"] - pooled["t_start_s"])
    assert float(pooled["t_end_s"]) < 1500.0  # done within the run
    assert took == pytest.approx(drain_s(trial, 0.0, 200.0, 100.0, 0.5), rel=1e-6)
    assert float(free["t_end_s"] - free["t_start_s"]) < 0.5 * took
