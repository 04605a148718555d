"""Unit tests of the lab's own parsing: fio logs, glfsheal, client logs, write histories.

No cluster needed: inputs are hand-made in the formats the real tools write (checked
against glusterfs 10.3 and fio 3.33 output on this machine).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.lab.clientlog import ClientLogTail, ClientView, parse_line
from hcisim.lab.fio import (
    PLAT_NR,
    FioPlan,
    PhaseRate,
    hist_quantile,
    job_file,
    plat_idx_to_val,
    rate_iops,
    read_plan_logs,
    rebin,
)
from hcisim.lab.healinfo import BrickListing, BrickRef, parse_glfsheal, pending_by_brick
from hcisim.lab.history import (
    History,
    bad_intervals,
    check,
    parse_history,
    per_second,
)
from hcisim.lab.history_writer import record
from hcisim.scenario import IoProfile

# --- fio ---------------------------------------------------------------------------------


def test_plat_idx_to_val_is_monotonic_and_exact_below_128() -> None:
    """Bins below 2*64 are exact nanoseconds; above, each bin stands for a larger value."""
    vals = [plat_idx_to_val(i) for i in range(PLAT_NR)]
    assert vals[:128] == [float(i) for i in range(128)]
    assert all(b > a for a, b in itertools.pairwise(vals))
    # relative bin width stays below 1/32 (fio's 64 buckets per power of two)
    assert all((b - a) / a <= 1 / 32 + 1e-12 for a, b in itertools.pairwise(vals[128:]))


def test_hist_quantile_oracle() -> None:
    """99 samples in a 1 ms bin and one in a 100 ms bin: p50 is ~1 ms, p99 ~1 ms, max 100."""
    counts = np.zeros(PLAT_NR)
    i1 = next(i for i in range(PLAT_NR) if plat_idx_to_val(i) >= 1e6)
    i100 = next(i for i in range(PLAT_NR) if plat_idx_to_val(i) >= 1e8)
    counts[i1], counts[i100] = 99, 1
    assert hist_quantile(counts, 0.5) == pytest.approx(1e6, rel=0.04)
    assert hist_quantile(counts, 0.99) == pytest.approx(1e6, rel=0.04)
    assert hist_quantile(counts, 1.0) == pytest.approx(1e8, rel=0.04)
    assert math.isnan(hist_quantile(np.zeros(PLAT_NR), 0.99))


def _write_fio_logs(d: Path, start_ms: int, seconds: int) -> None:
    """fio logs as fio 3.33 writes them with log_unix_epoch + log_avg_msec=1000."""
    bw = iops = clat = hist = ""
    i_lat = next(i for i in range(PLAT_NR) if plat_idx_to_val(i) >= 2e6)
    for k in range(1, seconds + 1):
        ts = start_ms + 1000 * k
        bw += f"{ts}, 800, 0, 0, 0\n{ts + 1}, 200, 1, 0, 0\n"
        iops += f"{ts}, 100, 0, 0, 0\n{ts + 1}, 25, 1, 0, 0\n"
        clat += f"{ts - 1}, 2000000, 0, 0, 0\n{ts}, 4000000, 1, 0, 0\n"
        row = ["0"] * PLAT_NR
        row[i_lat] = "125"
        hist += f"{ts + 13}, 0, 8192, " + ", ".join(row) + "\n"
    (d / "p0_bw.1.log").write_text(bw)
    (d / "p0_iops.1.log").write_text(iops)
    (d / "p0_clat.1.log").write_text(clat)
    (d / "p0_clat_hist.1.log").write_text(hist)


def test_fio_logs_rebinned_onto_the_run_grid(tmp_path: Path) -> None:
    t0 = 1_700_000_000.0
    _write_fio_logs(tmp_path, int(t0 * 1000) + 500, seconds=4)  # fio started 0.5 s late
    cells = rebin(read_plan_logs(tmp_path), t0, duration_s=6.0)
    assert len(cells) == 6
    total_read_mb = sum(c.read_mb_s for c in cells)
    assert total_read_mb == pytest.approx(4 * 800 * 1024 / 1e6)  # bytes are conserved
    full = cells[2]  # [2, 3) is covered by halves of two fio windows
    assert full.read_mb_s == pytest.approx(800 * 1024 / 1e6)
    assert full.read_iops == pytest.approx(100) and full.write_iops == pytest.approx(25)
    assert full.latency_ms == pytest.approx((100 * 2 + 25 * 4) / 125)
    assert full.latency_p99_ms == pytest.approx(2.0, rel=0.04)
    assert cells[0].read_mb_s == pytest.approx(full.read_mb_s / 2, rel=0.01)  # began at 0.5
    assert cells[5].read_mb_s == 0 and cells[5].latency_ms == 0  # after fio's last window


def test_rate_iops_and_job_file(tmp_path: Path) -> None:
    p = IoProfile(read_pct=70, block_kib=8, iops=100, queue_depth=4)
    assert rate_iops(p, 1.0) == (70, 30)
    assert rate_iops(p, 0.01) == (1, 1)  # never 0 in a used direction: fio reads 0 as "no cap"
    assert rate_iops(IoProfile(read_pct=100, iops=50), 1.0) == (50, 0)
    plan = FioPlan("vm", "data", tmp_path / "d.img", 2**24, p,
                   (PhaseRate(0, 10, 1.0), PhaseRate(10, 5, 0.5)), tmp_path)
    text = job_file(plan)
    assert "direct=1" in text and "log_unix_epoch=1" in text and "rwmixread=70" in text
    assert "rate_iops=70,30" in text and "rate_iops=35,15" in text
    assert "startdelay=10.000" in text and "bs=8192" in text


# --- gluster output ----------------------------------------------------------------------

GLFSHEAL = """Brick 10.0.0.11:/b/h1/data
/small
/
/f1
/.shard/b22ccad3-d9fd-4020-a9b9-2517f01b012a.1 - Possibly undergoing heal
Status: Connected
Number of entries: 4

