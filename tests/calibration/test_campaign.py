"""``hcisim calibrate`` on the model engine: the fits recover the profile the model ran with,
the written profile loads and carries its measurements; bad input exits 2."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner, Result

from hcisim.calibration.campaign import case_spreads, run_calibration, still_to_measure
from hcisim.calibration.experiments import EXPERIMENTS
from hcisim.calibration.fit import fit_peer_anchor, peer_stops_s
from hcisim.cli import calibrate as calibrate_cli
from hcisim.engines import observe
from hcisim.model.pingtimer import syn_schedule
from hcisim.observations import Observations
from hcisim.scenario import Scenario
from hcisim.scenario.profile import (
    CalibrationProfile,
    Measurement,
    load_profile,
    save_profile,
)


def _truth(tmp_path: Path) -> Path:
    d = load_profile().model_dump(mode="json")
    d["name"] = "truth"
    d["parameters"].update(detection_anchor_s=-1.3, ping_timer_late_s=0.2,
                           reconnect_delay_s=1.7)
    path = tmp_path / "truth.yaml"
    save_profile(CalibrationProfile.model_validate(d), path)
    return path


def test_fits_recover_the_profile_the_model_ran_with(tmp_path: Path) -> None:
    truth = _truth(tmp_path)
    p = run_calibration("model", load_profile(), "fitted",
                        ["detection-quick", "reconnect-quick"], repeat=3, profile=str(truth))
    assert p.parameters.detection_anchor_s == pytest.approx(-1.3, abs=0.011)
    assert p.parameters.ping_timer_late_s == pytest.approx(0.2, abs=0.006)
    assert p.parameters.reconnect_delay_s == pytest.approx(1.7, abs=1e-3)
    # not informed by these experiments: the base profile's, and it says so
    assert p.parameters.heal_thread_mb_s == load_profile().parameters.heal_thread_mb_s
    assert p.fits["heal_thread_mb_s"].method.startswith("carried over")
    stalls = [m for m in p.measurements if m.quantity == "stall"]
    assert len(stalls) == 3 * 2  # three trials, two surviving VMs
    assert len({m.inputs["fault_s"] for m in stalls}) == 3  # offsets over the ping period
    assert all(m.residual is not None and abs(m.residual) < 0.05 for m in p.measurements)
    assert p.fits["reconnect_delay_s"].n == 3
    assert any("detection" in x for x in p.to_measure)


app = typer.Typer()
app.callback()(lambda: None)  # a command group, as `hcisim` is
calibrate_cli.register(app)


def test_an_interrupted_campaign_keeps_its_finished_trials(tmp_path: Path) -> None:
    seen: list[CalibrationProfile] = []
    runs = 0

    def observe_twice(engine: str, sc: Scenario, options: Mapping[str, Any] | None
                      ) -> Observations:
        nonlocal runs
        runs += 1
        if runs > 2:
            raise KeyboardInterrupt
        return observe(engine, sc, options=options)

    with pytest.raises(KeyboardInterrupt):
        run_calibration("model", load_profile(), "cut", ["reconnect-quick"], repeat=5,
                        profile=str(_truth(tmp_path)), observe_fn=observe_twice,
                        partial=seen.append)
    assert [len(p.measurements) for p in seen] == [1, 2]
    assert seen[-1].parameters.reconnect_delay_s == pytest.approx(1.7, abs=1e-3)
    assert [m.trial for m in seen[-1].measurements] == [0, 1]
    assert any("only its CI subset reconnect-quick" in x for x in seen[-1].to_measure)


def test_a_campaign_in_parts_fits_over_both(tmp_path: Path) -> None:
    truth = str(_truth(tmp_path))
    first = run_calibration("model", load_profile(), "part1", ["reconnect-quick"], repeat=2,
                            profile=truth)
    part1 = tmp_path / "part1.yaml"
    save_profile(first, part1)
    both = run_calibration("model", load_profile(part1), "part2", ["reconnect-quick"],
                           repeat=1, profile=truth, merge=True)
    rows = [m for m in both.measurements if m.experiment == "reconnect-quick"]
    assert sorted(m.trial for m in rows) == [0, 1, 2]
    assert both.fits["reconnect_delay_s"].n == 3
    alone = run_calibration("model", load_profile(part1), "alone", ["reconnect-quick"],
                            repeat=1, profile=truth)
    assert alone.fits["reconnect_delay_s"].n == 1


def hcisim(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_cli_writes_a_loadable_profile(tmp_path: Path) -> None:
    out = tmp_path / "p.yaml"
    r = hcisim("calibrate", "--engine", "model", "--experiments", "reconnect-quick",
                "--model-profile", str(_truth(tmp_path)), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    p = load_profile(out)
    assert p.name == "p" and p.engine == "model"
    assert p.parameters.reconnect_delay_s == pytest.approx(1.7, abs=1e-3)
    assert p.machine.cpus and p.machine.date
    # the spread of every case: here one trial of one case (the truth's 1.7 s after the
    # client's wait for its reconnect timer), which the fit predicts exactly
    (row,) = p.measurements
    assert row.measured > 1.7 and row.residual == pytest.approx(0.0, abs=1e-3)
    m = f"{row.measured:.3g}"
    assert "per case" in r.stdout and f"{m} / {m} / {m} s" in r.stdout
    assert "+0 / +0 / +0" in r.stdout
    r = hcisim("calibrate", "--engine", "model", "--experiments", "reconnect-quick",
                "-o", str(out))
    assert r.exit_code == 2 and "exists" in r.stderr


@pytest.mark.parametrize(("args", "words"), [
    (["--experiments", "detectoin"], "unknown experiment 'detectoin'"),
    (["--base", "no-such"], "no shipped profile"),
    (["--engine", "lab+nope"], "unknown engine"),
])
def test_cli_bad_input_exits_2(tmp_path: Path, args: list[str], words: str) -> None:
    r = hcisim("calibrate", *args, "-o", str(tmp_path / "x.yaml"))
    assert r.exit_code == 2, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.yaml").exists()


PART1B = str(Path(__file__).resolve().parents[2] / "lab/calibration/2026-11-30-part1b.yaml")


@pytest.mark.parametrize(("args", "words"), [
    (["--from", f"{PART1B}:detection-short", "--repeat", "3"], "--repeat cannot go with it"),
    (["--from", f"{PART1B}:heal"], "no measurements of heal"),
    (["--from", f"{PART1B}:detectoin"], "unknown experiment 'detectoin'"),
    (["--from", "no/such.yaml"], "no/such.yaml"),
])
def test_cli_from_bad_input_exits_2(tmp_path: Path, args: list[str], words: str) -> None:
    r = CliRunner().invoke(app, ["calibrate", *args, "-o", str(tmp_path / "x.yaml")],
                           env={"COLUMNS": "200"})
    assert r.exit_code == 2, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.yaml").exists()


def test_cli_from_refits_chosen_experiments_of_stored_parts(tmp_path: Path) -> None:
    """Two parts, each trial numbered after the earlier part's; only the chosen
    experiments' rows are kept, and the fit predicts every one of them again."""
    out = tmp_path / "both.yaml"
    r = hcisim("calibrate", "--from", f"{PART1B}:reconnect", "--from", f"{PART1B}:reconnect",
               "-o", str(out))
    assert r.exit_code == 0, r.stderr
    p = load_profile(out)
    part = load_profile(PART1B)
    one = [m for m in part.measurements if m.experiment == "reconnect"]
    assert {m.experiment for m in p.measurements} == {"reconnect"}
    assert len(p.measurements) == 2 * len(one)
    n = max(m.trial for m in one) + 1
    assert sorted({m.trial for m in p.measurements}) == list(range(2 * n))
    assert p.parameters.reconnect_delay_s == part.parameters.reconnect_delay_s
    assert p.fits["reconnect_delay_s"].n == 2 * part.fits["reconnect_delay_s"].n
    assert f"{PART1B} (reconnect)" in p.description


