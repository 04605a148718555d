"""The lab backend interface and the registry of backends by URL-like name.

Like pytest-testinfra's backends keyed by connection scheme: ``netns`` (here),
``libvirt`` (nested VMs, written separately), later ``hosts`` (SSH). A backend is imported
only when asked for, so a missing optional dependency of one never breaks another.

A backend is a context manager: ``__exit__`` calls :meth:`Backend.destroy`, whatever
happened (exception, Ctrl-C), and destroy must be safe to call twice and on a half-built lab.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from hcisim.lab.clientlog import ConnEvent, HealLine, QuorumEvent
from hcisim.lab.errors import LabError
from hcisim.lab.fio import FioPlan
from hcisim.lab.healinfo import Pending
from hcisim.scenario import Fault, Scenario


@dataclass(frozen=True)
class Workload:
    """One VM disk as the lab runs it: fio plus the history writer beside it."""

    vm: str
    host: str
    volume: str
    disk_index: int
    fio: FioPlan
    history_relname: str  # segment files ``<relname>.<n>`` at the volume's root
    history_log: Path  # the writer's local log (never on the volume)
    record_size: int
    per_file: int
    interval_s: float
    until: float  # epoch time the writer stops
    # seconds after the writer starts when the VM's load is 0: it writes nothing then
    idle: tuple[tuple[float, float], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.vm}-{self.disk_index}"

    def writer_args(self, stem: str, log: str) -> list[str]:
        """The history writer's arguments (after its script) for segment files at ``stem``
        and its log at ``log``, as the node that runs it sees them."""
        return ["--stem", stem, "--name", self.key, "--log", log,
                "--interval", str(self.interval_s), "--size", str(self.record_size),
                "--per-file", str(self.per_file), "--until", f"{self.until:.3f}",
                *[x for a, b in self.idle for x in ("--idle", f"{a:.3f}:{b:.3f}")]]


@dataclass
class Sample:
    """What one observation poll saw: client connection changes and heal listings."""

    t: float  # epoch seconds
    conn: list[tuple[str, ConnEvent]]  # (client host, event)
    pending: dict[str, dict[int, Pending]]  # volume -> brick index -> pending; missing: no answer
    connected: dict[str, list[bool]] = field(default_factory=dict)  # heal tool's own view
    listing: dict[str, str] = field(default_factory=dict)  # volume -> raw heal info text
    # (daemon host, event): the self-heal daemons' own brick connections, from their log
    # (empty where the backend cannot read it)
    shd: list[tuple[str, ConnEvent]] = field(default_factory=list)
    # (host, event): glusterd stopping / starting the host's bricks for server quorum
    server_quorum: list[tuple[str, QuorumEvent]] = field(default_factory=list)
    # (daemon host, line): the self-heal daemons' heals from their log (empty where the
    # backend cannot read it): when heal of a brick really began and ended
    heals: list[tuple[str, HealLine]] = field(default_factory=list)


@runtime_checkable
class Backend(Protocol):
    """Build, deploy, inject, restore, observe, destroy one lab for one scenario."""

    name: str
    scenario: Scenario
    background_heal: bool  # heal after a repair in a thread (False: wait for glusterd)

    @property
    def active_faults(self) -> list[Fault]:
        """Faults injected and not yet repaired (kept in the lab's state file)."""

    def detach(self) -> None:
        """Forget the lab without destroying it (it stays up for later commands)."""

    def build(self) -> None:
        """Machines/namespaces, networks and brick disks."""

    def deploy(self) -> None:
        """The storage stack: glusterd, peers, volumes with their options, client mounts."""

    def start_workloads(self, workloads: list[Workload]) -> None: ...

    def stop_workloads(self) -> None: ...

    def inject(self, fault: Fault) -> float:
        """Start ``fault``; return the epoch time at which it took effect."""

    def restore(self, fault: Fault) -> float:
        """Repair ``fault`` (and trigger heal if ``fault.heal_after_repair``); epoch time."""

    def trigger_heal(self, volume: str, full: bool = False) -> bool: ...

    def observe(self) -> Sample:
        """One poll of the client's view of the bricks and of pending heal."""

    def mount_path(self, host: str, volume: str) -> Path:
        """Where the harness can read ``volume`` as ``host``'s client sees it."""

    def data_brick_paths(self, volume: str) -> list[Path]:
        """Local paths of the volume's data bricks, for the history checker."""

    def meta(self) -> dict[str, Any]:
        """Facts of the lab as built: applied options, scale, addresses, versions."""

    def destroy(self) -> None:
        """Remove everything; safe on a half-built lab and when called twice."""

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


# name -> "module:attribute" of a backend class: ``cls(scenario, **options)`` makes a lab;
# ``cls.lab_names()``, ``cls.attach(name)`` and ``cls.reclaim(name)`` find, reopen and remove
# labs that are up (``hcisim lab status/fault/restore/down``). ``hosts`` are existing servers:
# nothing to build or reclaim; the acceptance run (hcisim.accept) plays faults on them.
_REGISTRY: dict[str, str] = {
    "netns": "hcisim.lab.netns.backend:NetnsBackend",
    "libvirt": "hcisim.lab.libvirt:LibvirtBackend",
    "hosts": "hcisim.lab.hosts:HostsBackend",
}
_BUILDABLE = ("netns", "libvirt")


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


def backend_class(scheme: str) -> Any:
    if scheme not in _REGISTRY:
        raise LabError("choose lab backend",
                       f"unknown backend {scheme!r}; known: {', '.join(backend_names())}")
    module_name, _, attr = _REGISTRY[scheme].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LabError("choose lab backend", f"backend {scheme!r} is not available: {exc}") \
            from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise LabError("choose lab backend", f"{module_name} has no {attr}")
    return cls


def open_backend(url: str, scenario: Scenario, **options: Any) -> Backend:
    """The backend for ``url`` (``netns``, ``netns://NAME``, ``libvirt``...), not yet built."""
    scheme, _, rest = url.partition("://")
    if scheme not in _BUILDABLE:
        raise LabError("choose lab backend", f"backend {url!r} cannot build a lab; use one "
                       f"of {', '.join(_BUILDABLE)}")
    if rest and "name" not in options:
        options["name"] = rest
    backend: Backend = backend_class(scheme)(scenario, **options)
    return backend


def labs_up() -> list[tuple[str, str]]:
    """(backend, lab name) of every lab on this machine, whichever backend made it."""
    out: list[tuple[str, str]] = []
    for scheme in _BUILDABLE:
        try:
            names: list[str] = backend_class(scheme).lab_names()
        except LabError:  # a backend that cannot load here has no labs here
            continue
        out += [(scheme, n) for n in names]
    return out


def find_lab(name: str | None) -> tuple[str, str]:
    """(backend, name) of lab ``name``, or of the only lab when ``name`` is None."""
    labs = labs_up()
    if name is not None:
        hit = [lab for lab in labs if lab[1] == name]
        if not hit:
            raise LabError("find the lab", f"no lab named {name!r} (labs up: "
                           f"{', '.join(n for _, n in labs) or 'none'})")
        return hit[0]
    if len(labs) == 1:
        return labs[0]
    if not labs:
        raise LabError("find the lab", "no lab is up (start one with `hcisim lab up SCENARIO`)")
    raise LabError("find the lab", f"several labs are up ({', '.join(n for _, n in labs)}): "
                   "say which with --name")


def attach_lab(name: str | None) -> Backend:
    """The backend of a lab that is up, to inject, restore and observe by hand."""
    scheme, lab = find_lab(name)
    backend: Backend = backend_class(scheme).attach(lab)
    return backend
