"""Engines by name: one registry, keyed like testinfra's backends, each returning Observations.

Names (``hcisim run --engine NAME``, ``pytest validators --target NAME``):

- ``model``: the SimPy fluid model;
- ``lab+netns``: real Gluster in network namespaces on this machine;
- ``lab+libvirt`` or ``lab+libvirt://URI``: node VMs under libvirt (default ``qemu:///system``);
- ``hosts+ssh://h1,h2,h3``: existing servers over SSH (``user@host``, ``host:port`` allowed).

The older spellings stay accepted and mean the same: ``lab`` (= ``lab+netns``),
``lab:netns``, ``lab:libvirt``, ``hosts:ssh://h1,ssh://h2,...``, and ``--engine lab
--backend B`` (``parse_engine("lab", backend="B")``).

This module is part of the shared vocabulary: it imports only the scenario and observations
at module level; an engine's own package is imported when that engine runs, so the model
never loads the lab and a machine without libvirt can still run the model.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from hcisim.observations import Observations
from hcisim.scenario import Scenario

Progress = Callable[[float], None]  # fraction of the run done, 0..1
EngineKind = Literal["model", "lab", "hosts"]
DEFAULT_LIBVIRT_URI = "qemu:///system"


class EngineError(Exception):
    """An engine could not produce observations (bad set-up, lab failed to come up...).

    ``hcisim run`` reports it as one line with exit code 3, never a traceback.
    """


class EngineNameError(EngineError, ValueError):
    """An engine name that names no engine; the message lists the valid names."""


# --- typed options, one class per engine ----------------------------------------------------
@dataclass(frozen=True)
class ModelOptions:
    """The model takes everything from the scenario (its ``model:`` section)."""


@dataclass(frozen=True)
class LabOptions:
    """Knobs of a lab run (not facts about the cluster: those are in the scenario)."""

    name: str | None = None  # the lab's name (default: made up from the scenario)
    size_scale: float | None = None  # None: fit the machine (see hcisim.lab.scale)
    io_scale: float | None = None
    stall_threshold_s: float = 0.5  # a write+fsync slower than this is a stall
    writer_interval_s: float = 0.02  # one history record every 20 ms
    poll_s: float = 1.0
    heal_wait_s: float = 180.0  # after the run, how long to wait for pending heal 0
    volume_set: Mapping[str, str] = field(default_factory=dict)  # extra gluster options
    keep_logs: Path | None = None  # copy fio/history logs here


@dataclass(frozen=True)
class HostsOptions:
    """How to reach existing servers, and the acceptance's safety policy."""

    identity: Path | None = None  # SSH key file (default: agent / default keys)
    known_hosts: Path | None = None
    trust_new_hosts: bool = False
    allow_destructive: bool = False  # without it only read-only checks and a baseline run
    power_off_cmd: str | None = None  # node_power_loss: commands run locally, {host} filled in
    power_on_cmd: str | None = None
    max_fault_s: float | None = None  # hard bound on any fault (None: the policy's default)


EngineOptions = ModelOptions | LabOptions | HostsOptions


# --- names ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EngineSpec:
    """A parsed engine name. ``backend`` is the lab kind or ``ssh``; ``uri`` the libvirt
    connection; ``hosts`` the servers of ``hosts+ssh``."""

    kind: EngineKind
    backend: str | None = None
    uri: str | None = None
    hosts: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The canonical name (``parse_engine(spec.name) == spec``)."""
        if self.kind == "model":
            return "model"
        if self.kind == "hosts":
            return "hosts+ssh://" + ",".join(self.hosts)
        if self.backend == "libvirt" and self.uri and self.uri != DEFAULT_LIBVIRT_URI:
            return f"lab+libvirt://{self.uri}"
        return f"lab+{self.backend}"

    @property
    def label(self) -> str:
        """What ``Observations.engine`` says: ``model``, ``lab:<backend>``, ``hosts``."""
        return {"model": "model", "hosts": "hosts"}.get(self.kind, f"lab:{self.backend}")

    @property
    def options_type(self) -> type[EngineOptions]:
        return _ENGINES[self.scheme].options

    @property
    def scheme(self) -> str:
        return "model" if self.kind == "model" else f"{self.kind}+{self.backend}"


@dataclass(frozen=True)
class _Engine:
    options: type[EngineOptions]
    observe: Callable[[EngineSpec, Scenario, Progress | None, Any], Observations]
    usage: str


def _parse_hosts(rest: str, name: str) -> tuple[str, ...]:
    hosts = tuple(h.strip().removeprefix("ssh://") for h in rest.split(",") if h.strip())
    if not hosts:
        raise EngineNameError(f"engine {name!r}: name the servers, e.g. "
                              "hosts+ssh://root@h1,root@h2,root@h3")
    return hosts


_ALIASES = {"lab": "lab+netns", "lab:netns": "lab+netns", "lab:libvirt": "lab+libvirt"}


def parse_engine(name: str, backend: str | None = None) -> EngineSpec:
    """The engine ``name`` means, or EngineNameError listing the valid names.

    ``backend`` is the old ``--backend`` option: with ``name`` ``lab`` it picks the lab kind.
    """
    text = name.strip()
    if text == "lab" and backend:
        text = f"lab+{backend}"
    text = _ALIASES.get(text, text)
    if text.startswith("hosts:"):  # the old spelling: an ssh:// URL per host
        urls = [u.strip() for u in text.removeprefix("hosts:").split(",") if u.strip()]
        for u in urls:
            if not u.startswith("ssh://"):
                raise EngineNameError(f"engine {name!r}: {u!r}: expected ssh://[user@]host "
                                      "(or write hosts+ssh://h1,h2,h3)")
        text = "hosts+ssh://" + ",".join(u.removeprefix("ssh://") for u in urls)
    scheme, sep, rest = text.partition("://")
    if scheme == "model" and not sep:
        return EngineSpec("model")
    if scheme == "lab+netns" and not sep:
        return EngineSpec("lab", "netns")
    if scheme == "lab+libvirt":
        return EngineSpec("lab", "libvirt", uri=rest or DEFAULT_LIBVIRT_URI)
    if scheme == "hosts+ssh":
        return EngineSpec("hosts", "ssh", hosts=_parse_hosts(rest, name))
    valid = [e.usage for e in _ENGINES.values()]
    close = difflib.get_close_matches(scheme, [*_ENGINES, *_ALIASES], n=1)
    hint = f"; did you mean {_ENGINES[_ALIASES.get(close[0], close[0])].usage}?" if close else ""
    raise EngineNameError(f"unknown engine {name!r}: use one of {', '.join(valid)}{hint}")


def engine_names() -> list[str]:
    """The registry's names as a user writes them."""
    return [e.usage for e in _ENGINES.values()]


