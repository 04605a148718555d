"""``hcisim calibrate``: run experiments on an engine, fit the parameters, write a profile.

The runs go through :func:`hcisim.engines.observe`, so the same campaign runs on the netns
lab, a libvirt lab, and (next step) real hosts; on the model it checks that the fits recover
the profile the model ran with. Parameters no experiment of the campaign informs are
carried over from the base profile, and the profile says so (``fits``).
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from hcisim.calibration.cases import LAB_HOST_CORES, Case, Reading
from hcisim.calibration.experiments import (
    DEFAULT_EXPERIMENTS,
    EXPERIMENTS,
    Experiment,
    experiments_named,
)
from hcisim.calibration.fit import (
    HEAL_RATE_EDGE_MB_S,
    RECONNECT_TIMER_S,
    Fitted,
    HealTrial,
    ReconnectTrial,
    StallTrial,
    fit_detection,
    fit_heal,
    fit_peer_anchor,
    fit_reconnect,
    fit_reconnect_mechanism,
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
# CPU busy % over a second between two cases (the previous lab gone) below which nothing
# else runs: the load average cannot say that, it still counts the previous lab's threads
QUIET_BUSY_PCT = 10.0
BUSY_PROBE_S = 1.0
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
    cpu_busy_pct: float | None = None  # over the second before the case (labs only)


def cpu_busy_pct() -> float:
    """The machine's CPU busy % over the next :data:`BUSY_PROBE_S` (all cores)."""
    return float(psutil.cpu_percent(interval=BUSY_PROBE_S))


def glusterfs_version() -> str:
    """``glusterfs --version``'s first line's version, or '' where it is not installed."""
    try:
        out = subprocess.run(["glusterfs", "--version"], capture_output=True, text=True,
                             timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    words = out.split()
    return words[1] if len(words) > 1 and words[0] == "glusterfs" else ""


def machine_facts(loads: Sequence[float], busy: Sequence[float] = ()) -> MachineFacts:
    return MachineFacts(kernel=f"{platform.system()} {platform.release()}",
                        cpus=os.cpu_count(), glusterfs=glusterfs_version(),
                        python=platform.python_version(),
                        load_avg_1m=tuple(round(x, 2) for x in loads),
                        cpu_busy_pct=tuple(round(x, 1) for x in busy),
                        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))


def run_trials(engine: str, experiments: Sequence[Experiment], repeat: int,
               options: Mapping[str, Any] | None = None, profile: str | None = None,
               observe_fn: Observe = _observe, say: Say | None = None,
               each: Callable[[list[Trial]], None] | None = None,
               busy_probe: Callable[[], float] | None = None,
               logs: Path | None = None) -> list[Trial]:
    """Every case of every experiment, ``repeat`` times (trial-major, so an interrupted
    campaign has whole trials of every experiment); ``each`` gets the trials so far after
    every run. ``busy_probe``: how busy the machine is before each case (None: not
    probed, as on the model). ``logs``: a lab case's daemon, client and workload logs are
    kept in ``logs/<case's scenario name>`` (the lab's option ``keep_logs``)."""
    out: list[Trial] = []
    for trial in range(repeat):
        for exp in experiments:
            for case in exp.cases(trial, profile):
                load = os.getloadavg()[0]
                busy = busy_probe() if busy_probe is not None else None
                if say is not None:
                    say(f"{exp.name} trial {trial + 1}/{repeat}: {case.label} "
                        f"(load {load:.1f}" + (f", CPU {busy:.0f} % busy)" if busy is not None
                                               else ")"))
                run_options = options
                if logs is not None:
                    run_options = {**(options or {}), "keep_logs": logs / case.scenario.name}
                obs = observe_fn(engine, case.scenario, run_options)
                version = str(obs.meta.get("gluster_version") or "")
                out.append(Trial(exp, case, trial, tuple(exp.read(case, obs)), load,
                                 version.removeprefix("glusterfs ").strip(), busy))
                if each is not None:
                    each(out)
    return out


def raw_measurements(trials: Sequence[Trial]) -> list[Measurement]:
    """Every reading as a profile row with the inputs a fit needs (no prediction yet)."""
    out = []
    for t in trials:
        rtt = t.case.scenario.network("storage").rtt_ms / 1000.0
        for r in t.readings:
            inputs: dict[str, float | str] = {**t.case.inputs, **dict(r.extra), "rtt_s": rtt,
                                              "load_1m": round(t.load_1m, 2)}
            if t.cpu_busy_pct is not None:  # how quiet the machine was before this case
                inputs["cpu_busy_pct"] = round(t.cpu_busy_pct, 1)
            if r.subject:
                inputs["subject"] = r.subject
            out.append(Measurement(experiment=t.experiment.name, quantity=r.quantity,
                                   unit=r.unit, trial=t.trial, inputs=inputs,
                                   measured=round(r.value, 4)))
    return out


