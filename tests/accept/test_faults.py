"""Fault injection on a fake server that keeps state: what a fault did, and what the
rollback ledger put back."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcisim.accept.faults import FaultFailed, FaultRun, HostHealth, inject, restore_rows
from hcisim.accept.safety import FaultPolicy, RollbackLedger
from hcisim.accept.ssh import Completed, Shell
from hcisim.lab.gluster import parse_volume_info
from hcisim.observations import Recorder
from hcisim.scenario import make_fault
from tests.accept.fakes import UUIDS, Answer, FakeShell, cluster, fixture, ok
from tests.accept.scenarios import small


class Server:
    """A fake server that keeps the state a fault changes: host3's data brick (pid 19958),
    the storage link, a dead man's switch armed or not. Tests judge this state and the
    rollback ledger, not the commands' text."""

    def __init__(self, kill_works: bool = True) -> None:
        self.brick_up, self.link_up, self.armed = True, True, False
        self.armed_when_hit: bool | None = None
        self.kill_works = kill_works
        self.switch_bound: float | None = None

    def rules(self) -> list[tuple[str, Answer]]:
        return [(r"nohup", self.arm), (r"volume status data", self.status),
                (r"cmdline .*&& kill -KILL", self.kill), (r"volume start data force", self.start),
                (r"kill -TERM", self.disarm), (r"^ip link set sto0 up", self.up),
                (r"^ip -o link show dev sto0", self.show)]

    def status(self, cmd: str) -> Completed:
        return ok(fixture("volume_status_data.xml" if self.brick_up
                          else "volume_status_brick_down.xml"))

    def kill(self, cmd: str) -> Completed:
        # only the verified PID of the named brick dies
        if not self.kill_works or "--brick-name /srv/lab/n3/brick/data" not in cmd \
                or "kill -KILL 19958" not in cmd:
            return Completed(1, "", "")
        self.brick_up, self.armed_when_hit = False, self.armed
        return ok()

    def start(self, cmd: str) -> Completed:
        self.brick_up = True
        return ok("volume start: data: success")

    def arm(self, cmd: str) -> Completed:
        self.armed = True
        self.switch_bound = float(cmd.split("sleep ")[1].split(";")[0])
        if "ip link set sto0 down" in cmd:  # the switch is the fault
            self.link_up, self.armed_when_hit = False, True
        return ok()

    def disarm(self, cmd: str) -> Completed:
        self.armed = False
        return ok()

    def up(self, cmd: str) -> Completed:
        self.link_up = True
        return ok()

    def show(self, cmd: str) -> Completed:
        flags = "BROADCAST,MULTICAST,UP,LOWER_UP" if self.link_up else "BROADCAST,MULTICAST"
        return ok(f"5: sto0@if9: <{flags}> mtu 9000 qdisc noqueue state UP\n")


def _run(shells: dict[str, FakeShell], **policy: object) -> FaultRun:
    sc = small()
    vols = {v.name: parse_volume_info(fixture(f"volume_info_{v.name}.xml"))[0]
            for v in sc.volumes}
    pol = FaultPolicy(True, frozenset(shells), **policy)  # type: ignore[arg-type]
    plain: dict[str, Shell] = dict(shells)
    now = [100.0]

    def sleep(s: float) -> None:  # time passes only when the code under test waits
        now[0] += s

    return FaultRun(sc, plain, dict(UUIDS), vols, pol, "t1", Recorder(), 0.0,
                    sleep=sleep, clock=lambda: now[0])


def _cluster(server: Server, on: str = "host3") -> dict[str, FakeShell]:
    return cluster({on: server.rules()})


def test_brick_crash_kills_the_brick_with_the_switch_armed_and_the_ledger_restores() -> None:
    server = Server()
    run, ledger = _run(_cluster(server)), RollbackLedger()
    bound = inject(run, make_fault(at_s=0, kind="brick_crash", target="host3", volume="data",
                                   duration_s=5), 0, ledger)
    assert bound == 5 and not server.brick_up and server.armed_when_hit is True
    assert server.switch_bound == 15  # the bound plus the switch's grace
    assert ledger.unwind() == [] and server.brick_up and not server.armed
    ev = run.recorder.frame("events")
    assert list(ev["kind"]) == ["fault_start", "brick_down", "brick_up"]


def test_brick_crash_refused_when_the_brick_is_already_down() -> None:
    server = Server()
    server.brick_up = False
    run, ledger = _run(_cluster(server)), RollbackLedger()
    with pytest.raises(FaultFailed, match="not running before the fault"):
        inject(run, make_fault(at_s=0, kind="brick_crash", target="host3", volume="data"), 0,
               ledger)
    assert ledger.steps == [] and not server.armed and server.armed_when_hit is None


def test_failed_kill_leaves_the_undo_on_the_ledger() -> None:
    server = Server(kill_works=False)
    run, ledger = _run(_cluster(server)), RollbackLedger()
    with pytest.raises(FaultFailed, match="kill -KILL failed"):
        inject(run, make_fault(at_s=0, kind="brick_crash", target="host3", volume="data"), 0,
               ledger)
    assert server.brick_up and server.armed
    assert ledger.unwind() == [] and not server.armed


def test_nic_loss_is_the_switch_itself_and_capped_by_the_hard_bound() -> None:
    server = Server()
    run, ledger = _run(_cluster(server), max_fault_s=30.0), RollbackLedger()
    bound = inject(run, make_fault(at_s=0, kind="nic_loss", target="host3", duration_s=600),
                   1, ledger)
    assert bound == 30.0 and server.switch_bound == 30.0
    assert not server.link_up and server.armed_when_hit
    assert ledger.unwind() == [] and server.link_up and not server.armed


def test_nic_loss_refused_when_the_link_is_already_down() -> None:
    server = Server()
    server.link_up = False
    ledger = RollbackLedger()
    with pytest.raises(FaultFailed, match="already down"):
        inject(_run(_cluster(server)), make_fault(at_s=0, kind="nic_loss", target="host3"), 0,
               ledger)
    assert ledger.steps == [] and not server.armed


def test_power_commands_run_locally_and_are_never_recorded(tmp_path: Path) -> None:
    log = tmp_path / "bmc.log"
    off = f"echo off {{host}} {{address}} -P hunter2 >> {log}"
    on = f"echo on {{host}} >> {log}"
    server = Server()
    run, ledger = _run(_cluster(server), power_off_cmd=off, power_on_cmd=on), RollbackLedger()
    inject(run, make_fault(at_s=0, kind="node_power_loss", target="host3"), 0, ledger)
    assert log.read_text() == "off host3 10.0.0.3 -P hunter2\n"
    assert ledger.unwind() == []
    assert log.read_text().endswith("on host3\n")
    assert "hunter2" not in run.recorder.frame("events").to_csv()


def test_restore_rows_say_what_is_not_back() -> None:
    before = HostHealth(frozenset({"data:/b"}), True, 2)
    assert restore_rows("host2", before, before, [])[0].verdict == "pass"
    before = HostHealth(frozenset({"data:/b"}), True, 2, frozenset({"data"}))
    worse = HostHealth(frozenset(), False, 1)
    (r,) = restore_rows("host2", before, worse, ["bring sto0 up on host2"])
    assert r.verdict == "fail" and r.actual.startswith("NOT RESTORED")
    for gap in ("bricks offline: data:/b", "storage link down", "peers connected 1 < 2",
                "undo failed: bring sto0 up", "not mounted or not answering: data"):
        assert gap in r.actual
    (gone,) = restore_rows("host2", before, None, [])
    assert "unreachable" in gone.actual and gone.verdict == "fail"