def engine_options(spec: EngineSpec, given: Mapping[str, Any] | EngineOptions | None = None
                   ) -> EngineOptions:
    """Typed options for ``spec`` from a mapping (unknown keys are an error) or as given."""
    cls = spec.options_type
    if given is None:
        return cls()
    if isinstance(given, cls):
        return given
    if not isinstance(given, Mapping):
        raise EngineError(f"engine {spec.name}: options must be {cls.__name__}, "
                          f"not {type(given).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise EngineError(f"engine {spec.name}: unknown options {unknown}; "
                          f"known: {sorted(known)}")
    values = dict(given)
    for key in ("keep_logs", "identity", "known_hosts"):
        if isinstance(values.get(key), str):
            values[key] = Path(values[key])
    return cls(**values)


def observe(spec: EngineSpec | str, scenario: Scenario, progress: Progress | None = None,
            options: Mapping[str, Any] | EngineOptions | None = None) -> Observations:
    """Run ``scenario`` on the engine and return what it observed."""
    if isinstance(spec, str):
        spec = parse_engine(spec)
    opts = engine_options(spec, options)
    return _ENGINES[spec.scheme].observe(spec, scenario, progress, opts)


# --- the engines (imported when they run) ---------------------------------------------------
def _load(target: str) -> Any:
    """``module:attribute``, imported now. By name, so that the vocabulary does not depend on
    any engine (the import contracts check this) and an engine loads only when it runs."""
    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise EngineError(f"{target} is not available: {exc}") from None


def _observe_model(spec: EngineSpec, sc: Scenario, progress: Progress | None,
                   opts: ModelOptions) -> Observations:
    obs: Observations = _load("hcisim.model:simulate")(sc, progress=progress)
    return obs


@contextlib.contextmanager
def _libvirt_uri(uri: str | None) -> Iterator[None]:
    """The libvirt backend reads its connection from HCISIM_LIBVIRT_URI (run_lab does not
    take a URI yet); set it for this run only."""
    old = os.environ.get("HCISIM_LIBVIRT_URI")
    if uri:
        os.environ["HCISIM_LIBVIRT_URI"] = uri
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HCISIM_LIBVIRT_URI", None)
        else:
            os.environ["HCISIM_LIBVIRT_URI"] = old


def _observe_lab(spec: EngineSpec, sc: Scenario, progress: Progress | None,
                 opts: LabOptions) -> Observations:
    pool = [h.name for h in sc.hosts if not h.compute_only]
    extra = [h.name for h in sc.hosts if h.compute_only]
    if len(pool) != 3:
        raise EngineError(f"scenario {sc.name!r}: the labs build three storage nodes (hosts "
                          f"with disks), this scenario has {len(pool)} ({', '.join(pool)})")
    if extra and spec.backend != "netns":
        raise EngineError(f"scenario {sc.name!r}: compute-only hosts ({', '.join(extra)}) "
                          f"run on the model and the netns lab, not on the {spec.backend} lab")
    kwargs = {f.name: getattr(opts, f.name) for f in fields(opts)}
    kwargs["volume_set"] = dict(opts.volume_set)
    run_lab = _load("hcisim.lab:run_lab")
    with _libvirt_uri(spec.uri if spec.backend == "libvirt" else None):
        obs: Observations = run_lab(sc, backend=spec.backend, progress=progress, **kwargs)
    return obs


# run_hosts(scenario, hosts, HostsOptions, progress): the acceptance policy around the hosts
# lab backend (hcisim.lab.hosts.HostsBackend)
HOSTS_BACKEND = "hcisim.accept.run:run_hosts"


def _observe_hosts(spec: EngineSpec, sc: Scenario, progress: Progress | None,
                   opts: HostsOptions) -> Observations:
    """Existing servers: the acceptance run on the hosts lab backend (:data:`HOSTS_BACKEND`)."""
    obs: Observations = _load(HOSTS_BACKEND)(sc, spec.hosts, opts, progress)
    return obs


_ENGINES: dict[str, _Engine] = {
    "model": _Engine(ModelOptions, _observe_model, "model"),
    "lab+netns": _Engine(LabOptions, _observe_lab, "lab+netns"),
    "lab+libvirt": _Engine(LabOptions, _observe_lab, "lab+libvirt[://URI]"),
    "hosts+ssh": _Engine(HostsOptions, _observe_hosts, "hosts+ssh://h1,h2,h3"),
}