CASE_INPUTS = ("ping_timeout_s", "outage_s", "shard_mib", "shd_threads",  # what a case varies
               "load_after_repair")


@dataclass(frozen=True)
class CaseSpread:
    """All trials of one case of a profile's measurements: what a random quantity did."""

    experiment: str
    case: str  # the fault kind, and the ping-timeout where it varies
    quantity: str
    unit: str
    measured: tuple[float, ...]  # sorted
    residuals: tuple[float, ...]  # measured - predicted, where the fit predicted it

    @property
    def median(self) -> float:
        return statistics.median(self.measured)


def case_spreads(rows: Sequence[Measurement]) -> list[CaseSpread]:
    """The measurements grouped by case (experiment, fault kind, ping-timeout, outage,
    shard size, threads, quantity), in the profile's order: min / median / max of n trials
    is how a campaign reports a random quantity."""
    groups: dict[tuple[str, str, str, str], list[Measurement]] = {}
    for m in rows:
        parts = [str(m.inputs["kind"])] if "kind" in m.inputs else []
        parts += [f"{k.removesuffix('_s')}={v:g}" for k in CASE_INPUTS
                  if isinstance(v := m.inputs.get(k), float | int)]
        groups.setdefault((m.experiment, " ".join(parts), m.quantity, m.unit), []).append(m)
    return [CaseSpread(exp, label, q, unit, tuple(sorted(m.measured for m in ms)),
                       tuple(m.residual for m in ms if m.residual is not None))
            for (exp, label, q, unit), ms in groups.items()]


def _num(m: Measurement, key: str) -> float:
    return float(m.inputs[key])


def heal_joins(m: Measurement) -> tuple[float, ...]:
    """When the second, third, ... healing daemon of a heal reading joined, after the
    first one's CHILD_UP (``join_2_s``, ``join_3_s``, ...; none in a reading from before
    the reader recorded them: all daemons from the start)."""
    out = []
    i = 2
    while f"join_{i}_s" in m.inputs:
        out.append(_num(m, f"join_{i}_s"))
        i += 1
    return tuple(out)


def _predicted(rows: Sequence[Measurement], fitted: Fitted) -> list[Measurement]:
    return [m.model_copy(update={"predicted": round(p, 4),
                                 "residual": round(m.measured - p, 4)})
            for m, p in zip(rows, fitted.predicted, strict=True)]


def _note(method: str, rows: Sequence[Measurement], fitted: Fitted) -> FitNote:
    rms = fitted.rms([m.measured for m in rows])
    return FitNote(method=method, experiments=tuple(dict.fromkeys(m.experiment for m in rows)),
                   n=len(rows), rms_residual=None if rms is None else round(rms, 4))


SYN_LINEAR_SYSCTL = "/proc/sys/net/ipv4/tcp_syn_linear_timeouts"


def syn_linear_timeouts() -> int:
    """This machine's net.ipv4.tcp_syn_linear_timeouts; 0 where the kernel (< 6.5) has none."""
    try:
        with open(SYN_LINEAR_SYSCTL) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


FITTED_QUANTITIES = frozenset({"stall", "reconnect", "heal_after_childup",
                               "bricks_stopped_after_cut"})


