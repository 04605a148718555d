"""The fits recover known parameters from trials their own mechanism generated, and keep
the base value of what the trials cannot pin down."""

from __future__ import annotations

import pytest

from hcisim.calibration.fit import (
    HealTrial,
    StallTrial,
    detection_stalls,
    drain_s,
    fit_detection,
    fit_heal,
    fit_reconnect,
)
from hcisim.model.pingtimer import detect_known_phase

RTT = 0.05e-3


def _stall_trials(anchor: float, late: float) -> list[StallTrial]:
    trials = [StallTrial(8.0 + i * t / 10, t, RTT, 0.0) for t in (3.0, 5.0, 10.0)
              for i in range(10)]
    stalls = detection_stalls(trials, anchor, late)
    return [StallTrial(t.fault_s, t.ping_timeout_s, t.rtt_s, float(s))
            for t, s in zip(trials, stalls, strict=True)]


def test_detection_stall_is_the_model_mechanism_without_lateness() -> None:
    trials = _stall_trials(-2.0, 0.0)
    for t in trials:
        det = detect_known_phase(t.fault_s, -2.0, t.ping_timeout_s, RTT)
        assert t.stall_s == pytest.approx(det.stall_s, abs=1e-9)
        assert t.ping_timeout_s - RTT <= t.stall_s <= 2 * t.ping_timeout_s + RTT


@pytest.mark.parametrize(("anchor", "late"), [(-2.0, 0.0), (-1.3, 0.2), (-0.4, 0.55)])
def test_detection_fit_recovers_anchor_and_lateness(anchor: float, late: float) -> None:
    f = fit_detection(_stall_trials(anchor, late), 0.0, 0.0)
    assert f.values["detection_anchor_s"] == pytest.approx(anchor, abs=0.011)
    assert f.values["ping_timer_late_s"] == pytest.approx(late, abs=0.006)
    rms = f.rms([t.stall_s for t in _stall_trials(anchor, late)])
    assert rms is not None and rms < 0.02


def test_reconnect_fit_is_the_mean() -> None:
    f = fit_reconnect([3.1, 3.5, 3.9])
    assert f.values["reconnect_delay_s"] == pytest.approx(3.5)
    assert f.predicted == (3.5, 3.5, 3.5)
    assert fit_reconnect([]).values["reconnect_delay_s"] == 0.0


def _heal_trials(noticed: float, entry: float, rate: float) -> list[HealTrial]:
    shapes = [(n, s, k) for n in (8, 32) for s in (4 * 2**20, 64 * 2**20) for k in (1, 8)]
    out = []
    for n, s, k in shapes:
        t = HealTrial(n, float(s), k, 100.0, 0.0)
        out.append(HealTrial(n, float(s), k, 100.0, noticed + drain_s(t, entry, rate)))
    return out


def test_heal_drain_is_the_harmonic_tail_of_the_model() -> None:
    """8 shards of 64 MiB with 8 threads at 20 MB/s: H_8 x 3.36 s = 9.1 s (docs/model.md)."""
    t = HealTrial(8, 64 * 2**20, 8, 1e9, 0.0)
    assert drain_s(t, 0.0, 20.0) == pytest.approx(9.12, abs=0.01)
    capped = HealTrial(8, 64 * 2**20, 8, 40.0, 0.0)
    assert drain_s(capped, 0.0, 20.0) > drain_s(t, 0.0, 20.0)


def test_heal_fit_recovers_noticed_entry_and_rate_with_two_shard_sizes() -> None:
    f = fit_heal(_heal_trials(2.5, 0.3, 12.0), 3.0, 0.0, 20.0)
    assert f.values["heal_noticed_s"] == pytest.approx(2.5, abs=0.1)
    assert f.values["heal_entry_s"] == pytest.approx(0.3, abs=0.03)
    assert f.values["heal_thread_mb_s"] == pytest.approx(12.0, rel=0.1)


