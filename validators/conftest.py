"""Acceptance suite: each catalogue scenario's claims, judged on a target.

    pytest validators                       # the model (default)
    pytest validators --target lab+netns    # the netns lab (root, Gluster packages)
    pytest validators --target lab+libvirt --scenarios scenarios/lab-power-loss.yaml
    pytest validators -n 2 --junitxml runs/validators.xml

One test item per (scenario, claim), id ``<scenario>:<claim name>``; all claims of a
scenario share one run (same xdist group, cached per session).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hcisim.pytest_plugin import (
    ALLOW_DESTRUCTIVE,
    IDENTITY,
    TARGET,
    Runs,
    TargetError,
    claim_names,
    runs_of,
    slug,
    target_of,
)
from validators.targets import scenario_files


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hcisim validators")
    # the installed plugin's --hcisim-* options under short names (same destinations)
    group.addoption("--target", dest=TARGET, default=None,
                    help="where to check the claims: an engine name: model (default), "
                         "lab+netns, lab+libvirt[://URI], hosts+ssh://root@h1,root@h2,root@h3")
    group.addoption("--identity", dest=IDENTITY, default=None, metavar="KEY",
                    help="hosts target: SSH private key (default: agent / default keys)")
    group.addoption("--allow-destructive", dest=ALLOW_DESTRUCTIVE, action="store_true",
                    default=False,
                    help="hosts target: also inject the scenario's faults (bounded, rolled back)")
    group.addoption("--scenarios", action="append", default=None, metavar="PATH",
                    help="scenario file or folder (repeatable); default: scenarios/")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "xdist_group(name): run with the other items of name")
    target_of(config)  # default model; a bad --target is a usage error here


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "node_scenario" in metafunc.fixturenames:
        _parametrize_nodes(metafunc)
    if "claim_case" not in metafunc.fixturenames:
        return
    target = target_of(metafunc.config)
    try:
        files = scenario_files(metafunc.config.getoption("--scenarios"))
    except TargetError as exc:
        raise pytest.UsageError(str(exc)) from None
    params = []
    for path in files:
        names = claim_names(path)
        marks = [pytest.mark.xdist_group(path.stem)]
        if target.real:
            marks.append(pytest.mark.lab)
        if not isinstance(names, list):  # an invalid scenario is a failing item, not silence
            params.append(pytest.param((path, -1), id=f"{path.stem}:load", marks=marks))
            continue
        params.extend(pytest.param((path, i), id=f"{path.stem}:{slug(n)}", marks=marks)
                      for i, n in enumerate(names))
    metafunc.parametrize("claim_case", params)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Only node VMs (lab:libvirt) have deployed nodes of their own to inspect: elsewhere
    test_nodes.py is not collected at all (no empty, skipped items)."""
    if collection_path.name == "test_nodes.py":
        return target_of(config).label != "lab:libvirt" or None
    return None


def _parametrize_nodes(metafunc: pytest.Metafunc) -> None:
    """One deployed-nodes check per scenario (target lab:libvirt)."""
    files = scenario_files(metafunc.config.getoption("--scenarios"))
    metafunc.parametrize("node_scenario", [
        pytest.param(p, id=f"{p.stem}:nodes",
                     marks=[pytest.mark.xdist_group(p.stem), pytest.mark.lab])
        for p in files])


@pytest.fixture
def node_scenario(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


@pytest.fixture(scope="session")
def runs(pytestconfig: pytest.Config) -> Runs:
    return runs_of(pytestconfig)


@pytest.fixture
def claim_case(request: pytest.FixtureRequest) -> tuple[Path, int]:
    case: tuple[Path, int] = request.param
    return case