def fit_measurements(rows: Sequence[Measurement], base: CalibrationProfile,
                     linear_timeouts: int | None = None, reconnect_timer_s: float | None = None
                     ) -> tuple[dict[str, float], dict[str, FitNote], list[Measurement]]:
    """Fit every parameter some row informs (each over all its rows); carry the others over
    from ``base``. ``linear_timeouts``, ``reconnect_timer_s``: the measured system's SYN
    retransmission setting and reconnect timer (None: the base's, as on the model engine).
    Returns the parameters, how each got its value, and the rows with their predictions and
    residuals."""
    params = base.parameters.model_dump()
    fits: dict[str, FitNote] = {k: FitNote(method=f"carried over from profile {base.name}")
                                for k in params}
    if linear_timeouts is not None:
        params["syn_linear_timeouts"] = linear_timeouts
        fits["syn_linear_timeouts"] = FitNote(method=f"read on the measured machine "
                                              f"({SYN_LINEAR_SYSCTL}; 0: none)")
    done: list[Measurement] = []
    stalls = [m for m in rows if m.quantity == "stall"]
    if stalls:
        f = fit_detection([StallTrial(_num(m, "fault_s"), _num(m, "ping_timeout_s"),
                                      _num(m, "rtt_s"), m.measured) for m in stalls],
                          params["detection_anchor_s"], params["ping_timer_late_s"])
        params.update(f.values)
        note = _note("least squares over every trial of the ping-timer mechanism "
                     "(stall = T + late + first lost ping - fault)", stalls, f)
        fits.update(dict.fromkeys(f.values, note))
        done += _predicted(stalls, f)
    recon = [m for m in rows if m.quantity == "reconnect"]
    placed = [m for m in recon if "disconnect_s" in m.inputs]
    if placed:  # when the clients disconnected places the repair in their own wait
        timer = params["reconnect_timer_s"] if reconnect_timer_s is None else reconnect_timer_s
        f = fit_reconnect_mechanism(
            [ReconnectTrial(str(m.inputs["kind"]), _num(m, "repair_s"),
                            _num(m, "disconnect_s"), m.measured) for m in placed],
            int(params["syn_linear_timeouts"]), timer)
        params.update(f.values)
        fits["reconnect_delay_s"] = _note(
            f"median of measured - the client's wait for its connecting try ({timer:g} s "
            "reconnect timer from the disconnect; SYN retransmissions after a host that did "
            f"not answer, tcp_syn_linear_timeouts {params['syn_linear_timeouts']}); "
            f"{len(recon) - len(placed)} trials without a disconnect time not used",
            placed, f)
        if reconnect_timer_s is not None:
            fits["reconnect_timer_s"] = FitNote(method="glusterfs's constant (rpc-clnt.c "
                                                "rpc_clnt_reconnect: 3 s), not fitted")
        done += _predicted(placed, f) + [m for m in recon if m not in placed]
    elif recon:
        f = fit_reconnect([m.measured for m in recon])
        params.update(f.values)
        fits["reconnect_delay_s"] = _note("mean delay from the repair to the clients' "
                                          "reconnect", recon, f)
        done += _predicted(recon, f)
    # a heal's drain depends on how many daemons healed side by side: rows read before the
    # reader recorded them (calibration part 2d, carried in 2e) are kept as measured,
    # without a prediction, not fitted as if one daemon had healed
    heals = [m for m in rows if m.quantity == "heal_after_childup" and "healers" in m.inputs]
    done += [m for m in rows if m.quantity == "heal_after_childup" and m not in heals]
    if heals:
        trials = [HealTrial(int(_num(m, "shards")), _num(m, "shard_bytes"),
                            int(_num(m, "shd_threads")) * int(_num(m, "healers")),
                            _num(m, "cap_mb_s"), m.measured, int(_num(m, "healers")),
                            _num(m, "healers") * float(m.inputs.get("host_cores",
                                                                    LAB_HOST_CORES)),
                            heal_joins(m), float(m.inputs.get("cpu_pool_cores", 0.0)))
                  for m in heals]
        f = fit_heal(trials, params["heal_noticed_s"], params["heal_entry_s"],
                     params["heal_thread_mb_s"], params["heal_core_mb_s"],
                     params["heal_concurrency"])
        params.update(f.values)
        one_size = len({t.shard_bytes for t in trials}) < 2
        edge = not one_size and f.values["heal_thread_mb_s"] >= HEAL_RATE_EDGE_MB_S
        note = _note("least squares of the fluid heal drain over every episode"
                     + (" (one shard size: rate kept, entry cost fitted)" if one_size else "")
                     + (f" (the rate is the search's top, {HEAL_RATE_EDGE_MB_S:g} MB/s: these "
                        "trials' heal time does not grow with the bytes, so they bound the "
                        "per-thread rate from below only)" if edge else ""),
                     heals, f)
        fits.update(dict.fromkeys(f.values, note))
        done += _predicted(heals, f)
    stops = [m for m in rows if m.quantity == "bricks_stopped_after_cut"]
    if stops:
        f = fit_peer_anchor([_num(m, "fault_s") for m in stops], [m.measured for m in stops],
                            params.get("peer_anchor_s"))
        params.update(f.values)
        fits["peer_anchor_s"] = _note(
            "least squares of glusterd's peer keepalive (stop = last probe answered before "
            "the cut + keepalive-time + count x interval - cut, the probes a keepalive-time "
            "apart from the anchor)", stops, f)
        done += _predicted(stops, f)
    # what no fit uses (a check of the model, e.g. server quorum; a quantity an older
    # reader measured): kept as measured, without a prediction
    done += [m for m in rows if m.quantity not in FITTED_QUANTITIES]
    return params, fits, done


