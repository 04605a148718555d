"""Like for like on the real lab (``lab: {impose: true}``): the scenario's NIC and disk limits
hold for O_DIRECT writes through a FUSE mount, judged by counters, not by the machine's speed.

One replica-3 lab, storage NICs of 0.02 Gb/s (2.5 MB/s). host1's mount writes every copy
itself; its own brick listens on host1's storage address, which is local to host1's
namespace, so that copy goes over loopback and only two copies cross host1's shaped link:
the write rate is bounded by 2.5 / 2 MB/s, and the tbf on host1's link counts >= 2 x the
bytes written. Cases, in order (one lab):
- imposed: the bound holds, the qdisc on host1's link sent both remote copies;
- a ``link_slowdown`` fault on top runs at its own lower rate, its repair returns to the
  imposed NIC rate (not to no qdisc);
- the imposition taken off the storage links (qdiscs deleted by the test): the same writer is
  faster than the imposed bound, and ``network.unshape`` puts the NIC rate back;
- a brick disk limited to 0.5 MB/s of writes (its cgroup's throttle) holds the writer to it,
  and the cgroup's own counter shows the brick's writes went through it;
- a failed disk replaced (a new loop device, a new brick PID): both limited again;
- compute-only host4 (no disks: no glusterd, no brick, not a peer) mounts from the pool and
  sends all three copies over its own shaped link (the write rate bounded by 2.5 / 3 MB/s,
  its tbf counting >= 3 x the bytes written, each brick holding the data); its power loss and
  repair bring its mount back without a glusterd.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcisim.lab.netns import gluster, impose, network
from hcisim.lab.netns.backend import NetnsBackend
from hcisim.lab.netns.layout import HostLayout, unique_name
from hcisim.lab.netns.reclaim import find_leftovers
from hcisim.lab.process import run
from hcisim.scenario import Scenario, make_fault, parse_scenario

pytestmark = [pytest.mark.lab, pytest.mark.slow]
MIB = 1 << 20
STORAGE_GBPS = 0.02

SCENARIO = f"""
name: lab-impose
duration_s: 600
hosts:
  - &host
    name: host1
    disks: [{{name: brick0, capacity_gb: 1, bandwidth_mb_s: 200, iops: 5000}}]
    nics:
      - {{name: n0, gbps: 1, networks: [management]}}
      - {{name: n1, gbps: {STORAGE_GBPS}, networks: [storage]}}
  - {{<<: *host, name: host2}}
  - {{<<: *host, name: host3}}
  - {{<<: *host, name: host4, disks: []}}
volumes:
  - name: data
    type: replica3
    size_gb: 0.5
    bricks: [{{host: host1}}, {{host: host2}}, {{host: host3}}]
    options: {{ping_timeout_s: 5, tcp_user_timeout_s: 5, shard_block_size_mib: 4}}
lab: {{impose: true}}
"""


def scenario() -> Scenario:
    return parse_scenario(SCENARIO, "lab-impose")


@pytest.fixture(scope="module")
def be() -> Iterator[NetnsBackend]:
    name = unique_name("impose")
    with NetnsBackend(scenario(), name=name) as be:
        be.build()
        be.deploy()
        # one block-I/O cgroup per host under the lab's: found from the name alone, as
        # `hcisim lab down` after a SIGKILL finds them
        if impose.cgroup_flavour()[0] is not None:
            assert len(find_leftovers(name).cgroups) == 4
        yield be
    assert not impose.lab_cgroups(name)  # destroy (reclaim) removed them


def write_direct(path: Path, mib: int) -> float:
    """Sequential O_DIRECT 1 MiB writes of ``mib`` MiB; MB/s (10^6 bytes)."""
    path.unlink(missing_ok=True)
    t = time.monotonic()
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mib}",
                    "oflag=direct", "conv=notrunc"], check=True, capture_output=True)
    return mib * MIB / 1e6 / (time.monotonic() - t)


def tbf(h: HostLayout) -> tuple[str, int]:
    """The rate of the tbf on host1's storage egress and the bytes it has sent."""
    out = run("tc", ["tc", "-s", "qdisc", "show", "dev", h.STORAGE_IF], netns=h.netns).stdout
    rate = re.search(r"tbf .* rate (\S+)", out)
    sent = re.search(r"Sent (\d+) bytes", out)
    return (rate.group(1) if rate else "none"), int(sent.group(1)) if sent else 0


def cgroup_written(cg: Path, devno: str) -> int:
    text = (cg / "blkio.throttle.io_service_bytes").read_text()
    m = re.search(rf"^{devno} Write (\d+)$", text, re.M)
    return int(m.group(1)) if m else 0


def test_imposed_nic_and_slowdown_on_top(be: NetnsBackend) -> None:
    imposed = be.meta()["imposed"]
    assert imposed["links_mbit"]["host1"] == {"storage": pytest.approx(20.0),
                                              "management": pytest.approx(1000.0)}
    h1 = be.lab_.host("host1")
    mount = be.mount_path("host1", "data")
    rate0, sent0 = tbf(h1)
    assert rate0 == "20Mbit"
    mb_s = write_direct(mount / "imposed", 4)
    _, sent1 = tbf(h1)
    print(f"imposed: {mb_s:.2f} MB/s, tbf sent {(sent1 - sent0) / MIB:.1f} MiB for 4 MiB")
    link_mb_s = STORAGE_GBPS * 1e3 / 8
    assert mb_s <= link_mb_s / 2 * 1.1  # two copies cross host1's link, the third is local
    assert sent1 - sent0 >= 2 * 4 * MIB
    assert sent1 - sent0 < 3 * 4 * MIB  # the local brick's copy did not cross it

    slow = make_fault(kind="link_slowdown", at_s=0, target="host1", network="storage",
                      rate_mbit=5)
    be.inject(slow)
    try:
        assert tbf(h1)[0] == "5Mbit"
        slowed = write_direct(mount / "slowed", 1)
        assert slowed <= 5 / 8 / 2 * 1.1
    finally:
        be.restore(slow)
    assert tbf(h1)[0] == "20Mbit"  # back to the NIC's rate, not unshaped
    print(f"link_slowdown to 5 Mbit/s: {slowed:.2f} MB/s")


