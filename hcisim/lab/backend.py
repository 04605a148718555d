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

from hcisim.lab.clientlog import ConnEvent
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

    @property
    def key(self) -> str:
        return f"{self.vm}-{self.disk_index}"


@dataclass
class Sample:
    """What one observation poll saw: client connection changes and heal listings."""

    t: float  # epoch seconds
    conn: list[tuple[str, ConnEvent]]  # (client host, event)
    pending: dict[str, dict[int, Pending]]  # volume -> brick index -> pending; missing: no answer
    connected: dict[str, list[bool]] = field(default_factory=dict)  # heal tool's own view
    listing: dict[str, str] = field(default_factory=dict)  # volume -> raw heal info text


@runtime_checkable
class Backend(Protocol):
    """Build, deploy, inject, restore, observe, destroy one lab for one scenario."""

    name: str
    scenario: Scenario

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


# name -> "module:attribute" of a factory ``(scenario, **options) -> Backend``
_REGISTRY: dict[str, str] = {
    "netns": "hcisim.lab.netns.backend:NetnsBackend",
    "libvirt": "hcisim.lab.libvirt:LibvirtBackend",
}


def register_backend(name: str, target: str) -> None:
    """Register ``module:attribute`` under ``name`` (also ``name://...`` URLs)."""
    _REGISTRY[name] = target


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


def open_backend(url: str, scenario: Scenario, **options: Any) -> Backend:
    """The backend for ``url`` (``netns``, ``netns://NAME``, ``libvirt``...), not yet built."""
    scheme, _, rest = url.partition("://")
    if scheme not in _REGISTRY:
        raise LabError("choose lab backend",
                       f"unknown backend {url!r}; known: {', '.join(backend_names())}")
    if rest and "name" not in options:
        options["name"] = rest
    module_name, _, attr = _REGISTRY[scheme].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LabError("choose lab backend", f"backend {scheme!r} is not available: {exc}") \
            from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise LabError("choose lab backend", f"{module_name} has no {attr}")
    backend: Backend = factory(scenario, **options)
    return backend
