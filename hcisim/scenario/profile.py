"""Calibration profiles: the model's timing parameters as measured on a cluster, with the
measurements they came from.

A profile is a YAML file (``hcisim calibrate`` writes one, docs/calibration.md): the fitted
``parameters``, the ``machine`` it was measured on (kernel, CPUs, Gluster version, load,
date), every raw ``measurements`` row with the model's prediction and residual, and per
parameter how it was fitted (``fits``). A scenario names its profile in ``model.profile``
(a name from ``hcisim/builtin/profiles/`` or a path); the parameters fill every timing knob
of ``model`` the scenario does not set itself. The shipped profile is the fit over the
netns lab's quiet calibration parts in ``lab/calibration/`` (assembled by ``hcisim
calibrate --from``; its header has the command).

It lives beside the scenario because it is read while a scenario is validated (the scenario
layer imports nothing else of hcisim); the experiments that write profiles are
:mod:`hcisim.calibration`.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, ValidationError

from hcisim.scenario.base import Strict

DEFAULT_PROFILE = "netns-gluster10"
PROFILE_DIR = "profiles"


class ProfileError(ValueError):
    """A profile that cannot be used: ``problems`` are ``field: message`` lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid calibration profile: " + "; ".join(problems))


class ProfileParameters(Strict):
    """The model's timing parameters (docs/model.md says where each one acts)."""

    detection_anchor_s: float = Field(
        description="when the clients' ping chains started relative to t = 0, for a known "
        "phase (model.detection.anchor_s; negative: the mounts came up before the run)")
    peer_anchor_s: float | None = Field(
        None, description="when glusterd's peer connections were last busy relative to t "
        "= 0, for a known phase (model.detection.peer_anchor_s): their TCP keepalive "
        "answers every keepalive-time from there, which sets when server quorum notices a "
        "cut peer; none: not measured (the phase is drawn)")
    ping_timer_late_s: NonNegativeFloat = Field(
        description="how late each ping-timer callback fires (timer thread, scheduling): a "
        "busy connection pings every T + rtt + late, and bails out T + late after the lost "
        "ping")
    reconnect_delay_s: NonNegativeFloat = Field(
        description="from a brick being reachable again (repair) until its clients use it: "
        "brick restart by glusterd and the client's reconnect timer")
    reconnect_timer_s: NonNegativeFloat = Field(
        0.0, description="the clients' reconnect timer (rpc-clnt.c: 3 s): a client that "
        "lost a brick tries again every this long from its disconnect, and uses a repaired "
        "brick at its first try after the repair, reconnect_delay_s later; 0: "
        "reconnect_delay_s after the repair")
    syn_linear_timeouts: NonNegativeInt = Field(
        4, description="the measured machine's net.ipv4.tcp_syn_linear_timeouts (Linux >= "
        "6.5: 4; 0 before, e.g. EL 8/9): how a client's connect to a host that does not "
        "answer retransmits its SYN (1 s apart that many times + 1, then doubling), which "
        "is when it reconnects after a link or power loss (with reconnect_timer_s > 0)")
    heal_noticed_s: NonNegativeFloat = Field(
        description="from a brick's reconnect until the self-heal daemon starts healing it")
    heal_thread_mb_s: PositiveFloat = Field(
        description="copy rate of one self-heal thread inside a shard (per-byte cost = "
        "1 / rate), MB/s")
    heal_entry_s: NonNegativeFloat = Field(
        description="fixed cost per healed entry (shard) and thread: lookup, locks, "
        "xattrs, fsync")
    heal_core_mb_s: NonNegativeFloat = Field(
        0.0, description="most MB/s a self-heal daemon heals per CPU core of its host, "
        "whatever its threads: heal is CPU work (RPC, locks, copies), and on the 2-core "
        "netns lab 8 threads heal no faster than 1; 0: no such cap")
    heal_concurrency: NonNegativeFloat = Field(
        0.0, description="how much heal's CPU rate falls with the entries in flight per "
        "core beyond one: the cores heal heal_core_mb_s / (1 + heal_concurrency x (in "
        "flight / cores - 1)) each (on the 2-core netns lab 16 entries in flight take 1.2-1.5 "
        "s each, 2 take 0.02-0.06 s); 0: no such cost")
    engine_overhead_ms: NonNegativeFloat = Field(
        description="fixed client + translator cost per request (FUSE, AFR), ms")


# ModelParams fields (and the detection key) each parameter fills.
MODEL_KEYS = ("ping_timer_late_s", "reconnect_delay_s", "reconnect_timer_s",
              "syn_linear_timeouts", "heal_noticed_s", "heal_thread_mb_s", "heal_entry_s",
              "heal_core_mb_s", "heal_concurrency", "engine_overhead_ms")
DETECTION_KEYS = {"detection_anchor_s": "anchor_s", "peer_anchor_s": "peer_anchor_s"}