def test_heal_drain_with_a_cpu_cap() -> None:
    """Two daemons on hosts of 2 cores, capped at 5 MB/s per core: 8 shards of 64 MiB at
    20 MB/s per thread cannot go faster than 20 MB/s together, whatever the threads:
    8 x 67.1 MB / 20 MB/s = 26.8 s."""
    t = HealTrial(8, 64 * 2**20, 16, 1e9, 0.0, daemons=2, cores=4)
    assert drain_s(t, 0.0, 20.0, 5.0) == pytest.approx(8 * 64 * 2**20 / 20e6, rel=1e-9)
    assert drain_s(t, 0.0, 20.0, 0.0) == drain_s(t, 0.0, 20.0)  # 0: no cap


def test_heal_fit_recovers_the_cpu_cap_with_two_thread_counts() -> None:
    """Trials of 1 and 8 threads per daemon (two daemons on 2-core hosts), two shard sizes,
    two backlogs, made by the drain with a 7.5 MB/s per-core cap (30 MB/s in all): the fit
    finds all four parameters."""
    out = []
    for n, s, k in [(n, s, k) for n in (8, 40) for s in (4 * 2**20, 64 * 2**20)
                    for k in (1, 8)]:
        t = HealTrial(n, float(s), 2 * k, 1e9, 0.0, daemons=2, cores=4)
        out.append(HealTrial(n, float(s), 2 * k, 1e9, 2.5 + drain_s(t, 0.3, 12.0, 7.5),
                             daemons=2, cores=4))
    f = fit_heal(out, 3.0, 0.0, 20.0, 0.0)
    assert f.values["heal_core_mb_s"] == pytest.approx(7.5, rel=0.05)
    assert f.values["heal_thread_mb_s"] == pytest.approx(12.0, rel=0.1)
    assert f.values["heal_entry_s"] == pytest.approx(0.3, abs=0.03)
    assert f.values["heal_noticed_s"] == pytest.approx(2.5, abs=0.1)
    rms = f.rms([t.duration_s for t in out])
    assert rms is not None and rms < 0.1  # grid steps of 1.3 % and 3-decimal values


def test_heal_fit_recovers_the_concurrency_cost() -> None:
    """Trials made by the drain with a per-core cap that falls with the entries in flight
    per core (concurrency 0.8: 16 entries on 4 cores heal at 30 / 3.4 MB/s in all), 1 and
    8 threads per daemon, two shard sizes and backlogs: the fit finds it, and the cap."""
    out = []
    for n, s, k in [(n, s, k) for n in (8, 40) for s in (4 * 2**20, 64 * 2**20)
                    for k in (1, 8)]:
        t = HealTrial(n, float(s), 2 * k, 1e9, 0.0, daemons=2, cores=4)
        out.append(HealTrial(n, float(s), 2 * k, 1e9,
                             2.5 + drain_s(t, 0.3, 12.0, 7.5, 0.8), daemons=2, cores=4))
    f = fit_heal(out, 3.0, 0.0, 20.0, 0.0)
    assert f.values["heal_concurrency"] == pytest.approx(0.8, rel=0.1)
    assert f.values["heal_core_mb_s"] == pytest.approx(7.5, rel=0.1)
    rms = f.rms([t.duration_s for t in out])
    assert rms is not None and rms < 0.1
    # no cost in the trials: none found
    flat = [HealTrial(t.shards, t.shard_bytes, t.threads, t.cap_mb_s,
                      2.5 + drain_s(t, 0.3, 12.0, 7.5), daemons=2, cores=4) for t in out]
    assert fit_heal(flat, 3.0, 0.0, 20.0, 0.0).values["heal_concurrency"] == 0.0


def test_heal_fit_with_one_thread_count_keeps_the_base_cpu_cap() -> None:
    f = fit_heal([t for t in _heal_trials(2.5, 0.3, 12.0) if t.threads == 8], 3.0, 0.0,
                 20.0, 7.0)
    assert f.values["heal_core_mb_s"] == 7.0


def test_heal_fit_with_one_shard_size_keeps_the_base_rate() -> None:
    trials = [t for t in _heal_trials(2.5, 0.3, 20.0) if t.shard_bytes == 4 * 2**20]
    f = fit_heal(trials, 3.0, 0.0, 20.0)
    assert f.values["heal_thread_mb_s"] == 20.0
    assert f.values["heal_entry_s"] == pytest.approx(0.3, abs=0.03)