def fit_profile(trials: Sequence[Trial], base: CalibrationProfile, name: str, engine: str,
                repeat: int, merge: bool = False) -> CalibrationProfile:
    """The new profile: fits over this run's trials (``merge``: and over the base
    profile's own calibration measurements, so a campaign can be run in parts)."""
    rows = raw_measurements(trials)
    if merge:
        rows = _concatenated([_unfitted(base.measurements), rows])
    lab = engine != "model"  # the model engine's: those of the profile it ran with
    params, fits, measurements = fit_measurements(
        rows, base, syn_linear_timeouts() if lab else None, RECONNECT_TIMER_S if lab else None)
    loads = [t.load_1m for t in trials]
    busy = [t.cpu_busy_pct for t in trials if t.cpu_busy_pct is not None]
    gluster_version = next((t.gluster_version for t in trials if t.gluster_version),
                           "" if engine == "model" else base.gluster_version)
    earlier = base.machine.load_avg_1m if merge else ()
    earlier_busy = base.machine.cpu_busy_pct if merge else ()
    return CalibrationProfile(
        name=name, description=f"hcisim calibrate on {engine}, {repeat} trial(s) per case"
        + (f", with the measurements of {base.name}" if merge else ""),
        gluster_version=gluster_version, engine=engine,
        machine=machine_facts([*earlier, *loads], [*earlier_busy, *busy]),
        parameters=ProfileParameters(**params), fits=fits, measurements=tuple(measurements),
        to_measure=still_to_measure(rows, [*earlier, *loads], [*earlier_busy, *busy]))


def _unfitted(rows: Sequence[Measurement], only: frozenset[str] | None = None
              ) -> list[Measurement]:
    """A profile's calibration rows (``only``: of these experiments) without the
    predictions of the fit that wrote them: a new fit predicts them again."""
    return [m.model_copy(update={"predicted": None, "residual": None}) for m in rows
            if m.experiment in EXPERIMENTS and (only is None or m.experiment in only)]


def _concatenated(parts: Sequence[Sequence[Measurement]]) -> list[Measurement]:
    """The rows of several runs of a campaign, each run's trials numbered after the
    earlier runs' trials of the same experiment."""
    out: list[Measurement] = []
    for rows in parts:
        after: dict[str, int] = {}
        for m in out:
            after[m.experiment] = max(after.get(m.experiment, 0), m.trial + 1)
        out += [m.model_copy(update={"trial": m.trial + after.get(m.experiment, 0)})
                for m in rows]
    return out


def assemble_profile(
        sources: Sequence[tuple[str, CalibrationProfile, frozenset[str] | None]],
        base: CalibrationProfile, name: str) -> CalibrationProfile:
    """One profile fitted over the measurements of several campaign parts, no run: per
    source (where it came from, the profile, which experiments: None for all), its rows.
    Where parts measured the same experiment under different conditions (a lab fixed in
    between), choosing is what keeps the superseded rows out. Raises ValueError when the
    sources disagree on what they measured (engine, Gluster version, the machine's SYN
    retransmission setting) or give no rows."""
    if not sources:
        raise ValueError("no profile to assemble from")
    for what, values in (("engine", {p.engine for _, p, _ in sources}),
                         ("Gluster version", {p.gluster_version for _, p, _ in sources}),
                         ("syn_linear_timeouts",
                          {p.parameters.syn_linear_timeouts for _, p, _ in sources})):
        if len(values) > 1:
            raise ValueError(f"the profiles were measured with different {what}: "
                             + ", ".join(sorted(map(str, values))))
    first = sources[0][1]
    parts = [_unfitted(p.measurements, only) for _, p, only in sources]
    for (label, _, only), rows in zip(sources, parts, strict=True):
        if not rows:
            raise ValueError(f"{label}: no measurements of "
                             + (", ".join(sorted(only)) if only else "any experiment"))
    rows = _concatenated(parts)
    lab = first.engine != "model"
    params, fits, measurements = fit_measurements(
        rows, base, first.parameters.syn_linear_timeouts if lab else None,
        RECONNECT_TIMER_S if lab else None)
    if lab:
        fits["syn_linear_timeouts"] = FitNote(
            method=f"read on the measured machine ({SYN_LINEAR_SYSCTL}; 0: none), as "
            f"{sources[0][0]} recorded it")
    loads = [x for _, p, _ in sources for x in p.machine.load_avg_1m]
    busy = [x for _, p, _ in sources for x in p.machine.cpu_busy_pct]
    machine = first.machine.model_copy(update={
        "load_avg_1m": tuple(loads), "cpu_busy_pct": tuple(busy),
        "date": min(p.machine.date for _, p, _ in sources)})
    used = "; ".join(f"{label} ({', '.join(sorted(only)) if only else 'all'})"
                     for label, _, only in sources)
    return CalibrationProfile(
        name=name, description=f"fitted over the measurements of {used}",
        gluster_version=first.gluster_version, engine=first.engine, machine=machine,
        parameters=ProfileParameters(**params), fits=fits, measurements=tuple(measurements),
        to_measure=still_to_measure(rows, loads, busy))


