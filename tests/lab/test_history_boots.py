"""The write-history checker's "a VM never ran twice" rule (hcisim.lab.history), unit and
property tests on hand-made logs and bricks (no cluster).

The property tests build boots from time intervals the generator chooses (each boot writes
from its start to its end), so whether two boots overlap is known from the generator's
own numbers (two intervals intersect), not from the checker's definition.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.lab.history import (
    History,
    boot_spans,
    check,
    parse_history,
    parse_record,
    per_second,
    time_overlaps,
)
from hcisim.lab.history_writer import record

NAME, SIZE, PER_FILE = "db1", 64, 1 << 16
WRITER = Path(__file__).resolve().parents[2] / "hcisim" / "lab" / "history_writer.py"


def boot_log(boot: str, start: float, n: int, dt: float = 0.02, lat: float = 0.005,
             first_seq: int = 0, open_tail: bool = False) -> str:
    """One boot's log as the agent link writes it: ``B``, then I/A per record."""
    lines = [f"B {boot} {start - 1.0:.6f}"]
    for i in range(n):
        t = start + i * dt
        lines += [f"I {first_seq + i} {t:.6f}", f"A {first_seq + i} {t:.6f} {t + lat:.6f}"]
    if open_tail:
        lines.append(f"I {first_seq + n} {start + n * dt:.6f}")
    return "\n".join(lines) + "\n"


def write_bricks(root: Path, content: dict[int, bytes], k: int = 3,
                 damage: dict[int, dict[int, bytes]] | None = None) -> list[Path]:
    """``k`` bricks holding ``content`` (seq -> record) in segment ``.h.0``; ``damage``:
    per brick index, records that brick holds instead."""
    bricks = []
    top = max(content, default=0) + 1
    for b in range(k):
        d = root / f"brick{b}"
        d.mkdir(parents=True)
        raw = bytearray(top * SIZE)
        for seq, rec in {**content, **(damage or {}).get(b, {})}.items():
            raw[seq * SIZE:(seq + 1) * SIZE] = rec
        (d / ".h.0").write_bytes(bytes(raw))
        bricks.append(d)
    return bricks


def final_content(h: History) -> dict[int, bytes]:
    """What a disk holds after these writes: per offset the record acknowledged last."""
    last: dict[int, tuple[float, str]] = {}
    for a in h.acked:
        assert a.t_end is not None
        if a.seq not in last or a.t_end > last[a.seq][0]:
            last[a.seq] = (a.t_end, a.boot)
    return {seq: record(NAME, seq, SIZE, boot) for seq, (_, boot) in last.items()}


# --- records ------------------------------------------------------------------------------


def test_record_names_its_boot_and_parses_back() -> None:
    r = record(NAME, 42, SIZE, "0a1b2c3d")
    assert r.startswith(b"db1:000000000042:0a1b2c3d:") and len(r) == SIZE and r.endswith(b".\n")
    assert parse_record(r, NAME, SIZE) == (42, "0a1b2c3d")
    assert parse_record(record(NAME, 7, SIZE), NAME, SIZE) == (7, "")  # no boot id
    torn = r[:40] + b"\0" * (SIZE - 40)
    assert parse_record(torn, NAME, SIZE) is None
    assert parse_record(record("db2", 42, SIZE, "x1"), NAME, SIZE) is None
    assert parse_record(b"\0" * SIZE, NAME, SIZE) is None
    with pytest.raises(ValueError, match="does not fit"):
        record("a-very-long-vm-name-indeed-yes", 1, 32, "0a1b2c3d")


