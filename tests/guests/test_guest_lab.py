"""A real guest on a real replica-3 volume: brick loss, quorum loss, nothing lost.

One lab; a guest on host1's FUSE mount of ``data``, in the order a VM lives through it:
(i) host2's brick is killed: the guest keeps running and its heartbeat shows the stall;
(ii) host2's and host3's bricks are killed: client quorum is gone, qemu pauses the guest
with an I/O error (werror=stop), and once both bricks are back the auto-resume continues
it; (iii) after heal every acknowledged record is on every data brick. (iv) Another guest,
dirtying memory, live-migrates from host1 to host2 over the lab's storage network; (v) a
migration to host3 over the management network whose link on host3 is cut midway is
cancelled by the progress timeout and the guest runs on at the source. (vi) The engine's
Gluster validations before maintenance: refused while heal is pending, or for quorum.
Needs root, qemu-system-x86, gcc, apt and the netns lab's packages.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hcisim.lab.guests.agentlink import longest_silence, longest_write_wait
from hcisim.lab.guests.fleet import scenario_guests
from hcisim.lab.guests.lab import check_guest, start_destination, start_guest
from hcisim.lab.guests.migrate import MigrationPolicy, migrate
from hcisim.lab.guests.qemu import Guest
from hcisim.lab.guests.resume import AutoResume, ResumeBehavior, mount_writable
from hcisim.lab.guests.vmstate import pause_windows, vm_state_rows
from hcisim.lab.history import CheckResult
from hcisim.lab.history_writer import record
from hcisim.lab.netns.backend import NetnsBackend
from hcisim.lab.netns.layout import unique_name
from hcisim.lab.plane.maintenance import LabMaintenance
from hcisim.lab.run import placement
from hcisim.scenario import Fault
from tests.lab.scenarios import small

pytestmark = [pytest.mark.lab, pytest.mark.slow]

FAULTS = """[{at_s: 1, kind: brick_crash, target: host2, volume: data, duration_s: 1},
            {at_s: 1, kind: brick_crash, target: host3, volume: data, duration_s: 1},
            {at_s: 1, kind: nic_loss, target: host3, network: management, duration_s: 1}]"""


def wait_for(pred: object, timeout: float, what: str) -> float:
    assert callable(pred)
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.1)
    return time.time()


@pytest.fixture(scope="module")
def lab() -> Iterator[NetnsBackend]:
    with NetnsBackend(small(600, FAULTS), name=unique_name("guest")) as be:
        be.build()
        be.deploy()
        yield be


def restore(be: NetnsBackend, fault: Fault) -> None:
    """Repair (glusterd busy with the previous repair's transaction: the CLI wrapper tries
    again, hcisim.lab.gluster.Gluster.run)."""
    be.restore(fault)


def acked_after(guest: Guest, n: int, timeout: float) -> None:
    target = guest.agent.acked + n
    wait_for(lambda: guest.agent.acked >= target, timeout, f"{n} more acknowledged writes")


def lost_detail(be: NetnsBackend, result: CheckResult, disk: Path) -> str:
    """Which records, and what each brick and the mount hold at the first one's offset."""
    lost = [a for a in result.acked if result.lost(a.seq)]
    out = [f"seq {a.seq} acked {a.t_end:.3f} copies {result.copies.get(a.seq)} readable "
           f"{None if result.readable is None else result.readable.get(a.seq)}"
           for a in lost[:30]]
    if lost:
        off = lost[0].seq * result.size
        for base in [*be.data_brick_paths("data"), disk.parent]:
            data = (base / disk.name).read_bytes()[off:off + result.size]
            out.append(f"{base}: {data[:24]!r}")
            if base != disk.parent:  # AFR's changelog: who blamed whom
                out += [f"  {k}={os.getxattr(base / disk.name, k).hex()}"
                        for k in os.listxattr(base / disk.name) if k.startswith("trusted.afr")]
        for h in be.lab_.hosts:  # who healed what from where (shd and client logs)
            for log in sorted(h.logdir.rglob("*.log")):
                out += [f"  {h.name}/{log.name}: {line[:220]}" for line in
                        log.read_text(errors="replace").splitlines() if "selfheal" in line]
    return "; ".join(out)


