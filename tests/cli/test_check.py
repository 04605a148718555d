"""``hcisim check`` as a linter: every file, FILE:LINE:COL: messages in words, did you mean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hcisim.scenario import Scenario, ScenarioError, parse_scenario
from hcisim.scenario.messages import PATTERN_WORDS
from tests.cli.shell import ROOT, hcisim

MINIMAL = """\
name: t
hosts:
  - {name: h1, nics: [{name: n, gbps: 10, networks: [storage, management]}]}
  - {name: h2, nics: [{name: n, gbps: 10, networks: [storage, management]}]}
  - {name: h3, nics: [{name: n, gbps: 10, networks: [storage, management]}]}
volumes:
  - {name: data, type: replica3, bricks: [{host: h1}, {host: h2}, {host: h3}]}
"""
THREE_HOSTS = "\n".join(MINIMAL.splitlines()[2:5])
# Pydantic's own wording, which a scenario author should never have to read.
RAW = ("Input should", "String should", "Tuple should", "Input tag", "Unable to extract",
       "after validation", "extra_forbidden")


def _problem(text: str, path: str | None = None) -> tuple[str, int | None, int | None]:
    """The one problem of ``text`` (at ``path``: a typo is also a missing key)."""
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(text, "t.yaml")
    (p,) = [p for p in exc.value.details if path is None or p.path == path]
    return f"{p.path}: {p.message}", p.line, p.column


@pytest.mark.parametrize(("text", "expected", "line", "there"), [
    (MINIMAL + "claims: [{kind: zero_downtme}]\n",
     "claims[0].kind: must be one of zero_downtime, ", 8, "kind: zero_downtme"),
    (MINIMAL + "claims: [{max_stall_s: 5}]\n",
     "claims[0].kind: required: what claim this is (one of ha_reservation, ", 8,
     "{max_stall_s"),
    (MINIMAL.replace("name: h1", "name: Host_1"),
     "hosts[0].name: 'Host_1' is not a valid host name: lower-case letters", 3, "name: Host_1"),
    (MINIMAL.replace(THREE_HOSTS, THREE_HOSTS.rsplit("\n", 1)[0]),
     "hosts: needs at least 3 hosts, got 2", 2, "hosts:"),
    (MINIMAL + "hots: 3\n", "hots: unknown key; did you mean 'hosts'?", 8, "hots: 3"),
    (MINIMAL.replace("gbps: 10", "gpbs: 10", 1),
     "hosts[0].nics[0].gpbs: unknown key; did you mean 'gbps'?", 3, "gpbs: 10"),
    (MINIMAL + "claims: [{kind: heal_within, within_s: 5, volme: data}]\n",
     "claims[0].volme: not a field of heal_within; did you mean 'volume'?", 8,
     "volme: data"),
    (MINIMAL + "faults: [{at_s: 5, kind: node_power_los, target: h1}]\n",
     "faults[0].kind: must be one of node_power_loss, ", 8, "kind: node_power_los"),
    (MINIMAL.replace("gbps: 10", "gbps: fast", 1),
     "hosts[0].nics[0].gbps: must be a valid number, unable to parse string as a number, "
     "got 'fast'", 3, "gbps: fast"),
])
def test_messages_in_words_at_line_and_column(text: str, expected: str, line: int,
                                               there: str) -> None:
    """The message in words, and line:column point at the text ``there``."""
    message, at_line, at_column = _problem(text, expected.split(":")[0])
    assert message.startswith(expected), message
    assert at_line == line and at_column is not None
    assert text.splitlines()[line - 1][at_column - 1:].startswith(there)
    assert not any(raw in message for raw in RAW), message


def test_unknown_kind_suggests_the_closest() -> None:
    message, _, _ = _problem(MINIMAL + "faults: [{at_s: 5, kind: node_power_los, target: h1}]\n")
    assert message.endswith("'node_power_los' is no fault kind; did you mean 'node_power_loss'?")


@pytest.mark.parametrize(("text", "only"), [
    (MINIMAL.replace("gbps: 10", "gpbs: 10", 1),
     "hosts[0].nics[0].gpbs: unknown key; did you mean 'gbps'? (line 3)"),
    (MINIMAL.replace("hosts:", "hots:"), "hots: unknown key; did you mean 'hosts'? (line 2)"),
])
def test_a_typo_is_one_problem_not_also_a_missing_key(text: str, only: str) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(text, "t.yaml")
    assert exc.value.problems == [only]


def test_a_missing_key_without_a_typo_is_still_reported() -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(MINIMAL.replace("gbps: 10", "speed: 10", 1), "t.yaml")
    assert exc.value.problems == ["hosts[0].nics[0].gbps: required (line 3)",
                                  "hosts[0].nics[0].speed: unknown key (line 3)"]


def test_no_suggestion_when_nothing_is_close() -> None:
    message, _, _ = _problem(MINIMAL + "colour: red\n")
    assert message == "colour: unknown key"


def _patterns(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["pattern"]} if "pattern" in node else set()
        return found.union(*(_patterns(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_patterns(v) for v in node))
    return set()


def test_every_name_pattern_has_words() -> None:
    patterns = _patterns(Scenario.model_json_schema())
    assert patterns and patterns <= set(PATTERN_WORDS)


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_check_reads_every_file_and_exits_2(tmp_path: Path) -> None:
    good = _write(tmp_path, "good.yaml", MINIMAL)
    typo = _write(tmp_path, "typo.yaml", MINIMAL + "hots: 3\n")
    broken = _write(tmp_path, "broken.yaml", "name: [x\n")
    also_good = ROOT / "scenarios/default.yaml"
    r = hcisim("check", str(good), str(typo), str(tmp_path / "missing.yaml"), str(broken),
               str(also_good))
    assert r.returncode == 2
    lines = r.stdout.splitlines()
    assert lines == [
        f"{good}: ok (t: 0 VMs, 1 volumes, 0 faults, 0 claims)",
        f"{typo}:8:1: hots: unknown key; did you mean 'hosts'?",
        f"{tmp_path / 'missing.yaml'}: cannot read file: No such file or directory",
        f"{broken}:2:1: not valid YAML (expected ',' or ']', but got '<stream end>')",
        lines[-1],
    ]
    assert lines[-1].startswith(f"{also_good}: ok (default:")
    assert "3 of 5 file(s) have problems" in r.stderr
    assert "Traceback" not in r.stderr


def test_check_all_good_exits_0() -> None:
    r = hcisim("check", *(str(p) for p in sorted((ROOT / "scenarios").glob("*.yaml"))))
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_json(tmp_path: Path) -> None:
    typo = _write(tmp_path, "typo.yaml", MINIMAL + "hots: 3\n")
    r = hcisim("check", "--json", str(typo), str(ROOT / "scenarios/default.yaml"))
    assert r.returncode == 2
    bad, good = json.loads(r.stdout)
    assert bad == {"file": str(typo), "ok": False, "scenario": None, "problems": [
        {"line": 8, "column": 1, "path": "hots",
         "message": "unknown key; did you mean 'hosts'?"}]}
    assert good["ok"] and good["scenario"]["name"] == "default"