def test_history_writer_stamps_its_boot_in_log_and_records(tmp_path: Path) -> None:
    """The fio VMs' writer (a standalone script): a ``B`` line first, every record with it."""
    import time

    log = tmp_path / "w.log"
    stem = tmp_path / "seg"
    subprocess.run([sys.executable, str(WRITER), "--stem", str(stem), "--name", "vm-1",
                    "--log", str(log), "--interval", "0.001", "--boot", "b00t",
                    "--until", f"{time.time() + 0.3:.3f}"], check=True, timeout=30)
    h = parse_history(log.read_text(), "vm-1")
    assert log.read_text().startswith("B b00t ")
    assert h.acked and {a.boot for a in h.attempts} == {"b00t"}
    res = check(h, "seg", 64, 65536, [tmp_path], mount=None)
    assert res.lost_count == 0 and not res.overlaps and res.boots[0].boot == "b00t"
    bad = subprocess.run([sys.executable, str(WRITER), "--stem", str(stem), "--name", "vm-1",
                          "--log", str(log), "--boot", "NO!", "--until", "0"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--boot 'NO!'" in bad.stderr


def test_history_writer_issues_nothing_while_its_vm_is_idle(tmp_path: Path) -> None:
    """``--idle A:B`` (a load-0 phase of the VM): no attempt from A to B seconds after the
    writer's start, attempts before and after; a bad window is a usage error (exit 2)."""
    import time

    log = tmp_path / "w.log"
    subprocess.run([sys.executable, str(WRITER), "--stem", str(tmp_path / "seg"), "--name",
                    "vm-1", "--log", str(log), "--interval", "0.005", "--idle", "0.2:0.6",
                    "--until", f"{time.time() + 0.9:.3f}"], check=True, timeout=30)
    started = float(log.read_text().split()[2])
    issued = [float(x.split()[2]) - started for x in log.read_text().splitlines()
              if x.startswith("I ")]
    assert any(t < 0.2 for t in issued) and any(t > 0.6 for t in issued)
    assert not [t for t in issued if 0.2 <= t < 0.6], issued
    bad = subprocess.run([sys.executable, str(WRITER), "--stem", str(tmp_path / "seg"),
                          "--name", "vm-1", "--log", str(log), "--idle", "soon",
                          "--until", "0"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--idle" in bad.stderr


def test_a_guest_passes_its_boot_on_the_kernel_command_line(tmp_path: Path) -> None:
    from hcisim.lab.errors import LabError
    from hcisim.lab.guests.qemu import GuestSpec, keep_history

    disk = tmp_path / "db1-guest.0"
    disk.write_bytes(b"\0" * 4096)
    spec = GuestSpec(name="db1", netns="ns", host="host1", disk=disk, run_dir=tmp_path,
                     pidfile=tmp_path / "pid", boot="0a1b2c3d")
    assert "hcisim.boot=0a1b2c3d" in spec.cmdline()
    assert "hcisim.boot" not in GuestSpec(name="db1", netns="ns", host="h", disk=disk,
                                          run_dir=tmp_path, pidfile=tmp_path / "p").cmdline()
    with pytest.raises(LabError, match="boot id 'Bad!'"):
        GuestSpec(name="db1", netns="ns", host="h", disk=disk, run_dir=tmp_path,
                  pidfile=tmp_path / "p", boot="Bad!")
    with pytest.raises(LabError, match="does not fit"):
        GuestSpec(name="x" * 30, netns="ns", host="h", disk=disk, run_dir=tmp_path,
                  pidfile=tmp_path / "p", record_size=32)
    # an earlier boot's log is kept under its boot's name when the next boot starts
    log = tmp_path / "history.log"
    log.write_text(boot_log("0a1b2c3d", 10.0, 2))
    keep_history(log)
    assert not log.exists() and (tmp_path / "history.0a1b2c3d.log").exists()
    keep_history(log)  # none there: nothing to do


# --- parsing -------------------------------------------------------------------------------


def test_boot_lines_attribute_attempts_and_close_an_open_attempt() -> None:
    text = boot_log("b1", 100.0, 3, open_tail=True) + boot_log("b2", 200.0, 2)
    h = parse_history(text, NAME)
    assert [(a.boot, a.seq, a.ok) for a in h.attempts] == [
        ("b1", 0, True), ("b1", 1, True), ("b1", 2, True), ("b1", 3, False),
        ("b2", 0, True), ("b2", 1, True)]
    assert h.attempts[3].t_end is None  # boot b1's last write never returned
    assert set(h.boot_marks) == {"b1", "b2"}


def test_a_migration_destination_continues_its_sources_boot() -> None:
    """The destination's log starts with the same boot; it may answer the source's last I."""
    src = "B b1 10.0\nI 0 10.0\nA 0 10.0 10.1\nI 1 10.2\n"
    dst = "B b1 10.5\nA 1 10.6 10.6\nI 2 10.7\nA 2 10.7 10.8\n"
    h = parse_history(src + dst, NAME)
    assert [(a.seq, a.ok) for a in h.attempts] == [(0, True), (1, True), (2, True)]
    assert [b.boot for b in boot_spans(h)] == ["b1"]


def test_a_log_without_boot_lines_is_one_boot_without_id() -> None:
    h = parse_history("I 0 1.0\nA 0 1.0 1.1\nB - 2.0\nI 1 2.0\nA 1 2.0 2.1\n", NAME)
    assert {a.boot for a in h.attempts} == {""}
    assert len(boot_spans(h)) == 1


# --- the rule --------------------------------------------------------------------------------


def test_sequential_boots_rewrite_offsets_without_loss_or_finding(tmp_path: Path) -> None:
    """Boot b2 (an HA restart) rewrote offsets 0..49 of b1's 100: b1's records there are
    superseded, not lost; 50..99 still hold b1's."""
    h = parse_history(boot_log("b1", 100.0, 100) + boot_log("b2", 300.0, 50), NAME)
    bricks = write_bricks(tmp_path, final_content(h))
    res = check(h, ".h", SIZE, PER_FILE, bricks, mount=bricks[0])
    assert [b.boot for b in res.boots] == ["b1", "b2"] and res.boots[1].acked == 50
    assert not res.overlaps and not res.ran_twice
    assert res.lost_count == 0 and min(res.copies.values()) == 3
    assert res.readable is not None and all(res.readable.values())
    rows = per_second(res, t0=100.0, duration_s=300.0)
    assert sum(r[4] for r in rows) == 0.0


def test_an_older_boot_acknowledging_after_a_newer_one_began_is_flagged() -> None:
    h = parse_history(boot_log("b1", 100.0, 100) + boot_log("b2", 101.0, 10), NAME)
    found = time_overlaps(h, "db1-guest")
    assert len(found) == 1
    o = found[0]
    assert (o.kind, o.older, o.newer, o.vm, o.disk) == (
        "acked_while_newer_ran", "b1", "b2", "db1", "db1-guest")
    assert o.seq_older == 99 and o.t_older == pytest.approx(100.0 + 99 * 0.02 + 0.005)
    assert o.seq_newer == 0 and o.t_newer == pytest.approx(101.0)
    assert o.count == sum(1 for i in range(100) if 100.0 + i * 0.02 + 0.005 > 101.0)
    text = o.describe(t0=100.0)
    assert "db1 ran twice on disk db1-guest" in text and "boot b1" in text and "b2" in text


def test_order_is_by_first_acknowledged_write_not_by_log_order() -> None:
    h = parse_history(boot_log("late", 500.0, 5) + boot_log("early", 100.0, 5), NAME)
    assert [b.boot for b in boot_spans(h)] == ["early", "late"]
    assert not time_overlaps(h, "d")


def test_an_older_record_read_over_a_newer_acknowledged_one_is_flagged(tmp_path: Path) -> None:
    """No overlap in the logs (say the old copy's log was lost after its last line), yet
    the volume answers b1's record 5 where b2 acknowledged its own: b1 wrote after."""
    h = parse_history(boot_log("b1", 100.0, 20) + boot_log("b2", 300.0, 10), NAME)
    content = final_content(h)
    content[5] = record(NAME, 5, SIZE, "b1")
    bricks = write_bricks(tmp_path, content)
    res = check(h, ".h", SIZE, PER_FILE, bricks, mount=bricks[1])
    assert [(o.kind, o.older, o.newer, o.seq_older, o.count) for o in res.overlaps] == [
        ("stale_record", "b1", "b2", 5, 1)]
    assert math.isnan(res.overlaps[0].t_older)
    assert res.overlaps[0].t_newer == pytest.approx(300.0 + 5 * 0.02 + 0.005)
    assert res.lost(5) and res.lost_count == 1 and res.copies[5] == 0
    assert "holds boot b1's record 5 over boot b2's record 5" in res.overlaps[0].describe()


def test_a_record_of_a_writer_with_no_log_is_named_so(tmp_path: Path) -> None:
    h = parse_history(boot_log("b2", 300.0, 10), NAME)
    content = final_content(h)
    content[3] = record(NAME, 3, SIZE, "zz99")
    bricks = write_bricks(tmp_path, content)
    res = check(h, ".h", SIZE, PER_FILE, bricks, mount=bricks[0])
    assert [(o.older, o.newer) for o in res.overlaps] == [("zz99 (no log)", "b2")]


def test_a_lone_brick_behind_on_heal_is_fewer_copies_not_a_second_writer(tmp_path: Path
                                                                          ) -> None:
    """host3's brick, cut off while b2 rewrote 0..9, still has b1's records there: the
    heal has not reached it. Copies drop to 2; no finding, for a client read and without."""
    h = parse_history(boot_log("b1", 100.0, 20) + boot_log("b2", 300.0, 10), NAME)
    old = {seq: record(NAME, seq, SIZE, "b1") for seq in range(10)}
    bricks = write_bricks(tmp_path, final_content(h), damage={2: old})
    for mount in (bricks[0], None):
        res = check(h, ".h", SIZE, PER_FILE, bricks, mount=mount)
        assert not res.overlaps
        assert res.lost_count == 0 and [res.copies[s] for s in range(10)] == [2] * 10
        assert res.copies[15] == 3


def test_stale_records_on_most_bricks_without_a_client_read_are_flagged(tmp_path: Path
                                                                         ) -> None:
    h = parse_history(boot_log("b1", 100.0, 20) + boot_log("b2", 300.0, 10), NAME)
    old = {4: record(NAME, 4, SIZE, "b1")}
    bricks = write_bricks(tmp_path, final_content(h), damage={0: old, 1: old})
    res = check(h, ".h", SIZE, PER_FILE, bricks, mount=None)
    assert [(o.kind, o.seq_older, o.where.count("brick")) for o in res.overlaps] == [
        ("stale_record", 4, 2)]


def test_a_newer_boots_unacknowledged_write_may_have_landed(tmp_path: Path) -> None:
    """b2 issued record 5 and was killed before its ack: b1's acknowledged 5 or b2's 5 are
    both a good copy there (no loss, no finding)."""
    h = parse_history(boot_log("b1", 100.0, 20) + boot_log("b2", 300.0, 5, open_tail=True),
                      NAME)
    content = final_content(h)
    content[5] = record(NAME, 5, SIZE, "b2")
    bricks = write_bricks(tmp_path, content)
    res = check(h, ".h", SIZE, PER_FILE, bricks, mount=bricks[0])
    assert not res.overlaps and res.lost_count == 0 and res.copies[5] == 3


def test_a_newer_boot_writing_whole_sectors_zeroes_the_rest_of_its_last_sector(
        tmp_path: Path) -> None:
    """The guest agent writes its 512-byte sector whole (8 records of 64 bytes): b2, still
    at record 9, wrote records 8..9 and zeros over 10..15 of b1's. Those are superseded,
    not lost (seen in the takeover lab test: b2 had 420 records, b1's 420..423 zeroed);
    zeros in a sector no newer boot wrote are still a loss."""
    h = parse_history(boot_log("b1", 100.0, 24) + boot_log("b2", 300.0, 10), NAME)
    content = final_content(h)
    for seq in range(10, 16):
        content[seq] = b"\0" * SIZE
    bricks = write_bricks(tmp_path, content)
    res = check(h, ".h", SIZE, PER_FILE, bricks, mount=bricks[0], block=512)
    assert res.lost_count == 0 and not res.overlaps and min(res.copies.values()) == 3
    assert check(h, ".h", SIZE, PER_FILE, bricks, mount=bricks[0]).lost_count == 6
    content[17] = b"\0" * SIZE
    (tmp_path / "again").mkdir()
    res = check(h, ".h", SIZE, PER_FILE, write_bricks(tmp_path / "again", content),
                mount=None, block=512)
    assert res.lost_count == 1 and res.lost(17)


def test_a_running_writers_later_attempts_supersede_what_they_overwrote(tmp_path: Path
                                                                        ) -> None:
    """The check read b2's log at record 9, b2 then wrote 10..13 (and zeros to 15) before
    the bricks were read: the log read again afterwards (``since``) says so."""
    first = boot_log("b1", 100.0, 24) + boot_log("b2", 300.0, 10)
    later = boot_log("b1", 100.0, 24) + boot_log("b2", 300.0, 14)
    h = parse_history(first, NAME)
    content = final_content(parse_history(later, NAME))
    for seq in (14, 15):
        content[seq] = b"\0" * SIZE
    bricks = write_bricks(tmp_path, content)
    stale = check(h, ".h", SIZE, PER_FILE, bricks, mount=bricks[0], block=512)
    assert stale.lost_count == 4  # b1's 10..13 hold b2's records the first read does not know
    res = check(h, ".h", SIZE, PER_FILE, bricks, mount=bricks[0], block=512,
                since=lambda: parse_history(later, NAME))
    assert res.lost_count == 0 and not res.overlaps and min(res.copies.values()) == 3
    # a third boot only the second read knows is newest: its records are good copies too
    content[20] = record(NAME, 20, SIZE, "b3")
    (tmp_path / "b3").mkdir()
    res = check(h, ".h", SIZE, PER_FILE, write_bricks(tmp_path / "b3", content),
                mount=None, block=512,
                since=lambda: parse_history(later + "B b3 400.0\nI 20 400.0\n", NAME))
    assert res.lost_count == 0 and not res.overlaps


def test_an_acknowledged_record_missing_everywhere_is_lost(tmp_path: Path) -> None:
    h = parse_history(boot_log("b1", 100.0, 20) + boot_log("b2", 300.0, 10), NAME)
    content = final_content(h)
    content[12] = b"\0" * SIZE
    bricks = write_bricks(tmp_path, content)
    res = check(h, ".h", SIZE, PER_FILE, bricks, mount=bricks[0])
    assert res.lost_count == 1 and res.lost(12) and not res.overlaps


# --- properties --------------------------------------------------------------------------

boots_st = st.lists(st.tuples(st.floats(0.0, 50.0), st.integers(1, 40),
                              st.floats(0.001, 0.5)), min_size=1, max_size=5)


def _interval(start: float, n: int, dt: float, lat: float = 0.005) -> tuple[float, float]:
    """From the first write's issue to the last write's acknowledgement (the generator's)."""
    return start, start + (n - 1) * dt + lat


def _generated(specs: list[tuple[float, int, float]]) -> tuple[str, list[tuple[float, float]]]:
    text = "".join(boot_log(f"b{i}", s, n, dt) for i, (s, n, dt) in enumerate(specs))
    return text, [_interval(s, n, dt) for s, n, dt in specs]


def _oracle_overlap(iv: list[tuple[float, float]]) -> bool:
    """Two boots overlap when their writing intervals intersect (any pair)."""
    return any(a[0] < b[1] and b[0] < a[1]
               for i, a in enumerate(iv) for b in iv[i + 1:])


@settings(max_examples=150, deadline=None)
@given(boots_st, st.data())
def test_every_overlapping_history_is_flagged_and_no_sequential_one(
        specs: list[tuple[float, int, float]], data: st.DataObject) -> None:
    sequential = data.draw(st.booleans())
    if sequential:  # lay the boots end to end with gaps: by construction no overlap
        t, laid = 0.0, []
        for _, n, dt in specs:
            gap = data.draw(st.floats(0.01, 30.0))
            laid.append((t + gap, n, dt))
            t = _interval(t + gap, n, dt)[1]
        specs = laid
    text, iv = _generated(specs)
    h = parse_history(text, NAME)
    flagged = bool(time_overlaps(h, "d"))
    assert flagged == _oracle_overlap(iv), (iv, time_overlaps(h, "d"))
    if sequential:
        assert not flagged


def end_to_end(specs: list[tuple[float, int, float]]) -> list[tuple[float, int, float]]:
    """The same boots laid one after the other, each starting 1 s after the last ended."""
    t, laid = 0.0, []
    for _, n, dt in specs:
        laid.append((t + 1.0, n, dt))
        t = _interval(t + 1.0, n, dt)[1]
    return laid


@settings(max_examples=60, deadline=None)
@given(boots_st, st.booleans(), st.data())
def test_bricks_after_sequential_boots_check_clean_and_interleaved_ones_are_flagged(
        tmp_path_factory: pytest.TempPathFactory, specs: list[tuple[float, int, float]],
        sequential: bool, data: st.DataObject) -> None:
    """The bricks hold, per offset, the record acknowledged last (in time). Sequential boots:
    nothing lost, no finding, every offset on 3 bricks. Any overlap: flagged (a reader of
    the volume may then even see an older boot's record over a newer one's)."""
    if sequential:
        specs = end_to_end(specs)
    text, iv = _generated(specs)
    h = parse_history(text, NAME)
    root = tmp_path_factory.mktemp("bricks")
    bricks = write_bricks(root, final_content(h))
    res = check(h, ".h", SIZE, PER_FILE, bricks, mount=bricks[data.draw(st.integers(0, 2))])
    assert res.ran_twice == _oracle_overlap(iv)
    if not _oracle_overlap(iv):
        assert res.lost_count == 0 and min(res.copies.values()) == 3


# --- where a finding goes ------------------------------------------------------------------


def test_a_finding_reaches_the_summary_the_events_and_the_replicas_claim(tmp_path: Path
                                                                         ) -> None:
    from hcisim.claims import evaluate
    from hcisim.lab.history import history_summary, ran_twice_events
    from hcisim.observations import Recorder
    from tests.claims.cases import build, healthy_run, scenario

    h = parse_history(boot_log("b1", 100.0, 100) + boot_log("b2", 101.0, 10), NAME)
    bricks = write_bricks(tmp_path, final_content(h))
    res = check(h, ".h", SIZE, PER_FILE, bricks, mount=bricks[0])
    summary = history_summary(res, t0=90.0)
    assert [b["boot"] for b in summary["boots"]] == ["b1", "b2"]  # type: ignore[attr-defined]
    assert summary["ran_twice"] == [o.describe(90.0) for o in res.overlaps] != []
    events = ran_twice_events(res, t0=90.0)
    assert events[0][0] == pytest.approx(11.0)  # when b2 began writing
    rec = healthy_run()
    (ok,) = evaluate(scenario([{"kind": "replicas", "min_copies": 2}]), build(rec))
    for t, detail in events:
        rec.event(t, "vm_ran_twice", "a", detail)
    (v,) = evaluate(scenario([{"kind": "replicas", "min_copies": 2}]), build(rec))
    assert ok.verdict == "pass" and v.verdict == "fail"
    assert [e["problem"] for e in v.evidence] == ["two boots wrote the disk at once"]
    assert v.evidence[0]["vm"] == "a" and "ran twice" in v.evidence[0]["detail"]
    (other,) = evaluate(scenario([{"kind": "replicas", "min_copies": 2, "vms": ["c"]}]),
                        build(rec))
    assert other.verdict == "pass"  # the claim about c alone is not touched by a's finding
    bare = Recorder()  # a plane run: no writes table, its guests' histories checked
    for t, detail in events:
        bare.event(t, "vm_ran_twice", "a", detail)
    (plane,) = evaluate(scenario([{"kind": "replicas", "min_copies": 2}]), build(bare))
    assert plane.verdict == "fail" and plane.evidence[0]["vm"] == "a"
    (none,) = evaluate(scenario([{"kind": "replicas", "min_copies": 2}]), build(Recorder()))
    assert none.verdict == "n/a"


def sector_content(h: History, per_block: int = 8) -> dict[int, bytes]:
    """The disk after these writes as the guest agent makes them: each write puts its whole
    sector, the boot's own records up to the current one and zeros after (in ack order)."""
    out: dict[int, bytes] = {}
    for a in sorted(h.acked, key=lambda a: a.t_end or 0.0):
        start = a.seq - a.seq % per_block
        for r in range(start, start + per_block):
            out[r] = record(NAME, r, SIZE, a.boot) if r <= a.seq else b"\0" * SIZE
    return out


@settings(max_examples=60, deadline=None)
@given(boots_st, st.booleans(), st.integers(0, 2), st.data())
def test_sector_writers_and_a_brick_behind_on_heal_flag_only_overlaps(
        tmp_path_factory: pytest.TempPathFactory, specs: list[tuple[float, int, float]],
        sequential: bool, lagging: int, data: st.DataObject) -> None:
    """Sector-whole writes (the agent's) and one brick that kept the disk as it was before
    the last boot (it was cut off and not healed yet): sequential boots still check clean
    (nothing lost, no finding); overlapping ones are flagged."""
    if sequential:
        specs = end_to_end(specs)
    text, iv = _generated(specs)
    h = parse_history(text, NAME)
    before_last = parse_history(text[:text.rindex("B ")], NAME) if len(specs) > 1 else None
    content = sector_content(h)
    stale = sector_content(before_last) if before_last is not None else {}
    root = tmp_path_factory.mktemp("sectors")
    bricks = write_bricks(root, content, damage={lagging: {s: r for s, r in stale.items()
                                                           if s in content}})
    res = check(h, ".h", SIZE, PER_FILE, bricks, mount=bricks[(lagging + 1) % 3], block=512)
    assert res.ran_twice == _oracle_overlap(iv), [o.describe() for o in res.overlaps]
    if not _oracle_overlap(iv):
        assert res.lost_count == 0 and min(res.copies.values()) >= 2
