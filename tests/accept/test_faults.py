"""Faults on existing servers through the hosts backend, on fake servers that keep state:
what a fault did, what the switch on the server would do, and what the rollback put back.
Tests judge the servers' state, not the commands' text."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from hcisim.accept.restored import HostHealth, restore_rows
from hcisim.lab import hosts
from hcisim.lab.errors import LabError
from hcisim.lab.hosts import HostsBackend, NodeFacts
from hcisim.lab.node import Completed, SshShell
from hcisim.scenario import make_fault
from tests.accept.fakes import UUIDS, Answer, FakeShell, cluster, fixture, ok
from tests.accept.scenarios import small


class Server:
    """host3 of the fixture cluster: its data brick (pid 19958), its storage link, a dead
    man's switch armed or not."""

    def __init__(self, kill_works: bool = True, start_works: bool = True) -> None:
        self.brick_up, self.link_up, self.shd_up = True, True, True
        self.switches: set[str] = set()  # pid files of the armed switches
        self.armed_when_hit: bool | None = None
        self.kill_works, self.start_works = kill_works, start_works
        self.switch_bound: float | None = None

    def rules(self) -> list[tuple[str, Answer]]:
        return [(r"nohup", self.arm), (r"volume status data", self.status),
                (r"cmdline .*&& kill -KILL", self.kill), (r"volume start data force", self.start),
                (r"kill -TERM", self.disarm), (r"^ip link set sto0 up", self.up),
                (r"^ip -o link show dev sto0", self.show)]

    def status(self, cmd: str) -> Completed:
        xml = fixture("volume_status_data.xml" if self.brick_up
                      else "volume_status_brick_down.xml")
        if not self.shd_up:  # glusterd reports host3's self-heal daemon of data offline
            xml, n = re.subn(r"(Self-heal Daemon</hostname>\s*<path>127\.1\.1\.3</path>\s*"
                             r"<peerid>[^<]*</peerid>\s*<status>)1", r"\g<1>0", xml)
            assert n == 1
        return ok(xml)

    def kill(self, cmd: str) -> Completed:
        # only the verified PID of the named brick dies
        if not self.kill_works or "--brick-name /srv/lab/n3/brick/data" not in cmd \
                or "kill -KILL 19958" not in cmd:
            return Completed(1, "", "")
        self.brick_up, self.armed_when_hit = False, self.armed
        return ok()

    def start(self, cmd: str) -> Completed:
        self.brick_up = self.brick_up or self.start_works
        self.shd_up = self.shd_up or self.start_works  # its service manager attaches shd
        return ok("volume start: data: success") if self.start_works else Completed(1, "", "no")

    @property
    def armed(self) -> bool:
        return bool(self.switches)

    def arm(self, cmd: str) -> Completed:
        self.switches.add(cmd.split("echo $$ > ")[1].split(";")[0])
        self.switch_bound = float(cmd.split("sleep ")[1].split(";")[0])
        if "ip link set sto0 down" in cmd:  # the switch is the fault
            self.link_up, self.armed_when_hit = False, True
        return ok()

    def disarm(self, cmd: str) -> Completed:
        self.switches.discard(cmd.split("if [ -s ")[1].split(" ]")[0])
        return ok()

    def up(self, cmd: str) -> Completed:
        self.link_up = True
        return ok()

    def show(self, cmd: str) -> Completed:
        flags = "BROADCAST,MULTICAST,UP,LOWER_UP" if self.link_up else "BROADCAST,MULTICAST"
        return ok(f"5: sto0@if9: <{flags}> mtu 9000 qdisc noqueue state UP\n")


@pytest.fixture
def server() -> Server:
    return Server()


def _backend(server: Server, **kw: Any) -> HostsBackend:
    heal: list[tuple[str, Answer]] = [(r"volume heal", ok("Launching heal: success"))]
    shells: dict[str, FakeShell] = cluster({"host3": [*heal, *server.rules()],
                                            "host1": heal, "host2": heal})
    be = HostsBackend(small(), cast(dict[str, SshShell], shells),
                      {h: s.target.glusterd_sock for h, s in shells.items()},
                      {h: "sto0" for h in shells}, run_id="t1", **kw)
    be.facts = {h: NodeFacts(UUIDS[h], {}, {}, {}, {}) for h in shells}
    be.background_heal = False
    return be


@pytest.fixture
def backend(server: Server) -> Iterator[HostsBackend]:
    be = _backend(server)
    yield be
    be.destroy()


BRICK = make_fault(at_s=0, kind="brick_crash", target="host3", volume="data", duration_s=5)


def test_brick_crash_with_the_switch_armed_first_and_the_repair_disarms(
        server: Server, backend: HostsBackend) -> None:
    backend.inject(BRICK)
    assert not server.brick_up and server.armed_when_hit is True
    assert server.switch_bound == 15  # the bound plus the switch's grace
    assert backend.active_faults == [BRICK]
    backend.restore(BRICK)
    assert server.brick_up and not server.armed and backend.active_faults == []


def test_brick_crash_refused_when_the_brick_is_already_down(
        server: Server, backend: HostsBackend) -> None:
    server.brick_up = False
    with pytest.raises(LabError, match="not running before the fault"):
        backend.inject(BRICK)
    assert not server.armed and server.armed_when_hit is None and backend.active_faults == []