def test_every_experiment_has_cases_on_the_lab_sized_cluster() -> None:
    for exp in EXPERIMENTS.values():
        cases = exp.cases(0, None)
        assert cases
        assert {c.scenario.hosts[0].disks[0].capacity_gb for c in cases} == {2}
        assert len({c.scenario.name for c in cases}) == len(cases)


def _rows(experiment: str, n: int) -> list[Measurement]:
    return [Measurement(experiment=experiment, quantity="stall", unit="s", trial=i,
                        measured=5.0) for i in range(n)]


def test_still_to_measure_names_parts_small_n_and_load() -> None:
    quiet = [0.2]
    left = still_to_measure(_rows("detection-short", 10), quiet)
    assert any(x.startswith("detection:") and "only detection-short" in x for x in left)
    both = _rows("detection-short", 10) + _rows("detection-long", 10)
    assert not any(x.startswith("detection:") for x in still_to_measure(both, quiet))
    assert any("n = 3 < 10" in x for x in still_to_measure(_rows("reconnect", 3), quiet))
    assert any("load up to 4.0" in x
               for x in still_to_measure(_rows("reconnect", 10), [0.2, 4.0]))
    assert any(x.startswith("heal:") and "not run" in x for x in still_to_measure([], quiet))


def test_quiet_is_judged_by_the_cpu_probe_where_every_case_has_one() -> None:
    """Back-to-back labs keep the load average at 5-14 on an idle machine: where every
    case was probed, only the CPU busy % before it says whether anything else ran."""
    rows, loads = _rows("reconnect", 10), [9.0] * 10
    assert not any(x.startswith("reconnect:") for x in still_to_measure(rows, loads, [2.0] * 10))
    busy = still_to_measure(rows, loads, [2.0] * 9 + [35.0])
    assert any(x.startswith("reconnect:") and "CPU up to 35 % busy" in x for x in busy)
    # a merge with an earlier part that was not probed: the load decides
    assert any("load up to 9.0" in x for x in still_to_measure(rows, loads, [2.0] * 5))