def heal_done(be: NetnsBackend, volume: str) -> bool:
    sample = be.observe()
    pending = sample.pending.get(volume)
    return pending is not None and len(pending) == 3 and \
        all(p.entries == 0 for p in pending.values())


def test_guest_rides_brick_loss_pauses_on_quorum_loss_and_loses_nothing(
        lab: NetnsBackend, tmp_path: Path) -> None:
    crash2, crash3, _ = lab.scenario.faults
    mount = lab.mount_path("host1", "data")
    t0 = time.time()
    with start_guest(lab, "vm1", "host1", "data") as guest:
        boot_s = guest.boot()
        print(f"guest boot: {boot_s:.1f} s")
        with AutoResume(guest, ResumeBehavior.AUTO_RESUME,
                        lambda: mount_writable(mount, "host1")):
            acked_after(guest, 20, 60)
            # (i) one brick down: the guest keeps running
            t_fault = lab.inject(crash2)
            acked_after(guest, 50, 60)
            lab.restore(crash2)
            t_back = time.time()
            acked_after(guest, 20, 60)
            assert guest.qmp.events_named("STOP") == []
            assert guest.status() == "running"
            hbs = guest.agent.heartbeats_since(t_fault)
            wait, gap = longest_write_wait(hbs, t_fault, t_back), longest_silence(hbs, t_fault,
                                                                                t_back)
            print(f"brick loss: longest write wait {wait:.3f} s, heartbeat gap {gap:.3f} s")
            # a crashed brick resets its connections: no write waits for the ping-timeout
            ping_timeout = lab.scenario.volume("data").options.ping_timeout_s
            assert hbs and wait < ping_timeout and gap < ping_timeout
            wait_for(lambda: heal_done(lab, "data"), 90, "heal after the brick came back")

            # (ii) two bricks down: qemu pauses the guest with an I/O error
            lab.inject(crash2)
            lab.inject(crash3)
            wait_for(lambda: guest.status() == "io-error", 30, "the guest paused on EIO")
            assert guest.running(), "qemu must pause the guest, not crash"
            # what each brick holds while both are down (before any heal), for the finding
            at_pause = {b.parent.parent.parent.name: (b / guest.spec.disk.name).read_bytes()
                        for b in lab.data_brick_paths("data")}
            acked_frozen = guest.agent.acked
            time.sleep(2)
            assert guest.agent.acked == acked_frozen, "a paused guest acknowledged writes"
            restore(lab, crash3)
            restore(lab, crash2)
            wait_for(lambda: guest.status() == "running", 60,
                     "auto-resume after the bricks returned")
            acked_after(guest, 20, 60)
        t_end = time.time()
        rows = vm_state_rows("vm1", "host1", guest.qmp.events, t0, t_end)
        pauses = pause_windows(rows)
        print("vm_state:", *(f"{r.state} [{r.t_start_s:.2f}, {r.t_end_s:.2f}) {r.reason}"
                             for r in rows), sep="\n  ")
        assert len(pauses) >= 1, rows
        assert [r.state for r in rows][:1] == ["running"]
        assert rows[-1].state == "running"
        print(f"pause windows: {[(round(a, 2), round(b - a, 2)) for a, b in pauses]}")
    # (iii) the guest is stopped; after heal every acknowledged record is on every brick
    wait_for(lambda: heal_done(lab, "data"), 120, "heal after quorum returned")
    result = check_guest(lab, guest, "data", "host1")
    assert len(result.acked) > 100
    if result.lost_count:
        # Gluster 10.3, not a harness fault (docs/guests.md, "Acknowledged writes lost
        # around a brick's return"; tests/guests/test_quorum_loss_rmw.py shows it): when
        # the client reconnects to a returned brick that no xattr blames yet, AFR may read
        # qemu's 4 KiB read-modify-write page from it and the write puts the stale page on
        # all three bricks. Reported as XFAIL with the evidence.
        pauses_at = [(round(a + t0, 3), round(b + t0, 3)) for a, b in pauses]
        lost = [a.seq for a in result.acked if result.lost(a.seq)]
        held = {host: sum(data[s * 64:s * 64 + 64] == record("vm1", s, 64, guest.spec.boot)
                          for s in lost)
                for host, data in at_pause.items()}
        pytest.xfail(f"{result.lost_count} acknowledged records lost (stale page read after a "
                     "brick's return, written back by qemu's read-modify-write); "
                     f"held at the pause (before heal) by: {held}; pauses {pauses_at}: "
                     + lost_detail(lab, result, guest.spec.disk))
    assert min(result.copies.values()) == 3, "a record missing on a brick after heal"


