"""Slow tier: three node VMs really boot here (software emulation), a replica-3 volume is
deployed in them, one node loses power (domain destroyed), and the history checker, the
claims and the acceptance's read-only node checks judge the result, and the run is held to
every engine's conformance (tests/engines/conformance.py). Then everything is torn down.

Debian packages this tier needs (tests/run.sh installs them):
  qemu-system-x86 qemu-utils libvirt-daemon-system libvirt-clients libvirt-dev pkg-config
  debootstrap genisoimage openssh-client
plus the Python extra ``libvirt`` (libvirt-python, built against libvirt-dev). Runs as
root with >= 6 GiB of free memory; skips with the reason otherwise.
Measured durations are in docs/lab-libvirt.md.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcisim.scenario import parse_scenario

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.xdist_group("libvirt-lab")]

NEEDS = {"qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils",
         "libvirtd": "libvirt-daemon-system", "virtlogd": "libvirt-daemon-system",
         "debootstrap": "debootstrap", "genisoimage": "genisoimage", "ssh": "openssh-client",
         "ssh-keygen": "openssh-client"}
MIN_FREE_MIB = 6 * 1024

SCENARIO = """
name: libvirt-power-loss
seed: 7
duration_s: 80
hosts:
  - &host
    name: host1
    cores: 8
    ram_gib: 64
    disks: [{name: brick0, capacity_gb: 1000}]
    nics:
      - {name: mgmt0, gbps: 1, networks: [management]}
      - {name: stor0, gbps: 10, networks: [storage]}
  - {<<: *host, name: host2}
  - {<<: *host, name: host3}
networks:
  - {role: management, mtu: 1500}
  - {role: storage, mtu: 9000}
volumes:
  - name: data
    type: replica3
    size_gb: 100
    options: {ping_timeout_s: 10}
    bricks: [{host: host1}, {host: host2}, {host: host3}]
io_profiles:
  light: {read_pct: 50, block_kib: 64, iops: 10, queue_depth: 1}
vms:
  - {name: vm1, host: host1, disks: [{volume: data, size_gb: 2, io: light}]}
faults:
  - {at_s: 30, kind: node_power_loss, target: host3}
claims:
  - {kind: replicas, min_copies: 2}
  - {kind: no_split_brain}
"""


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (libvirtd, debootstrap, bridges)"
    missing = sorted({pkg for cmd, pkg in NEEDS.items()
                      if shutil.which(cmd) is None and not Path(f"/usr/sbin/{cmd}").exists()})
    if missing:
        return f"missing Debian packages: apt-get install {' '.join(missing)}"
    try:
        import libvirt  # noqa: F401
    except ImportError as exc:
        return f"missing Python package ({exc.name}): pip install -e '.[libvirt,test]'"
    with open("/proc/meminfo") as fh:
        avail = next(int(line.split()[1]) // 1024 for line in fh
                     if line.startswith("MemAvailable:"))
    if avail < MIN_FREE_MIB:
        return f"only {avail} MiB of memory free, three node VMs need {MIN_FREE_MIB}"
    return None


@pytest.fixture
def own_daemons() -> Iterator[None]:
    """Stop the libvirtd/virtlogd that this test made hcisim start (from hcisim's own pid
    files), so the suite leaves no daemon behind; ones that ran before are left alone."""
    from hcisim.lab.libvirt.hypervisor import started_daemons, stop_started_daemons

    before = started_daemons()
    yield
    if not before:
        stop_started_daemons()
        assert not started_daemons(), "libvirtd/virtlogd started by the test still run"


def test_three_nodes_power_loss_history_and_claims(own_daemons: None) -> None:
    why = _why_not()
    if why:
        pytest.skip(why)
    from hcisim.claims import evaluate
    from hcisim.lab import run_lab
    from hcisim.lab.libvirt.layout import DEFAULT_WORKDIR
    from tests.engines.conformance import assert_conforms

    sc = parse_scenario(SCENARIO)
    name = "t" + uuid.uuid4().hex[:6]
    obs = run_lab(sc, backend="libvirt", name=name)

    assert not (DEFAULT_WORKDIR / name).exists(), "the lab directory outlived the run"
    assert obs.engine == "lab:libvirt"
    assert obs.meta["domain_type"] in ("kvm", "qemu")
    # the acceptance's read-only checks (checks.py), run by the backend right after deploy
    checks = obs.meta["node_checks"]
    assert set(sc.host_names) <= set(checks) <= {*sc.host_names, "cluster"}, checks
    assert {"glusterd running", "volume mounted", "xfs inode size"} <= set(checks["host1"])
    problems = {h: {c: p for c, p in r.items() if p} for h, r in checks.items()}
    assert problems == {h: {} for h in checks}
    # the history checker: records were acknowledged and none was lost
    hist = obs.meta["history"]["vm1-0"]
    assert hist["acked"] > 100 and hist["lost"] == 0
    assert hist["min_copies"] >= 2
    # the fault is in the events, and the power-lost brick is seen down after ping-timeout
    ev = obs["events"]
    start = ev[(ev["kind"] == "fault_start") & (ev["target"] == "host3")]["t_s"]
    assert len(start) == 1
    down = ev[(ev["kind"] == "brick_down") & (ev["target"] == "data/host3")]["t_s"]
    assert len(down) >= 1 and down.min() >= start.iloc[0]  # silent loss: no RST, a stall first
    vs = obs["volume_state"]
    late = vs[vs["t_s"] > down.min() + 1]
    assert not late.empty and not late[late["brick"] == "host3"]["up"].any()
    assert late[late["brick"] != "host3"]["up"].all() and late["quorum"].all()
    # the scenario's claims on the lab's observations
    verdicts = {v.name: v.verdict for v in evaluate(sc, obs)}
    assert verdicts["replicas"] == "pass" and verdicts["no_split_brain"] == "pass"
    # every row in the vocabulary, and the model's fault and host-failure windows
    assert_conforms(sc, obs)
