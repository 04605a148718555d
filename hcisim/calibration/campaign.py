"""``hcisim calibrate``: run experiments on an engine, fit the parameters, write a profile.

The runs go through :func:`hcisim.engines.observe`, so the same campaign runs on the netns
lab, a libvirt lab, and (next step) real hosts; on the model it checks that the fits recover
the profile the model ran with. Parameters no experiment of the campaign informs are
carried over from the base profile, and the profile says so (``fits``).
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hcisim.calibration.cases import Case
from hcisim.calibration.experiments import (
    DEFAULT_EXPERIMENTS,
    EXPERIMENTS,
    Experiment,
    Reading,
    experiments_named,
)
from hcisim.calibration.fit import (
    Fitted,
    HealTrial,
    StallTrial,
    fit_detection,
    fit_heal,
    fit_reconnect,
)
from hcisim.engines import observe
from hcisim.observations import Observations
from hcisim.scenario import Scenario
from hcisim.scenario.profile import (
    CalibrationProfile,
    FitNote,
    MachineFacts,
    Measurement,
    ProfileParameters,
)

QUIET_LOAD = 0.5  # 1-minute load average below which a machine counts as quiet
MIN_TRIALS = 10  # trials per case the issue asks for where a value is random

Observe = Callable[[str, Scenario, Mapping[str, Any] | None], Observations]
Say = Callable[[str], None]


def _observe(engine: str, sc: Scenario, options: Mapping[str, Any] | None) -> Observations:
    return observe(engine, sc, options=options)


@dataclass(frozen=True)
class Trial:
    experiment: Experiment
    case: Case
    trial: int
    readings: tuple[Reading, ...]
    load_1m: float
    gluster_version: str = ""  # what the engine reported (a lab's meta), if anything


def glusterfs_version() -> str:
    """``glusterfs --version``'s first line's version, or '' where it is not installed."""
    try:
        out = subprocess.run(["glusterfs", "--version"], capture_output=True, text=True,
                             timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    words = out.split()
    return words[1] if len(words) > 1 and words[0] == "glusterfs" else ""


def machine_facts(loads: Sequence[float]) -> MachineFacts:
    return MachineFacts(kernel=f"{platform.system()} {platform.release()}",
                        cpus=os.cpu_count(), glusterfs=glusterfs_version(),
                        python=platform.python_version(),
                        load_avg_1m=tuple(round(x, 2) for x in loads),
                        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))


def run_trials(engine: str, experiments: Sequence[Experiment], repeat: int,
               options: Mapping[str, Any] | None = None, profile: str | None = None,
               observe_fn: Observe = _observe, say: Say | None = None) -> list[Trial]:
    """Every case of every experiment, ``repeat`` times (trial-major, so an interrupted
    campaign has whole trials of every experiment)."""
    out: list[Trial] = []
    for trial in range(repeat):
        for exp in experiments:
            for case in exp.cases(trial, profile):
                load = os.getloadavg()[0]
                if say is not None:
                    say(f"{exp.name} trial {trial + 1}/{repeat}: {case.label} "
                        f"(load {load:.1f})")
                obs = observe_fn(engine, case.scenario, options)
                version = str(obs.meta.get("gluster_version") or "")
                out.append(Trial(exp, case, trial, tuple(exp.read(case, obs)), load,
                                 version.removeprefix("glusterfs ").strip()))
    return out


def _stall_trials(trials: Sequence[Trial]) -> list[tuple[Trial, Reading, StallTrial]]:
    rows = []
    for t in trials:
        rtt = t.case.scenario.network("storage").rtt_ms / 1000.0
        for r in t.readings:
            if r.quantity == "stall":
                rows.append((t, r, StallTrial(float(t.case.inputs["fault_s"]),
                                              float(t.case.inputs["ping_timeout_s"]), rtt,
                                              r.value)))
    return rows


def _heal_trials(trials: Sequence[Trial]) -> list[tuple[Trial, Reading, HealTrial]]:
    rows = []
    for t in trials:
        for r in t.readings:
            if r.quantity == "heal_after_reconnect":
                x = dict(r.extra)
                rows.append((t, r, HealTrial(int(x["shards"]), float(x["shard_bytes"]),
                                             int(t.case.inputs["shd_threads"]),
                                             float(x["cap_mb_s"]), r.value)))
    return rows


def _measurement(t: Trial, r: Reading, predicted: float | None) -> Measurement:
    inputs: dict[str, float | str] = {**t.case.inputs, **dict(r.extra)}
    if r.subject:
        inputs["subject"] = r.subject
    return Measurement(experiment=t.experiment.name, quantity=r.quantity, unit=r.unit,
                       trial=t.trial, inputs=inputs, measured=round(r.value, 4),
                       predicted=None if predicted is None else round(predicted, 4),
                       residual=None if predicted is None else round(r.value - predicted, 4))


def _note(method: str, trials: Sequence[Trial], fitted: Fitted, measured: Sequence[float]
          ) -> FitNote:
    names = tuple(dict.fromkeys(t.experiment.name for t in trials))
    rms = fitted.rms(measured)
    return FitNote(method=method, experiments=names, n=len(measured),
                   rms_residual=None if rms is None else round(rms, 4))


def fit_profile(trials: Sequence[Trial], base: CalibrationProfile, name: str, engine: str,
                repeat: int) -> CalibrationProfile:
    """Fit every parameter some trial informs; carry the others over from ``base``."""
    params = base.parameters.model_dump()
    fits: dict[str, FitNote] = {k: FitNote(method=f"carried over from profile {base.name}")
                                for k in params}
    measurements: list[Measurement] = []
    stalls = _stall_trials(trials)
    if stalls:
        f = fit_detection([s for _, _, s in stalls], params["detection_anchor_s"],
                          params["ping_timer_late_s"])
        params.update(f.values)
        note = _note("least squares over every trial of the ping-timer mechanism "
                     "(stall = T + late + first lost ping - fault)", [t for t, _, _ in stalls],
                     f, [s.stall_s for _, _, s in stalls])
        fits.update(dict.fromkeys(f.values, note))
        measurements += [_measurement(t, r, p)
                         for (t, r, _), p in zip(stalls, f.predicted, strict=True)]
    recon = [(t, r) for t in trials for r in t.readings if r.quantity == "reconnect"]
    if recon:
        f = fit_reconnect([r.value for _, r in recon])
        params.update(f.values)
        fits["reconnect_delay_s"] = _note("mean delay from the repair to the clients' "
                                          "reconnect", [t for t, _ in recon], f,
                                          [r.value for _, r in recon])
        measurements += [_measurement(t, r, p)
                         for (t, r), p in zip(recon, f.predicted, strict=True)]
    heals = _heal_trials(trials)
    if heals:
        f = fit_heal([h for _, _, h in heals], params["heal_noticed_s"],
                     params["heal_entry_s"], params["heal_thread_mb_s"])
        params.update(f.values)
        one_size = len({h.shard_bytes for _, _, h in heals}) < 2
        note = _note("least squares of the fluid heal drain over every episode"
                     + (" (one shard size: rate kept, entry cost fitted)" if one_size else ""),
                     [t for t, _, _ in heals], f, [h.duration_s for _, _, h in heals])
        fits.update(dict.fromkeys(f.values, note))
        measurements += [_measurement(t, r, p)
                         for (t, r, _), p in zip(heals, f.predicted, strict=True)]
    loads = [t.load_1m for t in trials]
    gluster_version = next((t.gluster_version for t in trials if t.gluster_version),
                           "" if engine == "model" else base.gluster_version)
    return CalibrationProfile(
        name=name, description=f"hcisim calibrate on {engine}, {repeat} trial(s) per case",
        gluster_version=gluster_version, engine=engine,
        machine=machine_facts(loads), parameters=ProfileParameters(**params), fits=fits,
        measurements=tuple(measurements),
        to_measure=still_to_measure(trials, repeat, loads))


def still_to_measure(trials: Sequence[Trial], repeat: int, loads: Sequence[float]
                     ) -> tuple[str, ...]:
    """Which of the full campaign's experiments this run leaves for a quiet machine."""
    ran = {t.experiment.name for t in trials}
    quiet = bool(loads) and max(loads) < QUIET_LOAD
    out = []
    for name in DEFAULT_EXPERIMENTS:
        why = []
        if name not in ran:
            quick = f"{name}-quick"
            why.append(f"only its CI subset {quick}" if quick in ran else "not run")
        else:
            if repeat < MIN_TRIALS:
                why.append(f"n = {repeat} < {MIN_TRIALS}")
            if not quiet:
                why.append(f"load up to {max(loads):.1f} (quiet: < {QUIET_LOAD})")
        if why:
            out.append(f"{name}: {EXPERIMENTS[name].what} ({'; '.join(why)})")
    return tuple(out)


def run_calibration(engine: str, base: CalibrationProfile, name: str,
                    experiments: Sequence[str] = DEFAULT_EXPERIMENTS, repeat: int = 1,
                    options: Mapping[str, Any] | None = None, profile: str | None = None,
                    observe_fn: Observe = _observe, say: Say | None = None
                    ) -> CalibrationProfile:
    """Run, fit, and return the new profile (``profile``: the model profile of the cases'
    scenarios, what a model engine runs with)."""
    exps = experiments_named(experiments)
    trials = run_trials(engine, exps, repeat, options, profile, observe_fn, say)
    return fit_profile(trials, base, name, engine, repeat)