def still_to_measure(rows: Sequence[Measurement], loads: Sequence[float],
                     busy: Sequence[float] = ()) -> tuple[str, ...]:
    """Which of the full campaign's experiments these measurements leave for a quiet
    machine: not run (or only a part, or only its CI subset), fewer than MIN_TRIALS trials
    of a case, or measured on a loaded machine: by the CPU busy % probed before every case
    where each has one, else by the load average. Each experiment is judged on its own
    cases where every measurement of it carries its case's figures (``inputs``:
    ``cpu_busy_pct``, ``load_1m``), else on the machine's figures of every part
    (``loads``, ``busy``: profiles measured before the figures were kept per case)."""
    trials: dict[str, set[int]] = {}
    for m in rows:
        trials.setdefault(m.experiment, set()).add(m.trial)
    out = []
    for name in DEFAULT_EXPERIMENTS:
        parts = [e.name for e in EXPERIMENTS.values() if e.part_of == name]
        ran = [x for x in (name, *parts) if x in trials]
        why = []
        if not ran:
            quick = f"{name}-quick"
            why.append(f"only its CI subset {quick}" if quick in trials else "not run")
        else:
            if name not in trials and len(ran) < len(parts):
                why.append(f"only {', '.join(ran)}")
            n = min(len(trials[x]) for x in ran)
            if n < MIN_TRIALS:
                why.append(f"n = {n} < {MIN_TRIALS}")
            why += _loaded([m for m in rows if m.experiment in ran], loads, busy)
        if why:
            out.append(f"{name}: {EXPERIMENTS[name].what} ({'; '.join(why)})")
    return tuple(out)


def _loaded(rows: Sequence[Measurement], loads: Sequence[float],
            busy: Sequence[float]) -> list[str]:
    """Why ``rows`` (one experiment's) were not measured on a quiet machine, if they were
    not: their own cases' figures where every row has them, else the machine's."""
    own_busy = [m.inputs.get("cpu_busy_pct") for m in rows]
    own_load = [m.inputs.get("load_1m") for m in rows]
    if rows and all(isinstance(x, float | int) for x in own_load):
        loads = [float(x) for x in own_load if isinstance(x, float | int)]
        busy = [float(x) for x in own_busy if isinstance(x, float | int)]
    probed = bool(busy) and len(busy) == len(loads)
    if probed:
        return [] if max(busy) < QUIET_BUSY_PCT else [
            f"CPU up to {max(busy):.0f} % busy before a case (quiet: < {QUIET_BUSY_PCT:.0f})"]
    if loads and max(loads) < QUIET_LOAD:
        return []
    return [f"load up to {max(loads, default=math.nan):.1f} (quiet: < {QUIET_LOAD}; "
            "no CPU busy probe)"]


def run_calibration(engine: str, base: CalibrationProfile, name: str,
                    experiments: Sequence[str] = DEFAULT_EXPERIMENTS, repeat: int = 1,
                    options: Mapping[str, Any] | None = None, profile: str | None = None,
                    observe_fn: Observe = _observe, say: Say | None = None,
                    merge: bool = False,
                    partial: Callable[[CalibrationProfile], None] | None = None,
                    busy_probe: Callable[[], float] = cpu_busy_pct,
                    logs: Path | None = None) -> CalibrationProfile:
    """Run, fit, and return the new profile (``profile``: the model profile of the cases'
    scenarios, what a model engine runs with). ``partial`` gets the profile fitted to the
    trials so far after every run (a campaign of hours keeps what it measured if it is
    interrupted)."""
    exps = experiments_named(experiments)

    def each(trials: list[Trial]) -> None:
        if partial is not None:
            partial(fit_profile(trials, base, name, engine, repeat, merge))

    probe = None if engine == "model" else busy_probe
    trials = run_trials(engine, exps, repeat, options, profile, observe_fn, say, each, probe,
                        logs)
    return fit_profile(trials, base, name, engine, repeat, merge)
