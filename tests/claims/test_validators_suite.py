"""The validators/ suite itself, run as a user runs it (a pytest subprocess on the model)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from validators.targets import TargetError, parse_target

REPO = Path(__file__).resolve().parents[2]

SCENARIO = """
name: {name}
duration_s: 120
hosts:
  - &h {{name: host1, cores: 8, ram_gib: 64, nics: [{{name: m, gbps: 1, networks: [management]}},
        {{name: s, gbps: 10, networks: [storage]}}]}}
  - {{<<: *h, name: host2}}
  - {{<<: *h, name: host3}}
volumes:
  - name: data
    type: replica3
    size_gb: 100
    bricks: [{{host: host1}}, {{host: host2}}, {{host: host3}}]
io_profiles:
  web: {{block_kib: 16, iops: 200}}
vms:
  - {{name: a, host: host1, ha: true, disks: [{{volume: data, size_gb: 10, io: web}}]}}
  - {{name: b, host: host3, disks: [{{volume: data, size_gb: 10, io: web}}]}}
faults:
  - {{at_s: 30, kind: node_power_loss, target: host2, duration_s: 30}}
claims:
  - {{kind: usable_capacity_at_least, name: holds the data, gb: 10}}
  - {{kind: usable_capacity_at_least, name: holds a petabyte, gb: 1000000}}
  - {{kind: zero_downtime, name: survivors ride through, max_stall_s: 120}}
  - {{kind: vm_restart_within, within_s: 60, vms: [b]}}
"""


def _pytest(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "validators", "-p", "no:randomly",
                           *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_a_failing_claim_is_a_failing_item_and_others_pass_or_skip(tmp_path: Path) -> None:
    """Also: an invalid scenario is a failing item that names the bad field."""
    (tmp_path / "one.yaml").write_text(SCENARIO.format(name="one"))
    (tmp_path / "bad.yaml").write_text(SCENARIO.format(name="bad").replace("gbps: 10",
                                                                           "gbps: -1"))
    xml = tmp_path / "junit.xml"
    res = _pytest(tmp_path, "--scenarios", str(tmp_path), "--junitxml", str(xml), "-q", "-rA")
    assert res.returncode == 1, res.stdout + res.stderr
    cases = {c.get("name"): c for c in ET.parse(xml).getroot().iter("testcase")}
    assert set(cases) == {"test_claim[one:holds-the-data]", "test_claim[one:holds-a-petabyte]",
                          "test_claim[one:survivors-ride-through]",
                          "test_claim[one:vm_restart_within]", "test_claim[bad:load]"}
    bad = cases["test_claim[bad:load]"]
    assert bad.find("failure") is not None and "gbps" in ET.tostring(bad, encoding="unicode")
    outcome = {n: ("failed" if c.find("failure") is not None else
                   "skipped" if c.find("skipped") is not None else "passed")
               for n, c in cases.items()}
    assert outcome["test_claim[one:holds-the-data]"] == "passed"
    assert outcome["test_claim[one:holds-a-petabyte]"] == "failed"
    assert outcome["test_claim[one:survivors-ride-through]"] == "passed"
    assert outcome["test_claim[one:vm_restart_within]"] == "skipped"  # b is not HA: n/a
    failure = cases["test_claim[one:holds-a-petabyte]"].find("failure")
    assert failure is not None and "measured 4000.0 GB" in (failure.get("message") or "")
    props = {p.get("name"): p.get("value")
             for p in cases["test_claim[one:holds-the-data]"].iter("property")}
    assert props["verdict"] == "pass" and props["engine"] == "model"


@pytest.mark.slow
def test_parallel_workers_give_the_same_verdicts(tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / f"{name}.yaml").write_text(SCENARIO.format(name=name))
    res = _pytest(tmp_path, "--scenarios", str(tmp_path), "-n", "2", "--dist", "loadgroup",
                  "-q")
    assert res.returncode == 1
    assert "2 failed, 4 passed, 2 skipped" in res.stdout, res.stdout


def test_bad_hosts_target_is_a_usage_error_naming_the_host(tmp_path: Path) -> None:
    res = _pytest(tmp_path, "--target", "hosts:ssh://node1,node2", "-q")
    assert res.returncode == pytest.ExitCode.USAGE_ERROR
    assert "'node2': expected ssh://" in res.stderr


def test_hosts_target_resolves_to_ssh_urls() -> None:
    t = parse_target("hosts:ssh://root@a,ssh://root@b:2222,ssh://c", allow_destructive=True)
    assert t.spec.kind == "hosts" and t.spec.hosts == ("root@a", "root@b:2222", "c")
    assert t.allow_destructive and t.label == "hosts"
    assert parse_target("hosts+ssh://root@a,root@b:2222,c").spec == t.spec


@pytest.mark.parametrize(("text", "label"), [
    ("model", "model"), ("lab", "lab:netns"), ("lab:netns", "lab:netns"),
    ("lab+netns", "lab:netns"), ("lab:libvirt", "lab:libvirt"),
    ("lab+libvirt://qemu:///session", "lab:libvirt")])
def test_targets_resolve_to_engines(text: str, label: str) -> None:
    t = parse_target(text)
    assert t.label == label and t.real == (label != "model")


@pytest.mark.parametrize("text", ["hosts:", "hosts:h1", "lab:kvm", "simulator", "model:x"])
def test_unknown_targets_are_refused(text: str) -> None:
    with pytest.raises(TargetError, match=text.split(":")[0]):
        parse_target(text)


def test_expect_fail_claims_are_strict_expected_failures(tmp_path: Path) -> None:
    """A documented weakness that is still there is xfailed; one that went away fails."""
    text = SCENARIO.format(name="weak").split("claims:")[0] + (
        "claims:\n"
        "  - {kind: usable_capacity_at_least, name: still weak, gb: 1000000, expect: fail}\n"
        "  - {kind: usable_capacity_at_least, name: no longer weak, gb: 10, expect: fail}\n")
    (tmp_path / "weak.yaml").write_text(text)
    res = _pytest(tmp_path, "--scenarios", str(tmp_path), "-q", "-rxf")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "1 failed, 1 xfailed" in res.stdout, res.stdout
    assert "XFAIL validators/test_claims.py::test_claim[weak:still-weak]" in res.stdout
    assert "[XPASS(strict)] weak: claim 'no longer weak'" in res.stdout
