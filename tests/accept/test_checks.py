"""Read-only checks over a fake SSH runner serving real Gluster outputs."""

from __future__ import annotations

import re

from hcisim.accept.checks import run_checks
from hcisim.accept.rows import CheckRow, failed
from hcisim.accept.ssh import Shell
from hcisim.lab.node import Completed
from tests.accept.fakes import cluster, fixture, ok
from tests.accept.scenarios import small


def _rows(shells: dict[str, Shell], **kw: str) -> list[CheckRow]:
    return run_checks(small(**kw), shells, clock=lambda: 1700000000.0).rows


def _find(rows: list[CheckRow], check: str, host: str | None = None) -> list[CheckRow]:
    return [r for r in rows if r.check == check and (host is None or r.host == host)]


def test_healthy_cluster_passes_everything() -> None:
    rows = _rows(dict(cluster()))
    assert failed(rows) == [], [r for r in failed(rows)]
    checks = {r.check for r in rows}
    for want in ("glusterd running", "glusterd answers", "peers connected", "volume type",
                 "brick layout", "self-heal daemon", "option network.ping-timeout",
                 "option features.shard", "pending heal", "split-brain", "brick filesystem",
                 "brick mount options", "xfs inode size", "xfs naming size", "brick space",
                 "brick inodes", "storage MTU", "clock in sync", "volume mounted"):
        assert want in checks, want
    # every row has all five columns filled
    assert all(r.check and r.host and r.expected and r.actual for r in rows)


def test_glusterd_scoped_by_workdir() -> None:
    """Two glusterd in one process table: each host counts only its own."""
    rows = _find(_rows(dict(cluster())), "glusterd running")
    assert [r.actual for r in rows] == ["pid 100"] * 3


def test_each_virt_option_is_a_row_with_expected_and_actual() -> None:
    rows = _rows(dict(cluster()), **{"name: data, type: replica3,":
                                     "name: data, type: replica3, options: {ping_timeout_s: 5},"})
    bad = [r for r in failed(rows) if r.check.startswith("option ")]
    assert [(r.check, r.expected, r.actual, r.subject) for r in bad] == [
        ("option network.ping-timeout", "5", "20", "data")]


def test_wrong_volume_type_and_layout() -> None:
    # the scenario says arbiter for data, the cluster has plain replica 3
    rows = _rows(dict(cluster()), **{"name: data, type: replica3": "name: data, type: arbiter"})
    kinds = {(r.check, r.subject) for r in failed(rows)}
    assert ("volume type", "data") in kinds and ("brick layout", "data") in kinds


def test_missing_volume_is_one_clear_row() -> None:
    rows = _rows(dict(cluster()), **{"name: data,": "name: vmstore,",
                                      "volume: data": "volume: vmstore"})
    bad = [(r.check, r.subject, r.actual) for r in failed(rows)]
    assert bad == [("volume exists", "vmstore", "missing")]


def test_bad_brick_filesystem() -> None:
    shells = cluster({"host2": [
        (r"^findmnt", ok("xfs rw,relatime,attr2 /srv/lab/n2/brick\n")),
        (r"^xfs_info", ok(fixture("xfs_info.txt").replace("isize=512", "isize=256")
                          .replace("bsize=8192", "bsize=4096"))),
    ]})
    bad = {r.check: r for r in failed(_rows(dict(shells)))}
    assert bad["brick mount options"].host == "host2"
    assert "missing inode64,noatime,nodiratime" in bad["brick mount options"].actual
    assert bad["xfs inode size"].actual == "isize=256"
    assert bad["xfs naming size"].actual == "naming bsize=4096"


def test_space_and_inodes_sized_for_file_count() -> None:
    """An arbiter needs ~4 KiB per file: 10^6 files do not fit a 300 MB brick filesystem."""
    rows = _rows(dict(cluster()), **{"files: 2000": "files: 1000000"})
    bad = {(r.check, r.host) for r in failed(rows)}
    assert ("brick space", "host3") in bad  # host3 holds the arbiter brick
    assert ("brick inodes", "host1") in bad  # 153600 inodes < 1001000 files
    space1 = _find(rows, "brick space", "host1")[0]
    assert space1.verdict == "pass", space1  # data bricks: 0.25 GB < 0.31 GB


def test_pending_heal_and_unreachable_brick() -> None:
    shells = cluster({"host1": [(r"info-summary", ok(fixture("heal_summary_pending.txt")))]})
    bad = {r.check: r for r in failed(_rows(dict(shells)))}
    assert bad["pending heal"].actual.startswith("14 entries")
    assert "127.1.1.3:/srv/lab/n3/brick/data" in bad["pending heal"].actual


def test_peer_disconnected() -> None:
    text = fixture("peer_status.xml").replace("<connected>1</connected>",
                                              "<connected>0</connected>", 1)
    shells = cluster({"host1": [(r"peer status", ok(text))]})
    (bad,) = [r for r in failed(_rows(dict(shells))) if r.check == "peers connected"]
    assert bad.host == "host1" and "127.1.1.2" in bad.actual


def test_mtu_mismatch_fails_on_every_host() -> None:
    shells = cluster({"host3": [(r"^ip -o link show", ok("5: sto0@if9: <UP> mtu 1500 qdisc"))]})
    rows = _find(_rows(dict(shells)), "storage MTU")
    assert all(r.verdict == "fail" for r in rows)
    assert "hosts differ" in rows[0].actual


def test_mtu_equal_but_not_the_scenario_s_is_a_warning() -> None:
    rule = (r"^ip -o link show", ok("5: sto0@if9: <UP> mtu 1500 qdisc"))
    rows = _find(_rows(dict(cluster({h: [rule] for h in ("host1", "host2", "host3")}))),
                 "storage MTU")
    assert {r.verdict for r in rows} == {"warn"}


def test_clock_offset_beyond_tolerance() -> None:
    shells = cluster({"host2": [(r"^date", ok("1700000003.5\n"))]})
    rows = _find(_rows(dict(shells)), "clock in sync")
    verdicts = {r.host: r.verdict for r in rows}
    assert verdicts == {"host1": "pass", "host2": "fail", "host3": "pass"}
    assert re.search(r"\+3\.500 s", _find(rows, "clock in sync", "host2")[0].actual)


def test_glusterd_down_is_reported_not_raised() -> None:
    dead = Completed(1, "", "Connection failed. Please check if gluster daemon is operational.")
    shells = cluster({"host2": [(r"^ps -eo", ok("")), (r"gluster ", dead)]})
    bad = {(r.check, r.host) for r in failed(_rows(dict(shells)))}
    assert ("glusterd running", "host2") in bad and ("glusterd answers", "host2") in bad
    assert ("peers connected", "host2") in bad


def test_a_volume_missing_or_dead_on_one_host_fails_the_acceptance() -> None:
    """Every volume mounted and answering on every host, or the acceptance fails."""
    mounts = "127.1.1.2:/data /rhev/x/data fuse.glusterfs rw 0 0\n"  # engine not mounted
    rows = _find(_rows(dict(cluster({"host2": [(r"^cat /proc/mounts", ok(mounts))],
                                     "host3": [(r"^stat -f", Completed(124, "", "timed out"))]}))),
                 "volume mounted")
    verdicts = {(r.host, r.subject): r.verdict for r in rows}
    assert verdicts[("host2", "engine")] == "fail" and verdicts[("host2", "data")] == "pass"
    assert verdicts[("host3", "data")] == "fail" and verdicts[("host1", "data")] == "pass"
    assert len(rows) == 6