def test_unimposed_link_is_faster_and_unshape_restores(be: NetnsBackend) -> None:
    hosts = be.lab_.hosts  # every storage link: each remote copy crosses its brick's too
    for h in hosts:
        for ns, ifname in ((h.netns, h.STORAGE_IF), (be.lab_.switch_netns, h.switch_storage_if)):
            run("drop the imposed qdisc", ["tc", "qdisc", "del", "dev", ifname, "root"],
                netns=ns)
    try:
        assert tbf(hosts[0])[0] == "none"
        free = write_direct(be.mount_path("host1", "data") / "free", 8)
    finally:
        for h in hosts:
            network.unshape(be.lab_, h, ("storage",))
    assert [tbf(h)[0] for h in hosts] == ["20Mbit"] * 4
    print(f"not imposed: {free:.2f} MB/s")
    assert free > STORAGE_GBPS * 1e3 / 8 / 2 * 1.1


def test_disk_write_limit_and_restarted_brick(be: NetnsBackend) -> None:
    imposed = be.meta()["imposed"]
    if imposed["not_imposed"]:
        pytest.skip(f"disk limits not imposed here: {imposed['not_imposed']}")
    d2 = imposed["disks"]["host2"]["brick0"]
    assert d2["write_bps"] == 200_000_000 and d2["write_iops"] == 5000
    cg = Path(d2["cgroup"])
    h2 = be.lab_.host("host2")
    assert set(gluster.brick_pids(h2)) <= {int(p) for p in
                                           (cg / "cgroup.procs").read_text().split()}
    limit = 500_000
    impose.write_limits(cg, "v1", d2["devno"], {**d2, "write_bps": limit})
    try:
        before = cgroup_written(cg, d2["devno"])
        mb_s = write_direct(be.mount_path("host1", "data") / "disk", 2)
        through = cgroup_written(cg, d2["devno"]) - before
    finally:
        impose.write_limits(cg, "v1", d2["devno"], d2)
    print(f"host2 brick at 0.5 MB/s: {mb_s:.2f} MB/s, its cgroup wrote {through / MIB:.2f} MiB")
    assert through >= 2 * MIB  # the brick's O_DIRECT writes were the cgroup's
    assert mb_s <= limit / 1e6 * 1.15

    # a failed disk replaced: a new loop device and a new brick process, both limited again
    failure = make_fault(kind="disk_failure", at_s=0, target="host2")
    old = set(gluster.brick_pids(h2))
    be.inject(failure)
    be.restore(failure)
    deadline = time.monotonic() + 30
    while not (new := set(gluster.brick_pids(h2)) - old) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert new, "the brick did not come back"
    assert new <= {int(p) for p in (cg / "cgroup.procs").read_text().split()}
    dev = impose.loop_device(h2.disk_mount("brick0"))
    assert dev is not None and dev != d2["device"]
    assert be.meta()["imposed"]["disks"]["host2"]["brick0"]["device"] == dev
    limits = (cg / "blkio.throttle.write_bps_device").read_text()
    assert f"{impose.dev_number(dev)} 200000000" in limits


def test_compute_only_host_sends_every_copy_over_its_link(be: NetnsBackend) -> None:
    h1, h4 = be.lab_.host("host1"), be.lab_.host("host4")
    assert [h.name for h in be.pool] == ["host1", "host2", "host3"]
    assert be.meta()["hosts"]["host4"]["compute_only"] is True
    assert not h4.pidfile.exists() and not gluster.brick_pids(h4)  # no glusterd, no brick
    peers = gluster.client(h1).peers()
    assert sorted(p.connected for p in peers) == [True, True] and len(peers) == 2
    mount = be.mount_path("host4", "data")
    _, sent0 = tbf(h4)
    mb_s = write_direct(mount / "compute-only", 2)
    _, sent1 = tbf(h4)
    print(f"compute-only host4: {mb_s:.2f} MB/s, tbf sent {(sent1 - sent0) / MIB:.1f} MiB "
          "for 2 MiB")
    assert sent1 - sent0 >= 3 * 2 * MIB  # no local brick: every copy crossed host4's link
    assert mb_s <= STORAGE_GBPS * 1e3 / 8 / 3 * 1.1
    for path in be.data_brick_paths("data"):
        assert (path / "compute-only").stat().st_size == 2 * MIB

    loss = make_fault(kind="node_power_loss", at_s=0, target="host4")
    be.inject(loss)
    be.restore(loss)  # links up and the mount back, with no glusterd to start
    assert not h4.pidfile.exists()
    assert write_direct(mount / "after-power-loss", 1) > 0
    assert all((p / "after-power-loss").stat().st_size == MIB
               for p in be.data_brick_paths("data"))
