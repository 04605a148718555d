"""Parsers of what servers print, on outputs captured from a real Gluster 10.3 cluster."""

from __future__ import annotations

import pytest

from hcisim.accept.baseline import parse_fio_json
from hcisim.accept.storage import parse_df, parse_findmnt, parse_xfs_info
from hcisim.accept.virt import (
    VIRT_GROUP_10_3,
    expected_options,
    normalise,
    same_value,
)
from hcisim.lab.gluster import (
    GlusterError,
    parse_cli_xml,
    parse_group_file,
    parse_heal_summary,
    parse_peers,
    parse_uuid,
    parse_volume_get,
    parse_volume_info,
    parse_volume_status,
)
from hcisim.lab.hosts import gluster_args, option, parse_fuse_mounts
from hcisim.model.keepalive import (
    SERVER_KEEPALIVE_COUNT,
    SERVER_KEEPALIVE_INTERVAL_S,
    SERVER_KEEPALIVE_TIME_S,
)
from hcisim.scenario import Volume, VolumeOptions
from tests.accept.fakes import UUIDS, fixture


def test_peers() -> None:
    peers = parse_peers(fixture("peer_status.xml"))
    assert [(p.hostname, p.connected, p.state) for p in peers] == [
        ("127.1.1.2", True, "Peer in Cluster"), ("127.1.1.3", True, "Peer in Cluster")]


def test_volume_info_arbiter() -> None:
    (v,) = parse_volume_info(fixture("volume_info_engine.xml"))
    assert (v.name, v.status, v.type_str, v.replica_count, v.arbiter_count) == (
        "engine", "Started", "Replicate", 3, 1)
    assert [b.is_arbiter for b in v.bricks] == [False, False, True]
    assert [b.host_uuid for b in v.bricks] == [UUIDS["host1"], UUIDS["host2"], UUIDS["host3"]]
    assert v.bricks[0].name == "127.1.1.1:/srv/lab/n1/brick/engine"
    assert v.options["network.ping-timeout"] == "20"


def test_volume_status_bricks_and_shd() -> None:
    procs = parse_volume_status(fixture("volume_status_data.xml"))
    bricks = [p for p in procs if p.kind == "brick"]
    shds = [p for p in procs if p.kind == "shd"]
    assert len(bricks) == 3 and len(shds) == 3
    assert all(p.online and p.pid for p in procs)
    assert {p.peer_id for p in shds} == set(UUIDS.values())


def test_volume_status_brick_down() -> None:
    procs = parse_volume_status(fixture("volume_status_brick_down.xml"))
    down = [p for p in procs if p.kind == "brick" and not p.online]
    assert [(p.host, p.pid) for p in down] == [("127.1.1.3", None)]


def test_cli_error_is_reported() -> None:
    text = ("<?xml version=\"1.0\"?><cliOutput><opRet>-1</opRet><opErrno>0</opErrno>"
            "<opErrstr>Volume nope does not exist</opErrstr></cliOutput>")
    with pytest.raises(GlusterError, match="Volume nope does not exist"):
        parse_cli_xml(text, "volume info")
    with pytest.raises(GlusterError, match="no XML"):
        parse_cli_xml("Connection failed. Please check if gluster daemon is operational.", "x")


def test_volume_get_strips_default_marker() -> None:
    opts = parse_volume_get(fixture("volume_get_data.xml"))
    assert opts["features.shard-block-size"] == "64MB"
    assert opts["network.ping-timeout"] == "20"
    assert len(opts) > 300


def test_heal_summary_clean_and_pending() -> None:
    clean = parse_heal_summary(fixture("heal_summary_clean.txt"))
    assert [(b.connected, b.pending, b.split_brain) for b in clean] == [(True, 0, 0)] * 3
    pending = parse_heal_summary(fixture("heal_summary_pending.txt"))
    assert [b.pending for b in pending] == [7, 7, None]
    assert [b.connected for b in pending] == [True, True, False]


def test_xfs_info_hci_format() -> None:
    x = parse_xfs_info(fixture("xfs_info.txt"))
    assert (x.isize, x.naming_bsize, x.bsize, x.imaxpct) == (512, 8192, 4096, 25)


def test_uuid_both_spellings() -> None:
    u = UUIDS["host1"]
    assert parse_uuid(f"UUID: {u}\n") == u == parse_uuid(f"UUID={u}\noperating-version=1\n")


def test_findmnt_df_mounts() -> None:
    assert parse_findmnt("xfs rw,noatime,inode64 /srv/b1\n") == (
        "xfs", ("rw", "noatime", "inode64"), "/srv/b1")
    assert parse_df("  Size Avail Inodes IFree\n100 50 10 5\n") == (100, 50, 10, 5)
    with pytest.raises(GlusterError):
        parse_df("df: /x: No such file or directory\n")
    mounts = ("127.1.1.1:data /mnt/a fuse.glusterfs rw 0 0\n"
              "10.0.0.2:/data /mnt/b fuse.glusterfs rw 0 0\n"
              "127.1.1.1:engine /mnt/c fuse.glusterfs rw 0 0\n"
              "/dev/sda1 /data xfs rw 0 0\n")
    assert parse_fuse_mounts(mounts, "data") == [("127.1.1.1", "/mnt/a"), ("10.0.0.2", "/mnt/b")]