def test_failed_kill_leaves_the_brick_up_and_the_switch_armed(backend: HostsBackend) -> None:
    server = Server(kill_works=False)
    be = _backend(server)
    with pytest.raises(LabError, match="kill -KILL failed"):
        be.inject(BRICK)
    # nothing is booked as broken; the switch on the server stays as a safety net
    assert server.brick_up and server.armed and be.active_faults == []
    be.destroy()


def test_nic_loss_is_the_switch_itself(server: Server, backend: HostsBackend) -> None:
    nic = make_fault(at_s=0, kind="nic_loss", target="host3", network="storage",
                     duration_s=30)
    backend.inject(nic)
    assert server.switch_bound == 30.0 and not server.link_up and server.armed_when_hit
    backend.restore(nic)
    assert server.link_up and not server.armed


def test_nic_loss_refused_when_the_link_is_already_down(
        server: Server, backend: HostsBackend) -> None:
    server.link_up = False
    with pytest.raises(LabError, match="not up before the fault"):
        backend.inject(make_fault(at_s=0, kind="nic_loss", target="host3", network="storage"))
    assert not server.armed and backend.active_faults == []


def test_power_commands_run_locally_and_are_never_recorded(server: Server,
                                                           tmp_path: Path) -> None:
    log = tmp_path / "bmc.log"
    be = _backend(server, power_off_cmd=f"echo off {{host}} {{address}} -P hunter2 >> {log}",
                  power_on_cmd=f"echo on {{host}} >> {log}", addresses={"host3": "10.0.0.3"})
    power = make_fault(at_s=0, kind="node_power_loss", target="host3")
    be.inject(power)
    assert log.read_text() == "off host3 10.0.0.3 -P hunter2\n"
    assert "hunter2" not in be.state.path.read_text()
    be.destroy()  # the rollback powers it on
    assert log.read_text().endswith("on host3\n") and be.rollback_failed == []


@pytest.mark.parametrize("start_works", [True, False])
def test_power_repair_waits_for_the_self_heal_daemon_it_had(
        start_works: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server back from a power loss whose glusterd did not attach a volume to its
    glustershd (CI: host3's shd offline for one volume after the power-on): the repair
    waits for glusterd, then runs `volume start VOL force` (its service manager attaches
    it); a daemon that stays offline fails the repair, named."""
    monkeypatch.setattr(hosts, "SHD_ATTACH_S", 0.0)
    monkeypatch.setattr(hosts, "SHD_REMEDY_S", 0.1)
    server = Server(start_works=start_works)
    be = _backend(server, power_off_cmd="true", power_on_cmd="true")
    power = make_fault(at_s=0, kind="node_power_loss", target="host3")
    be.inject(power)
    server.shd_up = False  # the bricks came back, data's self-heal daemon did not
    be.destroy()
    assert server.shd_up is start_works and server.brick_up
    if start_works:
        assert be.rollback_failed == []
    else:
        (why,) = be.rollback_failed
        assert "node_power_loss on host3" in why
        assert "self-heal daemon of data stayed offline" in why


def test_destroy_repairs_every_fault_still_on_and_reports_what_failed() -> None:
    server = Server(start_works=False)
    be = _backend(server)
    nic = make_fault(at_s=0, kind="nic_loss", target="host3", network="storage",
                     duration_s=2)
    be.inject(BRICK)
    be.inject(nic)
    be.destroy()
    assert server.link_up  # the other repair still ran
    assert len(be.rollback_failed) == 1 and "brick_crash on host3" in be.rollback_failed[0]
    # the brick's switch stays armed (it will start the brick itself), the link's is gone
    assert len(server.switches) == 1 and "switch-host3-0" in next(iter(server.switches))


def test_ctrl_c_during_the_rollback_is_held_until_it_is_done(server: Server) -> None:
    be = _backend(server)
    be.inject(BRICK)
    repaired: list[bool] = []
    real = be.faults.restore  # type: ignore[union-attr]

    def restore(f: Any) -> float:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of restoring
        t = real(f)
        repaired.append(server.brick_up)
        return t

    be.faults.restore = restore  # type: ignore[union-attr,method-assign]
    with pytest.raises(KeyboardInterrupt):
        be.destroy()
    assert repaired == [True] and not server.armed
    assert not be.state.path.parent.exists()  # its local files went before the Ctrl-C


def test_restore_rows_say_what_is_not_back() -> None:
    before = HostHealth(frozenset({"data:/b"}), True, 2)
    assert restore_rows("host2", before, before, [])[0].verdict == "pass"
    before = HostHealth(frozenset({"data:/b"}), True, 2, frozenset({"data"}),
                        frozenset({"data", "engine"}))
    worse = HostHealth(frozenset(), False, 1, shd_online=frozenset({"data"}))
    (r,) = restore_rows("host2", before, worse, ["bring sto0 up on host2"])
    assert r.verdict == "fail" and r.actual.startswith("NOT RESTORED")
    for gap in ("bricks offline: data:/b", "storage link down", "peers connected 1 < 2",
                "undo failed: bring sto0 up", "not mounted or not answering: data",
                "self-heal daemon offline for: engine"):
        assert gap in r.actual
    (gone,) = restore_rows("host2", before, None, [])
    assert "unreachable" in gone.actual and gone.verdict == "fail"