def test_each_experiment_is_judged_on_its_own_cases_figures() -> None:
    """A merged profile: an earlier part measured without the probe (the machine's figures
    say load 18, no probe) does not make a later, probed and quiet part look loaded; a
    case measured while something ran is named for its own experiment only."""
    def rows(experiment: str, busy: float) -> list[Measurement]:
        return [Measurement(experiment=experiment, quantity="x", unit="s", trial=i,
                            inputs={"load_1m": 9.0, "cpu_busy_pct": busy if i == 3 else 0.0},
                            measured=5.0) for i in range(10)]
    machine_loads, machine_busy = [18.1, 9.0], [0.0]  # part 1 had no probe
    left = still_to_measure(rows("reconnect", 0.0) + rows("heal", 35.0), machine_loads,
                            machine_busy)
    assert not any(x.startswith("reconnect:") for x in left), left
    assert any(x.startswith("heal:") and "CPU up to 35 % busy" in x for x in left), left
    # rows without their own figures (older profiles): the machine's decide
    assert any(x.startswith("reconnect:") and "load up to 18.1" in x
               for x in still_to_measure(_rows("reconnect", 10), machine_loads, machine_busy))


def test_a_lab_campaign_probes_the_machine_before_every_case() -> None:
    """What the CLI runs on a lab: the probe before each case, its figures in the profile."""
    probes: list[int] = []

    def probe() -> float:
        probes.append(1)
        return 3.0

    def on_model(engine: str, sc: Scenario, options: Mapping[str, Any] | None) -> Observations:
        return observe("model", sc)

    p = run_calibration("lab+netns", load_profile(), "probed", ["reconnect-quick"], repeat=2,
                        observe_fn=on_model, busy_probe=probe)
    n = len(probes)
    assert n >= 2 and p.machine.cpu_busy_pct == (3.0,) * n and len(p.machine.load_avg_1m) == n
    assert not any(x.startswith("reconnect:") and "busy" in x for x in p.to_measure)
    assert run_calibration("model", load_profile(), "m", ["reconnect-quick"],
                           busy_probe=probe).machine.cpu_busy_pct == ()
    assert len(probes) == n  # the model is never probed


