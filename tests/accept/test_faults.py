"""Fault injection on a fake cluster: the order of arming, killing and undoing."""

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


class BrickState:
    """host3's data brick: killed by ``kill -9``, back after ``volume start force``."""

    def __init__(self) -> None:
        self.up = True

    def status(self, cmd: str) -> Completed:
        name = "volume_status_data.xml" if self.up else "volume_status_brick_down.xml"
        return ok(fixture(name))

    def kill(self, cmd: str) -> Completed:
        self.up = False
        return ok()

    def start(self, cmd: str) -> Completed:
        self.up = True
        return ok("volume start: data: success")


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


def _brick_cluster(state: BrickState) -> dict[str, FakeShell]:
    rules: list[tuple[str, Answer]] = [
        (r"volume status data", state.status), (r"kill -9", state.kill),
        (r"volume start data force", state.start), (r"nohup", ok()), (r"kill -TERM", ok())]
    return cluster({h: list(rules) for h in ("host1", "host2", "host3")})


def test_brick_crash_arms_the_switch_before_killing_the_verified_pid() -> None:
    state = BrickState()
    shells = _brick_cluster(state)
    run, ledger = _run(shells), RollbackLedger()
    bound = inject(run, make_fault(at_s=0, kind="brick_crash", target="host3", volume="data",
                              duration_s=5), 0, ledger)
    assert bound == 5 and not state.up
    cmds = shells["host3"].commands
    arm = next(i for i, c in enumerate(cmds) if "nohup" in c)
    kill = next(i for i, c in enumerate(cmds) if "kill -9" in c)
    assert arm < kill
    assert "sleep 15" in cmds[arm] and "volume start data force" in cmds[arm]
    assert "--brick-name /srv/lab/n3/brick/data" in cmds[kill] and "kill -9 19958" in cmds[kill]
    assert not any("kill" in c for h in ("host1", "host2") for c in shells[h].commands)
    assert ledger.unwind() == [] and state.up
    assert any("kill -TERM" in c for c in shells["host3"].commands[kill:])  # disarmed
    ev = run.recorder.frame("events")
    assert list(ev["kind"]) == ["fault_start", "brick_down", "brick_up"]


def test_brick_crash_refused_when_the_brick_is_already_down() -> None:
    state = BrickState()
    state.up = False
    shells = _brick_cluster(state)
    run, ledger = _run(shells), RollbackLedger()
    with pytest.raises(FaultFailed, match="not running before the fault"):
        inject(run, make_fault(at_s=0, kind="brick_crash", target="host3", volume="data"), 0,
               ledger)
    assert ledger.steps == []
    assert not any("kill -9" in c or "nohup" in c for c in shells["host3"].commands)


def test_failed_kill_leaves_the_undo_on_the_ledger() -> None:
    state = BrickState()
    shells = _brick_cluster(state)
    shells["host3"].rules.insert(0, (r"kill -9", Completed(1, "", "")))
    run, ledger = _run(shells), RollbackLedger()
    with pytest.raises(FaultFailed, match="could not be killed"):
        inject(run, make_fault(at_s=0, kind="brick_crash", target="host3", volume="data"), 0,
               ledger)
    assert [w for w, _ in ledger.steps] == [
        "disarm the switch on host3", "start the bricks of data on host3 (volume start data "
        "force)"]


def test_nic_loss_is_the_switch_itself() -> None:
    shells = cluster({"host2": [(r"nohup", ok()), (r"kill -TERM", ok()),
                                (r"ip link set sto0 up", ok())]})
    run, ledger = _run(shells, max_fault_s=30.0), RollbackLedger()
    fault = make_fault(at_s=0, kind="nic_loss", target="host2", duration_s=600)
    bound = inject(run, fault, 1, ledger)
    assert bound == 30.0  # capped by the hard bound
    (arm,) = [c for c in shells["host2"].commands if "nohup" in c]
    assert "ip link set sto0 down" in arm and "sleep 30" in arm and "ip link set sto0 up" in arm
    assert ledger.unwind() == []
    assert any(c.startswith("ip link set sto0 up") for c in shells["host2"].commands)


def test_nic_loss_refused_when_the_link_is_already_down() -> None:
    down = ok("5: sto0@if9: <BROADCAST,MULTICAST> mtu 9000 state DOWN")
    shells = cluster({"host2": [(r"^ip -o link show", down)]})
    with pytest.raises(FaultFailed, match="already down"):
        inject(_run(shells), make_fault(at_s=0, kind="nic_loss", target="host2"), 0,
               RollbackLedger())


def test_power_commands_run_locally_and_are_never_recorded(tmp_path: Path) -> None:
    log = tmp_path / "bmc.log"
    off = f"echo off {{host}} {{address}} -P hunter2 >> {log}"
    on = f"echo on {{host}} >> {log}"
    shells = cluster({"host2": [(r"volume start", ok())]})
    run, ledger = _run(shells, power_off_cmd=off, power_on_cmd=on), RollbackLedger()
    inject(run, make_fault(at_s=0, kind="node_power_loss", target="host2"), 0, ledger)
    assert log.read_text() == "off host2 10.0.0.2 -P hunter2\n"
    assert ledger.unwind() == []
    assert log.read_text().endswith("on host2\n")
    assert "hunter2" not in run.recorder.frame("events").to_csv()


def test_restore_rows_say_what_is_not_back() -> None:
    before = HostHealth(frozenset({"data:/b"}), True, 2)
    assert restore_rows("host2", before, before, [])[0].verdict == "pass"
    worse = HostHealth(frozenset(), False, 1)
    (r,) = restore_rows("host2", before, worse, ["bring sto0 up on host2"])
    assert r.verdict == "fail" and r.actual.startswith("NOT RESTORED")
    for gap in ("bricks offline: data:/b", "storage link down", "peers connected 1 < 2",
                "undo failed: bring sto0 up"):
        assert gap in r.actual
    (gone,) = restore_rows("host2", before, None, [])
    assert "unreachable" in gone.actual and gone.verdict == "fail"
