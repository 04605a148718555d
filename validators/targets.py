"""Validator targets: where the catalogue's claims are checked, and one run per scenario.

``--target model`` (default), ``lab`` (= ``lab:netns``), ``lab:netns``, ``lab:libvirt``,
``hosts:ssh://root@h1,ssh://root@h2,ssh://root@h3`` (existing servers over SSH: read-only
checks and a baseline; the scenario's faults only with ``--allow-destructive``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hcisim.observations import Observations
from hcisim.scenario import Scenario, ScenarioError, load_scenario

LAB_BACKENDS = ("netns", "libvirt")
REPO = Path(__file__).resolve().parents[1]
CATALOGUE = REPO / "scenarios"


class TargetError(ValueError):
    """A --target the suite cannot use; the message says what would work."""


@dataclass(frozen=True)
class Target:
    engine: str  # model | lab | hosts
    backend: str = "netns"
    hosts: str = ""  # hosts: the comma-separated ssh:// URLs
    identity: Path | None = None
    allow_destructive: bool = False

    @property
    def label(self) -> str:
        if self.engine == "hosts":
            return "hosts"
        return "model" if self.engine == "model" else f"lab:{self.backend}"


def parse_target(text: str, identity: Path | None = None,
                 allow_destructive: bool = False) -> Target:
    kind, _, rest = text.partition(":")
    if kind == "model" and not rest:
        return Target("model")
    if kind == "lab":
        backend = rest or "netns"
        if backend not in LAB_BACKENDS:
            raise TargetError(f"--target {text}: unknown lab backend {backend!r} "
                              f"(use {', '.join('lab:' + b for b in LAB_BACKENDS)})")
        return Target("lab", backend)
    if kind == "hosts":
        from hcisim.accept.targets import TargetError as HostsError
        from hcisim.accept.targets import parse_targets

        try:
            parse_targets(rest)
        except HostsError as exc:
            raise TargetError(f"--target {text}: {exc}") from None
        return Target("hosts", hosts=rest, identity=identity,
                      allow_destructive=allow_destructive)
    raise TargetError(f"--target {text}: unknown target (use model, lab, lab:netns, "
                      "lab:libvirt, hosts:ssh://...)")


def scenario_files(given: list[str] | None) -> list[Path]:
    """Scenario files named on the command line (files or folders), default the catalogue."""
    roots = [Path(g) for g in given] if given else [CATALOGUE]
    files: list[Path] = []
    for root in roots:
        if root.is_dir():
            files.extend(sorted(root.glob("*.yaml")))
        elif root.exists():
            files.append(root)
        else:
            raise TargetError(f"--scenarios {root}: no such file or folder")
    return files


@dataclass
class Runs:
    """One run per scenario per session (per xdist worker): every claim of a scenario is
    judged on the same observations, and a run that failed is not retried per claim."""

    target: Target
    _done: dict[Path, tuple[Scenario, Observations] | BaseException] = field(
        default_factory=dict)

    def of(self, path: Path) -> tuple[Scenario, Observations]:
        if path not in self._done:
            try:
                sc = load_scenario(path)
                self._done[path] = (sc, observe(sc, self.target))
            except Exception as exc:  # kept and raised again for each claim of the scenario
                self._done[path] = exc
        got = self._done[path]
        if isinstance(got, BaseException):
            raise got
        return got


def observe(sc: Scenario, target: Target) -> Observations:
    from hcisim.runner import engine_observations

    if target.engine == "hosts":
        from hcisim.accept import AcceptOptions, SshOptions, observe_hosts

        return observe_hosts(sc, target.hosts, SshOptions(identity=target.identity),
                             AcceptOptions(allow_destructive=target.allow_destructive))

    return engine_observations(sc, target.engine, backend=target.backend)


def claim_names(path: Path) -> list[str] | ScenarioError:
    """The claims of a scenario file in order (or why the file is not a scenario)."""
    try:
        sc = load_scenario(path)
    except ScenarioError as exc:
        return exc
    return [c.name or c.kind for c in sc.claims]
