"""Engines by name: parsing, the old spellings, typed options, and a model run through it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcisim.engines import (
    DEFAULT_LIBVIRT_URI,
    EngineError,
    EngineNameError,
    EngineSpec,
    HostsOptions,
    LabOptions,
    ModelOptions,
    engine_names,
    engine_options,
    observe,
    parse_engine,
)
from hcisim.scenario import load_scenario


@pytest.mark.parametrize(("name", "spec"), [
    ("model", EngineSpec("model")),
    ("lab+netns", EngineSpec("lab", "netns")),
    ("lab+libvirt", EngineSpec("lab", "libvirt", uri=DEFAULT_LIBVIRT_URI)),
    ("lab+libvirt://qemu+ssh://kvm1/system",
     EngineSpec("lab", "libvirt", uri="qemu+ssh://kvm1/system")),
    ("hosts+ssh://root@h1,h2:2222,h3", EngineSpec("hosts", "ssh", hosts=("root@h1", "h2:2222",
                                                                          "h3"))),
])
def test_names_parse_and_round_trip(name: str, spec: EngineSpec) -> None:
    assert parse_engine(name) == spec
    assert parse_engine(spec.name) == spec


@pytest.mark.parametrize(("old", "new"), [
    ("lab", "lab+netns"), ("lab:netns", "lab+netns"), ("lab:libvirt", "lab+libvirt"),
    ("hosts:ssh://a,ssh://b,ssh://c", "hosts+ssh://a,b,c")])
def test_old_spellings_are_aliases(old: str, new: str) -> None:
    assert parse_engine(old) == parse_engine(new)


def test_old_backend_option_picks_the_lab() -> None:
    assert parse_engine("lab", backend="libvirt") == parse_engine("lab+libvirt")
    assert parse_engine("model", backend="netns") == EngineSpec("model")


@pytest.mark.parametrize(("name", "hint"), [
    ("modle", "did you mean model?"), ("lab+netn", "did you mean lab+netns?"),
    ("lab+libvirtt", "did you mean lab+libvirt[://URI]?")])
def test_unknown_name_lists_the_names_and_suggests_one(name: str, hint: str) -> None:
    with pytest.raises(EngineNameError) as exc:
        parse_engine(name)
    assert hint in str(exc.value)
    assert all(n in str(exc.value) for n in engine_names())
    assert isinstance(exc.value, ValueError) and isinstance(exc.value, EngineError)


def test_hosts_need_servers() -> None:
    with pytest.raises(EngineNameError, match="name the servers"):
        parse_engine("hosts+ssh://")
    with pytest.raises(EngineNameError, match="'h2': expected ssh://"):
        parse_engine("hosts:ssh://h1,h2")


def test_options_are_typed_per_engine() -> None:
    lab = parse_engine("lab+netns")
    opts = engine_options(lab, {"keep_logs": "/tmp/x", "poll_s": 0.5})
    assert opts == LabOptions(keep_logs=Path("/tmp/x"), poll_s=0.5)
    assert isinstance(engine_options(parse_engine("model")), ModelOptions)
    assert isinstance(engine_options(parse_engine("hosts+ssh://a,b,c")), HostsOptions)
    with pytest.raises(EngineError, match="unknown options \\['pol_s'\\]"):
        engine_options(lab, {"pol_s": 1})
    with pytest.raises(EngineError, match="options must be LabOptions"):
        engine_options(lab, HostsOptions())


def test_the_model_runs_by_name() -> None:
    sc = load_scenario(Path(__file__).parents[2] / "scenarios" / "brick-crash.yaml")
    seen: list[float] = []
    obs = observe("model", sc, progress=seen.append)
    assert obs.engine == "model" and seen and seen[-1] == pytest.approx(1.0)
    assert not obs["events"].empty
