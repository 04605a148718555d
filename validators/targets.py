"""Validator targets: where the catalogue's claims are checked, and one run per scenario.

``--target`` takes an engine name (:mod:`hcisim.engines`): ``model`` (default),
``lab+netns``, ``lab+libvirt[://URI]``, ``hosts+ssh://root@h1,root@h2,root@h3`` (existing
servers over SSH: read-only checks and a baseline; the scenario's faults only with
``--allow-destructive``). The older ``lab``, ``lab:netns``, ``lab:libvirt`` and
``hosts:ssh://h1,ssh://h2,...`` mean the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hcisim.engines import (
    EngineError,
    EngineOptions,
    EngineSpec,
    HostsOptions,
    engine_options,
    observe,
    parse_engine,
)
from hcisim.observations import Observations
from hcisim.scenario import Scenario, ScenarioError, load_scenario

REPO = Path(__file__).resolve().parents[1]
CATALOGUE = REPO / "scenarios"


class TargetError(ValueError):
    """A --target the suite cannot use; the message says what would work."""


@dataclass(frozen=True)
class Target:
    """An engine and its options, as the suite runs every scenario on it."""

    spec: EngineSpec
    options: EngineOptions

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def real(self) -> bool:
        """A lab or real hosts (slow, needs root or servers): the items carry ``lab``."""
        return self.spec.kind != "model"

    @property
    def allow_destructive(self) -> bool:
        return isinstance(self.options, HostsOptions) and self.options.allow_destructive


def parse_target(text: str, identity: Path | None = None,
                 allow_destructive: bool = False) -> Target:
    try:
        spec = parse_engine(text)
    except EngineError as exc:
        raise TargetError(f"--target {text}: {exc}") from None
    if spec.kind != "hosts":
        return Target(spec, engine_options(spec))
    from hcisim.accept.targets import TargetError as HostsError
    from hcisim.accept.targets import parse_targets

    try:  # the same checks as `hcisim accept`: user, port, no password in the URL...
        parse_targets(",".join(f"ssh://{h}" for h in spec.hosts))
    except HostsError as exc:
        raise TargetError(f"--target {text}: {exc}") from None
    return Target(spec, HostsOptions(identity=identity, allow_destructive=allow_destructive))


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
                self._done[path] = (sc, observe(self.target.spec, sc,
                                                options=self.target.options))
            except Exception as exc:  # kept and raised again for each claim of the scenario
                self._done[path] = exc
        got = self._done[path]
        if isinstance(got, BaseException):
            raise got
        return got


def claim_names(path: Path) -> list[str] | ScenarioError:
    """The claims of a scenario file in order (or why the file is not a scenario)."""
    try:
        sc = load_scenario(path)
    except ScenarioError as exc:
        return exc
    return [c.name or c.kind for c in sc.claims]
