"""The whole acceptance against SSH servers: sshd in each node of a namespace lab.

Debian packages needed at test time: openssh-server (sshd), openssh-client, and the
lab's (glusterfs-server glusterfs-client fio xfsprogs iproute2 util-linux).
The controller runs `hcisim accept` inside a namespace of ours on the lab's management
bridge, as an operator's machine would be on the management network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hcisim.observations import Observations
from hcisim.observations.vocabulary import check_vocabulary
from hcisim.scenario import Scenario, save_scenario
from tests.accept.scenarios import small
from tests.accept.sshlab import SSHD, SshLab, ssh_lab, targets
from tests.engines.conformance import assert_conforms

pytestmark = [
    pytest.mark.lab,
    pytest.mark.slow,
    pytest.mark.xdist_group("accept-lab"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, mounts)"),
    pytest.mark.skipif(not SSHD.exists(), reason="needs sshd (apt-get install openssh-server)"),
    pytest.mark.skipif(shutil.which("glusterd") is None, reason="needs glusterfs-server"),
]
HCISIM = str(Path(sys.executable).parent / "hcisim")


@dataclass
class Env:
    sc: Scenario
    file: Path
    hosts: str
    ssh: SshLab
    lab: object


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from hcisim.lab.netns.backend import NetnsBackend

    tmp = tmp_path_factory.mktemp("accept-lab")
    sc = small(**{"{role: storage, mtu: 9000}": "{role: storage, mtu: 1500}"})
    file = tmp / "scenario.yaml"
    save_scenario(sc, file)
    be = NetnsBackend(sc)
    try:
        be.build()
        be.deploy()
        with ssh_lab(be.lab_, tmp / "ssh") as lab:
            yield Env(sc, file, targets(be.lab_, lab), lab, be.lab_)
    finally:
        be.destroy()


def accept(env: Env, out: Path, *extra: str, key: Path | None = None,
           hosts: str | None = None, file: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = env.ssh.in_controller(
        HCISIM, "accept", "--hosts", hosts or env.hosts, "--scenario", str(file or env.file),
        "--identity", str(key or env.ssh.key), "--known-hosts", str(env.ssh.known_hosts),
        "-o", str(out), "--baseline-s", "3", "--baseline-mb", "16", *extra)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


def _rows(out: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = json.loads((out / "checks.json").read_text())
    return rows


def _no_secrets(out: Path, env: Env) -> None:
    """No key material, key path or password-like option in anything the run wrote."""
    private = env.ssh.key.read_text()
    body = "".join(ln for ln in private.splitlines() if "PRIVATE KEY" not in ln)
    for f in out.rglob("*"):
        if not f.is_file() or f.suffix in (".png", ".parquet"):
            continue
        text = f.read_text(errors="replace")
        assert "PRIVATE KEY" not in text and body[:40] not in text, f
        assert str(env.ssh.key) not in text, f
        assert not re.search(r"(?i)(password|passwd|-P )\s*[:=]?\s*\S", text), f


def test_read_only_acceptance_refuses_faults(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "ro"
    got = accept(env, out)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "refused brick_crash on host3" in got.stderr and "--allow-destructive" in got.stderr
    rows = _rows(out)
    assert not [r for r in rows if r["verdict"] == "fail"]
    checks = {r["check"] for r in rows}
    assert {"glusterd running", "peers connected", "volume type", "option network.ping-timeout",
            "brick filesystem", "xfs inode size", "pending heal", "split-brain", "storage MTU",
            "clock in sync", "brick space", "brick inodes"} <= checks
    assert "fault injected" not in checks  # nothing destructive ran
    meta = json.loads((out / "observations" / "meta.json").read_text())
    assert meta["engine"] == "hosts"
    assert meta["meta"]["refusals"] and meta["meta"]["faults"] == []
    base = json.loads((out / "baseline.json").read_text())
    assert {b["vm"] for b in base} == {"vm1", "vm2"}
    assert all(b["measured_mb_s"] > 0 for b in base)
    junit = (out / "junit.xml").read_text()
    assert 'failures="0"' in junit and "<skipped" in junit
    assert (out / "report.html").exists()
    _no_secrets(out, env)


def test_destructive_brick_crash_is_bounded_restored_and_judged(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "rw"
    got = accept(env, out, "--allow-destructive", "--heal-timeout-s", "120")
    assert got.returncode == 0, got.stdout + got.stderr
    rows = {r["check"]: r for r in _rows(out)}
    assert rows["fault injected"]["verdict"] == "pass"
    assert rows["host restored"]["verdict"] == "pass", rows["host restored"]
    assert rows["acknowledged writes kept"]["verdict"] == "pass"
    assert re.match(r"0 lost of [1-9]\d* acknowledged", rows["acknowledged writes kept"]["actual"])
    journal = json.loads((out / "journal.json").read_text())
    kinds = [e["kind"] for e in journal["events"]]
    assert kinds.index("fault_start") < kinds.index("brick_down") < kinds.index("fault_end")
    assert kinds.index("fault_end") <= kinds.index("brick_up")
    down = next(e["t_s"] for e in journal["events"] if e["kind"] == "brick_down")
    up = next(e["t_s"] for e in journal["events"] if e["kind"] == "brick_up")
    assert up - down < 5.0 + 10.0  # the bound (5 s) plus the restart
    obs = Observations.load(out)  # the hosts engine speaks the shared vocabulary
    check_vocabulary(obs)
    assert not obs["heal"].empty  # what host3 missed was healed back, and measured
    summary = json.loads((out / "summary.json").read_text())
    assert {c["kind"]: c["verdict"] for c in summary["claims"]} == {
        "replicas": "pass", "no_split_brain": "pass"}
    assert summary["volumes"]["data"]["lost_bytes"] == 0
    # and the cluster is as before: every check still passes
    after = tmp_path / "after"
    again = accept(env, after)
    failed = [r for r in _rows(after) if r["verdict"] == "fail"]
    assert again.returncode == 0 and not failed, (failed, again.stderr[-2000:])
    # nothing of the run is left on the volumes or in /tmp
    for h in ("host1", "host2", "host3"):
        assert not list(Path(str(env.lab.mount(h, "data"))).glob(".hcisim-*"))  # type: ignore[attr-defined]
        assert not list(Path(str(env.lab.mount(h, "data"))).glob("vm*.img"))  # type: ignore[attr-defined]
    assert not list(Path("/var/tmp").glob("hcisim-hosts-*"))
    assert not list(Path("/tmp").glob("hcisim-accept-*"))
    _no_secrets(out, env)


def test_nic_and_power_loss_over_ssh_on_the_timeline(env: Env, tmp_path: Path) -> None:
    """A storage NIC cut by the server's own dead man's switch, then a power loss through
    power commands (here the lab's own CLI stands in for a BMC), each at its ``at_s``;
    both hosts come back as they were, and no acknowledged write is lost."""
    faults = """faults:
  - {at_s: 0, kind: nic_loss, target: host2, network: storage, duration_s: 6}
  - {at_s: 60, kind: node_power_loss, target: host3, duration_s: 6}
"""
    sc = small(**{"{role: storage, mtu: 9000}": "{role: storage, mtu: 1500}",
                  "duration_s: 60": "duration_s: 90",
                  "faults:\n  - {at_s: 10, kind: brick_crash, target: host3, volume: data, "
                  "duration_s: 5}\n": faults})
    file = tmp_path / "timeline.yaml"
    save_scenario(sc, file)
    lab = env.lab.name  # type: ignore[attr-defined]
    out = tmp_path / "tl"
    cli = f"{HCISIM} lab"
    got = accept(env, out, "--allow-destructive", "--heal-timeout-s", "120",
                 "--power-cmd", f"{cli} fault node_power_loss {{host}} --name {lab}",
                 "--power-on-cmd", f"{cli} restore --name {lab}", file=file)
    assert got.returncode == 0, got.stdout + got.stderr
    rows = [r for r in _rows(out) if r["check"] in ("fault injected", "host restored",
                                                   "acknowledged writes kept")]
    assert [(r["check"], r["host"], r["verdict"]) for r in rows] == [
        ("fault injected", "host2", "pass"), ("fault injected", "host3", "pass"),
        ("acknowledged writes kept", "cluster", "pass"), ("host restored", "host2", "pass"),
        ("host restored", "host3", "pass")]
    obs = Observations.load(out)
    assert obs.engine == "hosts" and not obs["volume_state"].empty
    # the shared vocabulary, and the model's fault and host-failure windows; the power
    # commands here are hcisim's own CLI (seconds of Python start-up on a loaded machine),
    # and the player repairs a fault only after the injection before it has returned. So a
    # repair is late by the check before the power-off (the self-heal daemons' state over
    # SSH) plus the power-off command: 4.9 s + 7.4 s with the libvirt lab's software-emulated
    # guests on the other core (2026-11-30: the repair 6.3 s late, the window 7.4 s for 6)
    assert_conforms(sc, obs, tolerance_s=12.0)
    events = json.loads((out / "journal.json").read_text())["events"]
    starts = {e["fault_kind"]: e["t_s"] for e in events if e["kind"] == "fault_start"}
    ends = {e["fault_kind"]: e["t_s"] for e in events if e["kind"] == "fault_end"}
    # held until its end on the timeline (at_s + duration, as on the model), never longer
    assert 6.0 - 0.5 <= ends["nic_loss"] <= 6.0 + 2.0
    assert ends["nic_loss"] - starts["nic_loss"] <= 6.0 + 0.5
    # at_s honoured on the shared player (on the run's clock)
    assert abs(starts["nic_loss"] - 0.0) < 2.0
    assert 60.0 - 2.0 <= starts["node_power_loss"] - starts["nic_loss"] <= 60.0 + 2.0
    # the hosts are as before: the read-only acceptance passes again
    after = tmp_path / "after"
    again = accept(env, after)
    failed = [r for r in _rows(after) if r["verdict"] == "fail"]
    assert again.returncode == 0 and not failed, (failed, again.stderr[-2000:])


def test_wrong_key_is_a_clear_error(env: Env, tmp_path: Path) -> None:
    got = accept(env, tmp_path / "wk", key=env.ssh.wrong_key)
    assert got.returncode == 3
    assert "host1" in got.stderr and "refused the SSH key" in got.stderr
    assert "Traceback" not in got.stderr


def test_unreachable_host_is_a_clear_error(env: Env, tmp_path: Path) -> None:
    void = f"ssh://root@{env.ssh.void_address}?name=host2"
    hosts = ",".join(void if "name=host2" in h else h for h in env.hosts.split(","))
    got = accept(env, tmp_path / "ur", hosts=hosts)
    assert got.returncode == 3
    assert f"host2 (ssh://root@{env.ssh.void_address})" in got.stderr
    assert "unreachable" in got.stderr and "Traceback" not in got.stderr


def test_bad_host_string_is_a_clear_error(env: Env, tmp_path: Path) -> None:
    got = accept(env, tmp_path / "bad", hosts="ssh://root:hunter2@h1,ssh://h2,ssh://h3")
    assert got.returncode == 2
    assert "passwords are not accepted" in got.stderr and "hunter2" not in got.stderr