def test_kept_logs_go_to_one_folder_per_case(tmp_path: Path) -> None:
    """``--keep-logs``: every lab case runs with ``keep_logs`` set to its own folder (the
    scenario's name, which names the trial), the engine's other options kept."""
    seen: list[Mapping[str, Any] | None] = []

    def on_model(engine: str, sc: Scenario, options: Mapping[str, Any] | None) -> Observations:
        seen.append(options)
        return observe("model", sc)

    run_calibration("lab+netns", load_profile(), "logged", ["reconnect-quick"], repeat=2,
                    options={"poll_s": 0.5}, observe_fn=on_model, busy_probe=lambda: 0.0,
                    logs=tmp_path)
    folders = [o["keep_logs"] for o in seen if o is not None]
    assert len(folders) == len(seen) >= 2 and all(o["poll_s"] == 0.5 for o in seen if o)
    assert len(set(folders)) == len(folders) and all(f.parent == tmp_path for f in folders)
    seen.clear()
    run_calibration("lab+netns", load_profile(), "unlogged", ["reconnect-quick"],
                    options={"poll_s": 0.5}, observe_fn=on_model, busy_probe=lambda: 0.0)
    assert seen and all(o == {"poll_s": 0.5} for o in seen)


def test_case_spreads_group_the_trials_of_each_case() -> None:
    rows = [Measurement(experiment="detection-short", quantity="stall", unit="s", trial=i,
                        inputs={"kind": kind, "ping_timeout_s": t, "fault_s": 8.0 + i},
                        measured=t + i / 10, predicted=t, residual=i / 10)
            for kind in ("nic_loss", "brick_hang") for t in (3.0, 5.0) for i in range(4)]
    spreads = case_spreads(rows)
    assert [(s.case, len(s.measured)) for s in spreads] == [
        ("nic_loss ping_timeout=3", 4), ("nic_loss ping_timeout=5", 4),
        ("brick_hang ping_timeout=3", 4), ("brick_hang ping_timeout=5", 4)]
    s = spreads[1]
    assert (s.measured[0], s.measured[-1]) == (5.0, 5.3) and s.median == pytest.approx(5.15)
    assert s.residuals == pytest.approx((0.0, 0.1, 0.2, 0.3))


def test_reconnect_readings_say_when_the_clients_disconnected() -> None:
    """The reconnect timer runs from the disconnect: a brick crash's is the fault itself
    (RST), a power loss's the clients' detection, T to 2T after it."""
    p = run_calibration("model", load_profile(), "r", ["reconnect"])
    by_kind = {m.inputs["kind"]: m.inputs for m in p.measurements}
    crash, power = by_kind["brick_crash"], by_kind["node_power_loss"]
    assert crash["disconnect_s"] == crash["fault_s"]
    assert 3.0 <= float(power["disconnect_s"]) - float(power["fault_s"]) <= 6.0 + 1e-3