def test_guest_live_migrates_between_namespaces_and_loses_nothing(lab: NetnsBackend) -> None:
    t0 = time.time()
    policy = MigrationPolicy(max_bandwidth_mib_s=64, downtime_limits_ms=(300, 600),
                             step_wait_s=5.0)
    with start_guest(lab, "vm2", "host1", "data", dirty_mib=24, dirty_pages_s=500) as src:
        src.boot()
        acked_after(src, 20, 60)
        dst, uri = start_destination(lab, src, "host2", "data")
        with dst:
            assert uri.startswith(f"tcp:{lab.lab_.host('host2').storage_addr}:")
            result = migrate(src, dst, uri, policy)
            print(f"migration: {result.outcome} total {result.total_time_s} s, downtime "
                  f"{result.downtime_s} s, setup {result.setup_time_s} s, RAM "
                  f"{(result.ram_transferred_bytes or 0) / 2**20:.1f} MiB of "
                  f"{(result.ram_total_bytes or 0) / 2**20:.1f}, "
                  f"dirty syncs {result.dirty_sync_count}")
            assert result.outcome == "completed", result.reason
            assert result.downtime_s is not None and result.total_time_s is not None
            assert 0 < result.downtime_s < result.total_time_s
            assert (result.dirty_sync_count or 0) >= 2
            assert (result.ram_transferred_bytes or 0) > 24 * 2**20  # the dirtied set at least
            assert src.status() == "postmigrate"
            wait_for(lambda: dst.status() == "running", 30, "the destination runs")
            acked_after(dst, 20, 60)  # the agent's lines now come from host2's qemu
            # the agent's hot pages held every store across the switch-over (qemu 7.2's TCG
            # migration loses such stores on a RAM size of whole 256 KiB words: tcg_ram_kib)
            assert src.agent.ram_errors == [] and dst.agent.ram_errors == []
            src.stop()
            dst_rows = vm_state_rows("vm2", "host2", dst.qmp.events, t0, time.time())
            assert [r.state for r in dst_rows] == ["running"]
            src_rows = vm_state_rows("vm2", "host1", src.qmp.events, t0, time.time())
            assert [r.state for r in src_rows] == ["running", "migrating", "paused", "down"]
            assert src_rows[-1].reason == "migrated"
    wait_for(lambda: heal_done(lab, "data"), 60, "no heal pending")
    result_check = check_guest(lab, [src, dst], "data", "host2")
    assert result_check.lost_count == 0
    assert min(result_check.copies.values()) == 3
    assert max(result_check.copies) >= len(result_check.acked) - 1  # one numbered history


