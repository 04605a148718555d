"""Slow tier: three node VMs really boot here (software emulation), a replica-3 volume is
deployed in them, one node loses power (domain destroyed), and the history checker, the
claims and the acceptance's read-only node checks judge the result, and the run is held to
every engine's conformance (tests/engines/conformance.py). On the same lab (one boot for
the module): every node carries the guest layer, was checked for nested virtualisation,
and a ``vms: guests`` run is refused naming each node, with nothing made. Then everything
is torn down.

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
from typing import Any

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
  light: {read_pct: 50, block_kib: 64, iops: 10, queue_depth: 1, catch_up: true}
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


@pytest.fixture(scope="module")
def lab() -> Iterator[Any]:
    """One libvirt lab for the module, built and deployed; destroyed (and the
    libvirtd/virtlogd this module made hcisim start stopped, from hcisim's own pid files)
    at the end. Ones that ran before are left alone."""
    why = _why_not()
    if why:
        pytest.skip(why)
    from hcisim.lab.libvirt import LibvirtBackend
    from hcisim.lab.libvirt.hypervisor import started_daemons, stop_started_daemons
    from hcisim.lab.libvirt.layout import DEFAULT_WORKDIR

    before = started_daemons()
    be = LibvirtBackend(parse_scenario(SCENARIO), name="t" + uuid.uuid4().hex[:6])
    try:
        be.build()
        be.deploy()
        yield be
    finally:
        be.destroy()
        assert not (DEFAULT_WORKDIR / be.name).exists(), "the lab directory outlived the run"
        if not before:
            stop_started_daemons()
            assert not started_daemons(), "libvirtd/virtlogd started by the test still run"


def test_three_nodes_power_loss_history_and_claims(lab: Any, tmp_path: Path) -> None:
    from hcisim.claims import evaluate
    from hcisim.engines import LabOptions
    from hcisim.lab.run import run_on
    from tests.engines.conformance import assert_conforms

    sc = lab.scenario
    obs = run_on(sc, lab, lab.scale, tmp_path, LabOptions(), None, "lab:libvirt")

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


def test_guests_refused_in_nodes_without_kvm_and_nothing_made(lab: Any) -> None:
    """The nodes carry the guest layer (the node image's qemu, the harness's guest image on
    the guest layer disk) and were checked after boot; a ``vms: guests`` run on them is
    refused naming every node, before any disk or qemu is made; the lab stays as it was."""
    from hcisim.engines import LabOptions
    from hcisim.lab.guests.run import run_guests
    from hcisim.lab.libvirt.nested import NestedGuestsRefused

    sc = lab.scenario
    if lab.guest_image is None:
        pytest.skip(f"no guest image: {lab.meta()['guest_layer']}")
    nested = lab.meta()["nested"]
    assert set(nested) == set(sc.host_names)
    for host, v in nested.items():
        facts = v["facts"]
        assert facts["qemu"].startswith("QEMU emulator version"), (host, facts)
        assert facts["guest_image"] == lab.guest_image.hash, (host, facts)
        if lab.domain_type.name == "qemu":  # here: TCG nodes, refused whatever they offer
            assert not v["usable"] and "software emulation" in v["reason"], (host, v)
    if all(v["usable"] for v in nested.values()):
        pytest.skip("the nodes run under KVM with nested KVM: nothing to refuse here")
    guests = parse_scenario(SCENARIO + "lab: {vms: guests}\n")
    # the power-loss test leaves host3 off (its fault has no end), when it ran first
    up = [h for h in sc.host_names if h not in lab.unreachable()]
    before = {h: _qemus_and_files(lab, h) for h in up}
    with pytest.raises(NestedGuestsRefused) as info:
        run_guests(guests, lab, LabOptions(), None, "libvirt")
    text = str(info.value)
    named = text.split(" Run it on", 1)[0]
    for host, v in nested.items():
        assert (host in named) == (not v["usable"]), text
    for host in up:  # no qemu started, no disk made, the lab as it was
        assert _qemus_and_files(lab, host) == before[host]
        assert before[host][0] == "0", f"a qemu runs in {host}"


def _qemus_and_files(lab: Any, host: str) -> list[str]:
    """How many qemu processes run in ``host``'s node, and the files on its mount of data."""
    look = ("for p in /proc/[0-9]*; do readlink $p/exe; done | grep -c qemu-system || true; "
            "ls /mnt/data")
    return list(lab.shell_.run(host, look, f"look into {host}").stdout.split())


def test_a_guest_in_a_node_through_the_guests_layer(lab: Any) -> None:
    """The path a node with nested KVM takes after the check (start_node_guest ->
    launch_node_guest), run here past the check on the KVM the TCG node has (kvm_amd on
    qemu's emulated svm, which the check refuses for scenarios): the plumbing, not a
    measurement. The guests layer's command line starts qemu over the node's SSH, QMP and
    the agent come through SSH-forwarded sockets, the agent's acknowledged records are on
    the bricks afterwards, and nothing of the guest is left in the node or the harness."""
    from hcisim.lab.guests.lab import check_guest
    from hcisim.lab.wait import wait_until

    if lab.guest_image is None:
        pytest.skip(f"no guest image: {lab.meta()['guest_layer']}")
    facts = lab.meta()["nested"]["host1"]["facts"]
    if facts.get("dev_kvm") != "yes":
        pytest.skip("no /dev/kvm in the node (a TCG guest inside a TCG node boots in ~70 s)")
    before = _qemus_and_files(lab, "host1")
    with lab.launch_node_guest("vm1", "host1", "data", None, 4 << 20, "kvm",
                               mem_mib=160.0) as guest:
        assert guest.boot(timeout=120) > 0
        assert wait_until(lambda: guest.agent.acked >= 40, 60, 0.5), guest.agent.acked
        assert guest.status() == "running"
        assert len(guest.agent.heartbeats_since(0)) >= 5
        assert _qemus_and_files(lab, "host1")[0] == "1"
    after = _qemus_and_files(lab, "host1")
    assert after[0] == "0" and "vm1-guest.0" in after[1:] and before[0] == "0"
    assert not guest.spec.qmp_sock.exists() and not guest.spec.agent_sock.exists()
    result = check_guest(lab, guest, "data", "host1")
    assert len(result.acked) >= 40
    assert min(result.copies.values()) >= 2 and result.lost_count == 0
