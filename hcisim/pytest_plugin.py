"""pytest plugin (entry point ``pytest11: hcisim``): every claim of scenario files, judged on
a target, one test item per claim. Installed with hcisim, so it works outside this repo:

    pytest --hcisim-target model my-cluster.yaml scenarios/
    pytest --hcisim-target lab+netns scenarios/lab-power-loss.yaml        # root
    pytest --hcisim-target hosts+ssh://root@h1,root@h2,root@h3 --hcisim-identity KEY my.yaml

The target is an engine name (:mod:`hcisim.engines`). The plugin is dormant unless
``--hcisim-target`` is given, and then collects only YAML files named on the command line (or
inside folders named there), never a project's test paths. All claims of a scenario share one
run per session (one xdist group per file); a scenario that does not load is one failing
item naming the bad field. The repository's ``validators/`` suite (``pytest validators
--target ...``) is the same machinery with the scenario catalogue as its default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hcisim.engines import EngineOptions, EngineSpec
    from hcisim.observations import Observations
    from hcisim.scenario import ClaimSpec, Scenario, ScenarioError

# option destinations, shared with the repository's validators/conftest.py aliases
TARGET = "hcisim_target"
IDENTITY = "hcisim_identity"
ALLOW_DESTRUCTIVE = "hcisim_allow_destructive"
SCENARIO_SUFFIXES = (".yaml", ".yml")


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
        from hcisim.engines import HostsOptions

        return isinstance(self.options, HostsOptions) and self.options.allow_destructive


def parse_target(text: str, identity: Path | None = None,
                 allow_destructive: bool = False) -> Target:
    from hcisim.engines import EngineError, HostsOptions, engine_options, parse_engine

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


@dataclass
class Runs:
    """One run per scenario per session (per xdist worker): every claim of a scenario is
    judged on the same observations, and a run that failed is not retried per claim."""

    target: Target
    _done: dict[Path, tuple[Scenario, Observations] | BaseException] = field(
        default_factory=dict)

    def of(self, path: Path) -> tuple[Scenario, Observations]:
        from hcisim.engines import observe
        from hcisim.scenario import load_scenario

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
    from hcisim.scenario import ScenarioError, load_scenario

    try:
        sc = load_scenario(path)
    except ScenarioError as exc:
        return exc
    return [c.name or c.kind for c in sc.claims]


def check_claim(sc: Scenario, obs: Observations, claim: ClaimSpec,
                record: Callable[[str, object], None]) -> None:
    """Pass, or fail/skip the current test with the claim's verdict and its evidence.

    A claim documented to fail (``expect: fail``) is a strict expected failure: it is
    reported xfailed when it fails and fails the suite when it holds (the documented
    weakness must still be there)."""
    from hcisim.claims import judge_claim

    v = judge_claim(sc, obs, claim)
    for key in ("verdict", "measured", "limit", "unit"):
        record(key, getattr(v, key))
    record("engine", obs.engine)
    evidence = json.dumps(v.evidence, indent=1, default=str)
    if v.expected == "fail":
        if v.verdict != "fail":
            pytest.fail(f"[XPASS(strict)] {sc.name}: claim {v.name!r} is documented to "
                        f"fail (expect: fail) but was {v.verdict} on {obs.engine}: measured "
                        f"{v.measured} {v.unit}", pytrace=False)
        pytest.xfail(f"{sc.name}: {v.name} fails as documented (expect: fail): measured "
                     f"{v.measured} {v.unit}, limit {v.limit} {v.unit}")
    if v.verdict == "n/a":
        pytest.skip(f"{v.name}: not applicable on this run: {evidence}")
    if v.verdict != "pass":
        pytest.fail(f"{sc.name}: claim {v.name!r} ({v.kind}) failed on {obs.engine}: "
                    f"measured {v.measured} {v.unit}, limit {v.limit} {v.unit}\n"
                    f"evidence: {evidence}", pytrace=False)


_TARGET_KEY = pytest.StashKey[Target]()
_RUNS_KEY = pytest.StashKey[Runs]()


def target_of(config: pytest.Config, default: str = "model") -> Target:
    """The session's target (``--hcisim-target``, or ``default``), parsed once."""
    if _TARGET_KEY not in config.stash:
        identity = config.getoption(IDENTITY, None)
        try:
            config.stash[_TARGET_KEY] = parse_target(
                config.getoption(TARGET, None) or default,
                identity=Path(identity) if identity else None,
                allow_destructive=bool(config.getoption(ALLOW_DESTRUCTIVE, False)))
        except TargetError as exc:
            raise pytest.UsageError(str(exc)) from None
    return config.stash[_TARGET_KEY]


def runs_of(config: pytest.Config) -> Runs:
    if _RUNS_KEY not in config.stash:
        config.stash[_RUNS_KEY] = Runs(target_of(config))
    return config.stash[_RUNS_KEY]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", text).strip("-") or "claim"


# --- hooks ---------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hcisim", "hcisim: the claims of scenario files on a target")
    group.addoption("--hcisim-target", dest=TARGET, default=None, metavar="ENGINE",
                    help="judge the claims of the scenario files named on the command line "
                         "on: model, lab+netns, lab+libvirt[://URI], "
                         "hosts+ssh://root@h1,root@h2,root@h3")
    group.addoption("--hcisim-identity", dest=IDENTITY, default=None, metavar="KEY",
                    help="hosts target: SSH private key (default: agent / default keys)")
    group.addoption("--hcisim-allow-destructive", dest=ALLOW_DESTRUCTIVE, action="store_true",
                    default=False, help="hosts target: also inject the scenario's faults "
                                        "(bounded, rolled back)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "xdist_group(name): run with the other items of name")
    config.addinivalue_line("markers", "lab: runs on a real lab or real hosts")
    if config.getoption(TARGET, None) is not None:
        target_of(config)  # a bad target is a usage error before anything is collected


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    config = parent.config
    if (file_path.suffix not in SCENARIO_SUFFIXES or config.getoption(TARGET, None) is None
            or config.args_source != pytest.Config.ArgsSource.ARGS):
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


class ScenarioFile(pytest.File):
    """A scenario file: one item per claim (or one failing item if it does not load)."""

    def collect(self) -> Iterator[ClaimItem]:
        target = target_of(self.config)
        names = claim_names(self.path)
        cases = ([(-1, "load")] if not isinstance(names, list)
                 else [(i, slug(n)) for i, n in enumerate(names)])
        for index, name in cases:
            item = ClaimItem.from_parent(self, name=name, index=index)
            item.add_marker(pytest.mark.xdist_group(self.path.stem))
            if target.real:
                item.add_marker(pytest.mark.lab)
            yield item


class ClaimItem(pytest.Item):
    def __init__(self, *, index: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.index = index

    def runtest(self) -> None:
        from hcisim.scenario import load_scenario

        if self.index < 0:
            load_scenario(self.path)  # raises the ScenarioError that names the bad field
            pytest.fail(f"{self.path}: could not be loaded", pytrace=False)
        sc, obs = runs_of(self.config).of(self.path)
        check_claim(sc, obs, sc.claims[self.index],
                    lambda key, value: self.user_properties.append((key, value)))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        from hcisim.scenario import ScenarioError

        if isinstance(excinfo.value, ScenarioError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.path.name}: claim {self.name}"