def test_migration_whose_link_is_cut_is_cancelled_and_the_guest_runs_on(
        lab: NetnsBackend) -> None:
    nic_loss = lab.scenario.faults[2]
    t0 = time.time()
    # slow enough (4 MiB/s for ~100 MiB) that the cut lands in the middle of the stream
    policy = MigrationPolicy(max_bandwidth_mib_s=4, progress_timeout_s=4, max_time_s=120)
    with start_guest(lab, "vm3", "host1", "data") as src:
        src.boot()
        acked_after(src, 20, 60)
        dst, uri = start_destination(lab, src, "host3", "data", network="management")
        with dst, ThreadPoolExecutor(1) as pool:
            running = pool.submit(migrate, src, dst, uri, policy)
            wait_for(lambda: (src.qmp.execute("query-migrate").get("ram") or {})
                     .get("transferred", 0) > 8 * 2**20, 60, "8 MiB of the stream sent")
            lab.inject(nic_loss)
            try:
                result = running.result(timeout=60)
            finally:
                lab.restore(nic_loss)
            print(f"cut migration: {result.outcome} ({result.reason}) after "
                  f"{(result.ram_transferred_bytes or 0) / 2**20:.1f} MiB")
            assert result.outcome == "cancelled"
            assert result.reason.startswith("no progress")
            assert src.status() == "running"
            acked_after(src, 20, 60)  # the guest still works on the source
        rows = vm_state_rows("vm3", "host1", src.qmp.events, t0, time.time())
        assert [(r.state, r.reason) for r in rows][1:] == [
            ("migrating", "setup"), ("running", "migration cancelled")]
        assert not any(r.state in ("paused", "down") for r in rows)


def test_every_scenario_vm_boots_as_a_guest_and_stops_on_the_way_out(
        lab: NetnsBackend) -> None:
    t0 = time.time()
    with scenario_guests(lab, lab.scenario, placement(lab.scenario)) as fleet:
        assert set(fleet.guests) == {"vm1"}
        guest = fleet.guests["vm1"]
        assert guest.spec.host == "host1" and guest.spec.mem_mib == 160
        acked_after(guest, 20, 60)
    assert not guest.running()
    rows = fleet.vm_state(t0, time.time())
    assert [r.state for r in rows] == ["running", "down"]
    assert fleet.check(lab, "vm1").lost_count == 0


def test_maintenance_is_refused_while_heal_is_pending_and_for_quorum(
        lab: NetnsBackend) -> None:
    """The engine's Gluster validations on the real volume (hcisim/lab/plane/maintenance.py):
    with the self-heal daemon held off, a file written while host2's brick was down leaves
    entries on host1's and host3's bricks: their maintenance is refused, host2's is not (its
    own brick lists nothing); with host2's brick down, host1's would lose quorum. Heal
    done: every host may go."""
    crash2 = lab.scenario.faults[0]
    cli = lab.faults.machine.gluster("host1") if lab.faults else None
    assert cli is not None
    plane = LabMaintenance(lab.scenario, lab, dict, lambda vm, dst: False,
                           lambda target, detail: None)
    wait_for(lambda: [plane.refusal(h) for h in ("host1", "host2", "host3")] == [None] * 3,
             90, "every host may go to begin with (an earlier test's heal done)")
    cli.do("volume", "set", "data", "cluster.self-heal-daemon", "off", step="hold heal")
    try:
        lab.inject(crash2)
        why = plane.refusal("host1")
        assert why is not None and why.startswith("Gluster quorum cannot be met for data")
        with (lab.mount_path("host1", "data") / "maintenance-probe").open("wb") as f:
            f.write(os.urandom(1 << 20))
            f.flush()
            os.fsync(f.fileno())
        restore(lab, crash2)
        wait_for(lambda: all(up for _, up in plane.gluster_view("host2")[0]["data"]), 30,
                 "host2's brick back")
        refused = {h: plane.refusal(h) for h in ("host1", "host2", "host3")}
        assert refused["host2"] is None, refused
        for h in ("host1", "host3"):
            assert (refused[h] or "").startswith(
                f"unsynced entries present in Gluster bricks of {h}: data ("), refused
    finally:
        cli.do("volume", "set", "data", "cluster.self-heal-daemon", "on", step="let heal")
    cli.start_heal("data")
    wait_for(lambda: plane.refusal("host1") is None and plane.refusal("host3") is None, 90,
             "maintenance accepted once heal is done")