class MachineFacts(Strict):
    """Where the measurements were taken."""

    kernel: str = ""
    cpus: int | None = None
    glusterfs: str = ""
    python: str = ""
    load_avg_1m: tuple[float, ...] = Field(
        (), description="1-minute load average before each experiment. It counts the "
        "campaign's own previous lab (bring-up and teardown threads of a dozen daemons): "
        "back to back, 5-14 on an otherwise idle 2-core machine, so it says little")
    cpu_busy_pct: tuple[float, ...] = Field(
        (), description="CPU busy % of the machine over the second before each "
        "experiment's lab came up, the previous one gone: what else ran (quiet: < 10)")
    date: str = Field("", description="ISO 8601, when the campaign started")


class Measurement(Strict):
    """One trial of one experiment: what was measured, what the model predicts for it."""

    experiment: str
    quantity: str
    unit: str
    trial: int = Field(ge=0)
    inputs: dict[str, float | str] = Field(default_factory=dict)
    measured: float
    predicted: float | None = None
    residual: float | None = Field(None, description="measured - predicted")


class FitNote(Strict):
    """How one parameter got its value."""

    method: str
    experiments: tuple[str, ...] = ()
    n: int = Field(0, ge=0)
    rms_residual: float | None = None


class CalibrationProfile(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    gluster_version: str = ""
    engine: str = Field("", description="where it was measured (an engine name)")
    machine: MachineFacts = MachineFacts()
    parameters: ProfileParameters
    fits: dict[str, FitNote] = Field(default_factory=dict)
    measurements: tuple[Measurement, ...] = ()
    to_measure: tuple[str, ...] = Field(
        (), description="experiments still to be run on a quiet machine")

    def model_values(self) -> dict[str, float | int]:
        """The ``model`` keys this profile fills (detection's anchor not included)."""
        values = {k: getattr(self.parameters, k) for k in MODEL_KEYS}
        return {k: v if isinstance(v, int) and k == "syn_linear_timeouts" else float(v)
                for k, v in values.items()}


def builtin_profile_path(name: str) -> Path:
    return Path(str(resources.files("hcisim") / "builtin" / PROFILE_DIR / f"{name}.yaml"))


def builtin_profiles() -> list[str]:
    folder = Path(str(resources.files("hcisim") / "builtin" / PROFILE_DIR))
    return sorted(p.stem for p in folder.glob("*.yaml"))


def profile_path(ref: str | Path) -> Path:
    """A profile's file: a shipped name, or a path (anything with a '/' or ending .yaml)."""
    text = str(ref)
    if isinstance(ref, Path) or "/" in text or text.endswith((".yaml", ".yml")):
        return Path(text)
    path = builtin_profile_path(text)
    if not path.exists():
        raise ProfileError(text, [f"no shipped profile of that name (shipped: "
                                  f"{', '.join(builtin_profiles())}; or give a path)"])
    return path


def load_profile(ref: str | Path = DEFAULT_PROFILE) -> CalibrationProfile:
    """The profile ``ref`` names (read once per file and modification time)."""
    path = profile_path(ref)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise ProfileError(str(path), [f"cannot read file: {exc.strerror}"]) from None
    return _load(str(path.resolve()), stamp)


@functools.cache
def _load(path: str, stamp: int) -> CalibrationProfile:
    from hcisim.scenario.load import validation_problems, yaml_mapping

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ProfileError(path, [f"cannot read file: {exc.strerror}"]) from None
    data, why = yaml_mapping(text)
    if data is None:
        raise ProfileError(path, [why or "not a mapping"])
    try:
        return CalibrationProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(path, [str(p) for p in validation_problems(
            exc, text, CalibrationProfile)]) from None


def dump_profile(profile: CalibrationProfile) -> str:
    data: dict[str, Any] = profile.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False, width=100)


def save_profile(profile: CalibrationProfile, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# hcisim calibration profile (docs/calibration.md)\n"
                    + dump_profile(profile))


def fill_model(data: dict[str, Any]) -> dict[str, Any]:
    """A scenario's ``model`` mapping with every timing key it leaves out taken from its
    profile (``profile``, default :data:`DEFAULT_PROFILE`). Raises ValueError naming
    ``profile`` when the profile cannot be used."""
    ref = data.get("profile", DEFAULT_PROFILE)
    if not isinstance(ref, str):
        return data  # the field's own validation reports the type
    try:
        prof = load_profile(ref)
    except ProfileError as exc:
        raise ValueError(f"profile: {exc}") from None
    out = {**prof.model_values(), **data}
    det = out.get("detection", {})
    if isinstance(det, dict):
        det = dict(det)
        for key, field in DETECTION_KEYS.items():
            value = getattr(prof.parameters, key)
            det.setdefault(field, None if value is None else float(value))
        out["detection"] = det
    return out