def test_heal_is_read_from_the_daemons_childup_not_the_clients_reconnect(tmp_path: Path) -> None:
    """With the reconnect mechanism on (3 s timer, SYN retransmissions), the daemons and the
    clients come back at different moments after a 60 s power loss (their losses were
    noticed by keepalive and by the ping timer). The heal reading runs from the first
    ``shd_brick_up`` of host2's brick in any daemon (host2's own too: it heals its brick
    as well), which is when the model wakes heal: so it is
    ``heal_noticed_s`` + the drain, whatever the clients did; and it says when each further
    daemon joined (``join_2_s``, ...), as the fit's drain needs."""
    d = load_profile().model_dump(mode="json")
    d["name"] = "syn"
    d["parameters"].update(reconnect_timer_s=3.0, reconnect_delay_s=0.02,
                           syn_linear_timeouts=4, heal_noticed_s=1.5)
    path = tmp_path / "syn.yaml"
    save_profile(CalibrationProfile.model_validate(d), path)
    heal = EXPERIMENTS["heal"]
    readings = []
    for case in heal.cases(0, str(path))[0:2]:  # 60 s outage, 4 MiB shards, 1 and 8 threads
        obs = observe("model", case.scenario)
        ev = obs["events"]
        ups = ev[(ev["kind"] == "shd_brick_up") & (ev["target"] == "data/host2")]
        others = ups[ups["detail"] != "glustershd on host2"]
        starts = ev[(ev["kind"] == "heal_start") & (ev["target"] == "data/host2")]
        (r,) = heal.read(case, obs)
        x = {k: float(v) for k, v in r.extra}
        assert x["childup_others_s"] == pytest.approx(float(others["t_s"].min()), abs=1e-4)
        assert x["childup_s"] == pytest.approx(float(ups["t_s"].min()), abs=1e-4)
        assert x["childup_s"] <= x["childup_others_s"]
        assert float(starts["t_s"].min()) == pytest.approx(x["childup_s"] + 1.5, abs=1e-4)
        # every daemon back before heal done heals, each from its own CHILD_UP
        back = ups[ups["t_s"] <= x["childup_s"] + r.value].groupby("detail")["t_s"].min()
        assert x["healers"] == float(len(back))
        joins = sorted(float(t) - x["childup_s"] for t in back)[1:]
        assert [x[f"join_{i}_s"] for i in range(2, 2 + len(joins))] == pytest.approx(
            joins, abs=1e-4)
        assert r.value > 1.5
        readings.append(x)
    # the anchor is not the clients' reconnect: they differ in at least one case
    assert any(abs(x["childup_s"] - x["clients_back_s"]) > 0.1 for x in readings), readings


def test_server_quorum_is_read_from_the_cut_off_hosts_events() -> None:
    """The server-quorum experiment on the model: host2's glusterd stops its bricks when
    its peers' keepalive gives up, 18-28 s after the cut whatever the ping-timeout
    (glusterd.vol's keepalive 10 s + 9 x 2 s), on the chain from the profile's
    ``peer_anchor_s`` (the cases' phase is known, as on the lab), and starts them when it
    reaches its peers again; the stops fit ``peer_anchor_s`` back."""
    exp = EXPERIMENTS["server-quorum"]
    assert exp.fits == ("peer_anchor_s",)
    faults, stops = [], []
    for trial in range(3):
        for case in exp.cases(trial, None):
            stopped, started = exp.read(case, observe("model", case.scenario))
            assert stopped.quantity == "bricks_stopped_after_cut"
            assert 18.0 - 1e-6 <= stopped.value <= 28.0 + 1e-6, (case.label, stopped)
            anchor = case.scenario.model.detection.peer_anchor_s
            assert anchor is not None
            fault = float(case.inputs["fault_s"])
            assert stopped.value == pytest.approx(
                float(peer_stops_s(np.array([fault]), anchor)[0]), abs=1e-9)
            faults.append(fault)
            stops.append(stopped.value)
            assert started.quantity == "bricks_started_after_repair"
            # the model: when host2's glusterd reaches a peer again, on the next SYN its
            # reconnect try retransmits (an iptables partition leaves ARP answered, so the
            # try lives through its 10 retransmissions: at most the longest gap between
            # two, or the next try's first SYN after it gives up)
            sends, give_up = syn_schedule(case.scenario.model.syn_linear_timeouts)
            timer = case.scenario.model.reconnect_timer_s
            longest = max(max(b - a for a, b in itertools.pairwise(sends)),
                          timer * math.ceil(give_up / timer) - sends[-1])
            assert 0.0 < started.value <= longest + case.scenario.model.reconnect_delay_s, (
                case.label, started)
    fitted = fit_peer_anchor(faults, stops, None)
    assert fitted.rms(stops) == pytest.approx(0.0, abs=1e-3)
    assert fitted.values["peer_anchor_s"] == pytest.approx(
        load_profile().parameters.peer_anchor_s, abs=1e-3)