Brick 10.0.0.12:/b/h2/data
<gfid:ead6c431-ac3e-4df1-87fd-e36113646112>
Status: Connected
Number of entries: 1

Brick 10.0.0.13:/b/h3/data
Status: Transport endpoint is not connected
Number of entries: -
"""


def test_parse_glfsheal() -> None:
    bricks = parse_glfsheal(GLFSHEAL)
    assert [b.name for b in bricks] == ["10.0.0.11:/b/h1/data", "10.0.0.12:/b/h2/data",
                                        "10.0.0.13:/b/h3/data"]
    assert bricks[0].entries == ["/small", "/", "/f1",
                                 "/.shard/b22ccad3-d9fd-4020-a9b9-2517f01b012a.1"]
    assert bricks[0].count == 4 and bricks[0].connected
    assert bricks[1].entries == ["<gfid:ead6c431-ac3e-4df1-87fd-e36113646112>"]
    assert not bricks[2].connected and bricks[2].count is None


def test_pending_goes_to_the_bricks_that_did_not_list_the_entry(tmp_path: Path) -> None:
    """Without readable changelogs, sinks are the bricks that did not list an entry."""
    refs = [BrickRef(i, f"a{i}:/b{i}", tmp_path / f"b{i}", arbiter=(i == 2)) for i in range(3)]
    for r in refs:
        r.path.mkdir()
    (refs[0].path / "f1").write_bytes(b"x" * 10000)
    listing = [BrickListing("a0:/b0", "Connected", ["/f1"]),
               BrickListing("a1:/b1", "Connected", []),
               BrickListing("a2:/b2", "Transport endpoint is not connected", [])]
    pend = pending_by_brick(listing, refs, "data")
    assert pend[0].bytes == 0 and pend[0].entries == 0  # the source receives nothing
    assert pend[1].entries == 1 and 0 < pend[1].bytes <= 10000
    assert pend[2].entries == 1 and pend[2].bytes == 0  # an arbiter never receives data


def test_pending_follows_afr_blame_xattrs(tmp_path: Path) -> None:
    """With changelogs: only the blamed brick is a sink; a dirty-only entry has none."""
    import os
    import struct

    refs = [BrickRef(i, f"a{i}:/b{i}", tmp_path / f"b{i}", arbiter=False) for i in range(3)]
    for r in refs:
        r.path.mkdir()
    f = refs[0].path / "f1"
    f.write_bytes(b"y" * 8192)
    g = refs[0].path / "inflight"
    g.write_bytes(b"z" * 4096)
    try:
        os.setxattr(f, "trusted.afr.data-client-2", struct.pack(">III", 3, 0, 0))
        os.setxattr(g, "trusted.afr.dirty", struct.pack(">III", 1, 0, 0))
    except OSError:
        pytest.skip("trusted.* xattrs need root and a filesystem that stores them")
    listing = [BrickListing("a0:/b0", "Connected", ["/f1", "/inflight"]),
               BrickListing("a1:/b1", "Connected", []),
               BrickListing("a2:/b2", "Connected", [])]
    pend = pending_by_brick(listing, refs, "data")
    assert pend[1].entries == 0  # not blamed, though it did not list /f1
    assert pend[2].entries == 1 and pend[2].bytes == 8192


# --- client logs -------------------------------------------------------------------------

LOG = """\
[2026-11-25 01:41:38.000000 +0000] I [MSGID: 100030] [glusterfsd.c:2767:main] 0-/usr/sbin/glusterfs: Started running version [{arg=/usr/sbin/glusterfs}]
[2026-11-25 01:41:38.376139 +0000] I [MSGID: 114046] [client-handshake.c:856:client_setvolume_cbk] 0-data-client-2: Connected, attached to remote volume [{conn-name=data-client-2}]
[2026-11-25 01:41:38.377204 +0000] I [MSGID: 114046] [client-handshake.c:856:client_setvolume_cbk] 0-data-client-1: Connected, attached to remote volume [{conn-name=data-client-1}]
[2026-11-25 01:41:38.380000 +0000] I [MSGID: 114046] [client-handshake.c:856:client_setvolume_cbk] 0-data-client-0: Connected, attached to remote volume [{conn-name=data-client-0}]
[2026-11-25 01:42:22.131643 +0000] C [rpc-clnt-ping.c:152:rpc_clnt_ping_timer_expired] 0-data-client-1: server 10.77.0.12:54512 has not responded in the last 5 seconds, disconnecting.
[2026-11-25 01:42:22.131906 +0000] I [MSGID: 114018] [client.c:2244:client_rpc_notify] 0-data-client-1: disconnected from client, process will keep trying to connect glusterd until brick's port is available [{conn-name=data-client-1}]
[2026-11-25 01:42:23.000000 +0000] I [MSGID: 114018] [client.c:2244:client_rpc_notify] 0-other-client-0: disconnected from client [{conn-name=other-client-0}]
"""  # noqa: E501


def test_client_log_replay(tmp_path: Path) -> None:
    path = tmp_path / "fuse-data.log"
    path.write_text(LOG[: LOG.index("[2026-11-25 01:42:22.131643")])
    tail = ClientLogTail(path, "data")
    first = tail.poll()
    assert [(e.index, e.up) for e in first] == [(-1, False), (2, True), (1, True), (0, True)]
    with path.open("a") as f:
        f.write(LOG[LOG.index("[2026-11-25 01:42:22.131643"):])
    second = tail.poll()  # only the new lines, and not the other volume's
    assert [(e.index, e.up) for e in second] == [(1, False)]
    view = ClientView(3)
    view.add(first + second)
    t_down = second[0].t
    assert view.state_at(t_down - 0.001) == [True, True, True]
    assert view.state_at(t_down) == [True, False, True]
    assert view.state_at(first[0].t) == [None, None, None]  # just started: knows nothing
    assert t_down - first[1].t == pytest.approx(43.755767, abs=1e-5)


def test_parse_line_ignores_noise() -> None:
    assert parse_line("random text", "data") is None
    assert parse_line("[2026-11-25 01:42:22.131643 +0000] W [rpc-clnt-ping.c:210:x] "
                      "0-data-client-1: socket disconnected", "data") is None


# --- write history -----------------------------------------------------------------------


def _history(lines: list[str]) -> History:
    return parse_history("\n".join(lines), "vm-0")


def test_stall_and_error_windows_are_exact() -> None:
    h = _history([
        "I 0 100.00", "A 0 100.00 100.01",
        "I 1 100.03", "A 1 100.03 107.53",  # a 7.5 s stall
        "I 2 107.55", "E 2 107.55 107.56 ENOTCONN",
        "I 2 107.58", "E 2 107.58 107.59 ENOTCONN",
        "I 2 107.61", "A 2 107.61 107.62",
        "I 3 107.64",  # never returned (writer killed or run ended)
    ])
    assert [a.seq for a in h.acked] == [0, 1, 2]
    iv = bad_intervals(h, stall_threshold_s=0.5, end_of_run=110.0)
    assert [(i.status, round(i.start, 2), round(i.end, 2)) for i in iv] == [
        ("stalled", 100.03, 107.53), ("error", 107.55, 107.61), ("stalled", 107.64, 110.0)]


def test_torn_last_line_is_ignored() -> None:
    h = _history(["I 0 1.0", "A 0 1.0 1.1", "A 1 1.2 1.3", "A 2 1.4"])
    assert [a.seq for a in h.acked] == [0, 1]


def _bricks(tmp_path: Path, name: str, n: int, per_file: int, size: int,
            k: int) -> list[Path]:
    paths = []
    for b in range(k):
        d = tmp_path / f"brick{b}"
        d.mkdir()
        data: dict[int, bytearray] = {}
        for seq in range(n):
            data.setdefault(seq // per_file, bytearray()).extend(record(name, seq, size))
        for seg, content in data.items():
            (d / f".h.{seg}").write_bytes(bytes(content))
        paths.append(d)
    return paths


def test_checker_counts_copies_and_finds_lost_records(tmp_path: Path) -> None:
    n, per_file, size = 50, 16, 64
    h = _history([f"A {i} {10 + i * 0.1:.2f} {10 + i * 0.1 + 0.01:.2f}" for i in range(n)])
    h.name = "vm-0"
    bricks = _bricks(tmp_path, "vm-0", n, per_file, size, k=3)
    # brick 1 missed record 20 (a sink not yet healed); record 33 is on no brick at all
    seg1 = bricks[1] / ".h.1"
    raw = bytearray(seg1.read_bytes())
    raw[(20 % per_file) * size:(20 % per_file + 1) * size] = b"\0" * size
    seg1.write_bytes(bytes(raw))
    for b in bricks:
        seg = b / ".h.2"
        raw = bytearray(seg.read_bytes())
        raw[(33 % per_file) * size] ^= 0xFF
        seg.write_bytes(bytes(raw))
    res = check(h, ".h", size, per_file, bricks, mount=None)
    assert res.copies[20] == 2 and res.copies[33] == 0 and res.copies[0] == 3
    assert res.lost_count == 1 and res.lost(33) and not res.lost(20)
    rows = per_second(res, t0=10.0, duration_s=10.0, quorum=lambda t: t < 13.0)
    assert sum(r[2] for r in rows) == n * size
    assert sum(r[4] for r in rows) == size  # one record lost
    assert min(r[3] for r in rows) == 0
    assert [r[5] for r in rows] == [r[1] <= 3.0 for r in rows]  # quorum lost from 13.0 on


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.001, 12.0), st.booleans()), min_size=1, max_size=40),
       st.floats(0.1, 2.0))
def test_bad_intervals_are_disjoint_and_cover_every_slow_attempt(
        ops: list[tuple[float, bool]], threshold: float) -> None:
    """Windows never overlap; every attempt slower than the threshold lies inside one."""
    lines, t, seq = [], 0.0, 0
    for dur, ok in ops:
        lines.append(f"I {seq} {t:.6f}")
        if ok:
            lines.append(f"A {seq} {t:.6f} {t + dur:.6f}")
            seq += 1
        else:
            lines.append(f"E {seq} {t:.6f} {t + dur:.6f} EIO")
        t += dur + 0.02
    h = _history(lines)
    iv = bad_intervals(h, threshold, end_of_run=t + 1)
    for first, second in itertools.pairwise(iv):
        assert first.end <= second.start + 1e-9
    for a in h.attempts:
        assert a.t_end is not None
        end = a.t_end
        if end - a.t_issue > threshold:
            assert any(i.start <= a.t_issue + 1e-9 and end <= i.end + 1e-9 for i in iv)
    if all(a.ok and a.t_end is not None and a.t_end - a.t_issue <= threshold
           for a in h.attempts):
        assert iv == []


def test_the_cli_retries_while_a_volume_lock_is_held_here_or_on_a_peer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """glusterd refuses a transaction whose lock another holds, on this node ("Another
    transaction is in progress") or on a peer ("Locking failed on PEER", seen in CI on a
    `volume status` right after `volume heal`): nothing was done, so the CLI asks again;
    any other answer, failure included, is returned at once."""
    from collections.abc import Sequence

    from hcisim.lab import gluster as gl
    from hcisim.lab.node import Completed

    monkeypatch.setattr("hcisim.lab.gluster.time.sleep", lambda s: None)
    locked = ('<cliOutput><opRet>-1</opRet><opErrstr>Locking failed on 10.213.0.11. Please '
              'check log file for details.</opErrstr></cliOutput>')

    class Shell:
        label = "host1"

        def __init__(self, answers: list[Completed]) -> None:
            self.answers, self.calls = answers, 0

        def run(self, argv: Sequence[str], timeout_s: float = 60.0,
                input: bytes | None = None) -> Completed:
            self.calls += 1
            return self.answers.pop(0)

    busy = Shell([Completed(0, locked, ""), Completed(1, "", "Another transaction is in "
                                                        "progress for data."),
                  Completed(0, "<cliOutput><opRet>0</opRet></cliOutput>", "")])
    assert gl.Gluster(busy).run("volume", "status").stdout.endswith("</cliOutput>")
    assert busy.calls == 3
    failing = Shell([Completed(1, "", "volume status: failed: Volume data does not exist")])
    assert gl.Gluster(failing).run("volume", "status").rc == 1 and failing.calls == 1