def test_group_file_matches_the_installed_package() -> None:
    """The built-in copy of the virt group is what Debian's glusterfs 10.3 ships."""
    from pathlib import Path

    shipped = Path("/var/lib/glusterd/groups/virt")
    if not shipped.exists():
        pytest.skip("glusterfs-server not installed")
    assert parse_group_file(shipped.read_text()) == VIRT_GROUP_10_3


def test_accepted_keepalive_is_the_models() -> None:
    """What acceptance demands of the bricks' keepalive (with no group file on the server,
    and for a scenario's volume) is what the model assumes (hcisim.model.keepalive, the
    volume's tcp_user_timeout_s), and both are glusterfs 10.3's group-virt.example. Both
    take them from the vocabulary (hcisim.scenario.cluster): accept cannot import the model
    (hcisim.lab.libvirt.checks imports accept: lab -> accept -> model would break "the
    model and the labs never import each other")."""
    model = {"server.keepalive-time": SERVER_KEEPALIVE_TIME_S,
             "server.keepalive-interval": SERVER_KEEPALIVE_INTERVAL_S,
             "server.keepalive-count": SERVER_KEEPALIVE_COUNT,
             "server.tcp-user-timeout": VolumeOptions().tcp_user_timeout_s}
    vol = Volume(name="data", type="replica3", bricks=[{"host": h} for h in ("a", "b", "c")])
    expected = expected_options(vol, None)
    for key, value in model.items():
        assert float(VIRT_GROUP_10_3[key]) == value, key
        assert float(expected[key]) == value, key
    assert {k: VIRT_GROUP_10_3[k] for k in model} == {
        "server.keepalive-time": "10", "server.keepalive-interval": "2",
        "server.keepalive-count": "5", "server.tcp-user-timeout": "20"}


@pytest.mark.parametrize(("opt", "a", "b", "same"), [
    ("cluster.eager-lock", "enable", "on", True),
    ("features.shard", "on", "1", True),
    ("features.shard", "off", "on", False),
    ("features.shard-block-size", "64MB", "67108864", True),
    ("features.shard-block-size", "64MB", "128MB", False),
    ("network.ping-timeout", "20", "20", True),
    ("network.ping-timeout", "20", "42", False),
    ("cluster.shd-max-threads", "8", "1", False),
    ("cluster.quorum-type", "auto", "AUTO", True),
])
def test_option_values_compare_by_meaning(opt: str, a: str, b: str, same: bool) -> None:
    assert same_value(opt, a, b) is same
    assert same_value(opt, a, None) is False
    assert normalise(opt, a) == normalise(opt, a)


def test_scenario_options_override_the_group() -> None:
    vol = Volume(name="data", type="replica3", bricks=[{"host": h} for h in ("a", "b", "c")],
                 options=VolumeOptions(ping_timeout_s=5, quorum_type="fixed", quorum_count=2))
    exp = expected_options(vol, {"network.ping-timeout": "20", "user.cifs": "off"})
    assert exp["network.ping-timeout"] == "5"
    assert exp["cluster.quorum-type"] == "fixed" and exp["cluster.quorum-count"] == "2"
    assert exp["user.cifs"] == "off"
    assert exp["features.shard-block-size"] == "64MB"
    # no group file on the server: the built-in copy stands in
    assert expected_options(vol, None)["performance.strict-o-direct"] == "on"


def test_fio_json() -> None:
    stats = parse_fio_json("fio-3.33 noise before\n" + fixture("fio.json"))["vm1.data"]
    assert stats["read_iops"] == pytest.approx(70, rel=0.05)
    assert stats["write_iops"] == pytest.approx(30, rel=0.1)
    assert stats["read_mb_s"] == pytest.approx(70 * 8192 / 1e6, rel=0.05)
    assert 0 < stats["latency_ms"] <= stats["p99_ms"]


def test_where_a_server_keeps_its_client_log_and_brick_pid_file() -> None:
    """The hosts backend reads both from the processes' command lines (netns nodes share
    one process table: each node's own mount point and brick path pick its own)."""
    ps = ("/usr/sbin/glusterfsd -s 10.0.0.3 --volfile-id data.host3.srv-lab-n3-brick-data "
          "-p /srv/lab/n3/run/vols/data/host3-srv-lab-n3-brick-data.pid -S /x.socket "
          "--brick-name /srv/lab/n3/brick/data -l /srv/lab/n3/log/bricks/data.log\n"
          "glusterfs --process-name fuse --volfile-server=10.0.0.3 --volfile-id=data "
          "--pid-file=/srv/lab/n3/pids/fuse-data.pid -l /srv/lab/n3/log/data.log "
          "/srv/lab/n3/mnt/data\n"
          "/usr/sbin/glusterfs --process-name fuse --volfile-server=gl1 --volfile-id=/engine "
          "/rhev/data-center/mnt/glusterSD/gl1:_engine\n"
          "sshd: root@notty\n")
    procs = gluster_args(ps)
    assert len(procs) == 3
    brick = next(a for a in procs if option(a, "--brick-name") == "/srv/lab/n3/brick/data")
    assert option(brick, "-p", "--pid-file") == \
        "/srv/lab/n3/run/vols/data/host3-srv-lab-n3-brick-data.pid"
    client = next(a for a in procs if a[-1] == "/srv/lab/n3/mnt/data")
    assert option(client, "-l", "--log-file") == "/srv/lab/n3/log/data.log"
    assert option(client, "--volfile-id") == "data"
    engine = next(a for a in procs if a[-1].endswith("_engine"))
    assert option(engine, "-l", "--log-file") is None  # mount.glusterfs's default name then