def test_rows_no_fit_uses_are_kept_as_measured() -> None:
    """A check (the server-quorum restarts) or a quantity an older reader measured stays
    in the profile, without a prediction; it used to be dropped at the fit."""
    from hcisim.calibration.campaign import fit_measurements

    rows = [Measurement(experiment="server-quorum", quantity="bricks_started_after_repair",
                        unit="s", trial=0, inputs={"fault_s": 8.0}, measured=4.4),
            Measurement(experiment="heal", quantity="heal_after_reconnect", unit="s",
                        trial=0, measured=5.0)]
    _params, _fits, done = fit_measurements(rows, load_profile())
    assert [(m.quantity, m.measured, m.predicted) for m in done] == [
        ("bricks_started_after_repair", 4.4, None), ("heal_after_reconnect", 5.0, None)]


def test_reconnect_after_a_hang_is_its_own_quantity() -> None:
    """The hang cases read the clients' reconnect as ``reconnect_after_hang``: kept as
    measured, never in the reconnect fit (whose mechanism covers refusals and unanswered
    losses only)."""
    exp = EXPERIMENTS["reconnect-hang"]
    cases = exp.cases(0, None)
    assert [c.inputs["kind"] for c in cases] == ["node_hang", "brick_hang"]
    for case in cases:
        (r,) = exp.read(case, observe("model", case.scenario))
        assert r.quantity == "reconnect_after_hang" and r.value >= 0.0
        assert float(dict(r.extra)["disconnect_s"]) < float(case.inputs["repair_s"])


def test_heal_under_load_keeps_the_writers_on_after_the_repair_and_fits_nothing() -> None:
    """The heal-under-load cases differ from the heal case only in the writers' load after
    the repair (0, 0.05, 1 of their rate); the reading is the heal case's, under its own
    name, which no fit uses (the heal fit's drain assumes the writers stopped)."""
    from hcisim.calibration.campaign import fit_measurements

    exp = EXPERIMENTS["heal-under-load"]
    assert exp.fits == ()
    cases = exp.cases(0, None)
    assert [c.inputs["load_after_repair"] for c in cases] == [0.0, 0.05, 1.0]
    (plain,) = [c for c in EXPERIMENTS["heal"].cases(0, None)
                if c.inputs["shard_mib"] == 4 and c.inputs["shd_threads"] == 1]
    for case in cases:
        sc = case.scenario
        assert [(p.start_s, p.load) for p in sc.phases] == [
            (float(case.inputs["repair_s"]), case.inputs["load_after_repair"])]
        assert sc.faults == plain.scenario.faults and sc.volumes == plain.scenario.volumes
        (r,) = exp.read(case, observe("model", case.scenario))
        assert r.quantity == "heal_under_load" and r.value > 0.0
        row = Measurement(experiment=exp.name, quantity=r.quantity, unit=r.unit, trial=0,
                          inputs={**case.inputs, **dict(r.extra)}, measured=r.value)
        params, _fits, done = fit_measurements([row], load_profile())
        assert params == load_profile().parameters.model_dump()
        assert [(m.measured, m.predicted) for m in done] == [(r.value, None)]
    spreads = case_spreads([Measurement(experiment=exp.name, quantity="heal_under_load",
                                        unit="s", trial=0, inputs=c.inputs, measured=1.0)
                            for c in cases])
    assert len({s.case for s in spreads}) == 3
