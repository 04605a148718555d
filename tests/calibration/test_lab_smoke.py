"""CI smoke on the netns lab: two cheap experiments once give a profile whose parameters are
the fits of its own recorded measurements; one validation case gives its table.

Functional only (the machine is shared): no timing is judged beyond the mechanism's bounds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hcisim.calibration.campaign import syn_linear_timeouts
from hcisim.calibration.fit import (
    ReconnectTrial,
    StallTrial,
    fit_detection,
    fit_reconnect_mechanism,
    reconnect_wait_s,
)
from hcisim.scenario.profile import load_profile

from .test_campaign import hcisim

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_calibrate_smoke_writes_a_profile_fitted_to_its_measurements(tmp_path: Path) -> None:
    out = tmp_path / "smoke.yaml"
    r = hcisim("calibrate", "--engine", "lab+netns", "--experiments",
               "detection-quick,reconnect-quick", "-o", str(out))
    assert r.exit_code == 0, r.stderr
    p = load_profile(out)
    base = load_profile()
    assert p.engine == "lab+netns" and p.gluster_version.startswith("10.")
    assert p.machine.glusterfs and p.machine.load_avg_1m
    stalls = [m for m in p.measurements if m.quantity == "stall"]
    recon = [m for m in p.measurements if m.quantity == "reconnect"]
    assert len(stalls) == 2 and len(recon) == 1
    for m in stalls:  # silent loss at T = 3 s: between T and 2T, plus a loaded machine's lag
        assert 3.0 - 0.2 <= m.measured <= 2 * 3.0 + 2.0
    # the parameters are the fits of the measurements written beside them
    again = fit_detection([StallTrial(float(m.inputs["fault_s"]),
                                      float(m.inputs["ping_timeout_s"]), 0.05e-3, m.measured)
                           for m in stalls], base.parameters.detection_anchor_s,
                          base.parameters.ping_timer_late_s)
    assert again.values["detection_anchor_s"] == p.parameters.detection_anchor_s
    assert again.values["ping_timer_late_s"] == p.parameters.ping_timer_late_s
    # the reconnect by the client's own wait (its 3 s timer from the crash's RST) + the
    # handshake; the reading says when the clients disconnected, the profile this machine's
    # SYN setting and glusterfs's timer
    (m,) = recon
    assert p.parameters.reconnect_timer_s == 3.0
    assert p.parameters.syn_linear_timeouts == syn_linear_timeouts()
    trial = ReconnectTrial(str(m.inputs["kind"]), float(m.inputs["repair_s"]),
                           float(m.inputs["disconnect_s"]), m.measured)
    assert p.parameters.reconnect_delay_s == fit_reconnect_mechanism(
        [trial], p.parameters.syn_linear_timeouts).values["reconnect_delay_s"]
    assert m.measured >= reconnect_wait_s(trial, 3.0, p.parameters.syn_linear_timeouts) - 0.1
    assert all(m.residual is not None for m in p.measurements)
    assert p.parameters.heal_thread_mb_s == base.parameters.heal_thread_mb_s  # not measured
    assert any(line.startswith("heal") for line in p.to_measure)


def test_validate_smoke_one_case_on_the_lab(tmp_path: Path) -> None:
    out = tmp_path / "val"
    r = hcisim("validate", "--engine", "lab+netns", "--cases", "brick-crash-r3",
               "--repeat", "1", "-o", str(out))
    assert r.exit_code in (0, 1), r.stderr  # 1: a metric off target (a loaded machine)
    df = pd.read_csv(out / "validate.csv")
    assert set(df["case"]) == {"brick-crash-r3"}
    assert (df["n_lab"] == 1).all() and (df["n_model"] == 1).all()
    lab_tp = df[(df["metric"] == "throughput")]["lab_median"]
    assert (lab_tp > 0).all()  # the lab's writers ran and were measured
    assert json.loads((out / "validate.json").read_text())["lab_errors"] == {}
    assert (out / "validate.html").stat().st_size > 0
