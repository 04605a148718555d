"""The safety of destructive faults: permission, bounds, the dead man's switch (the
rollbacks of the hosts backend: tests/accept/test_faults.py)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hcisim.accept.safety import FaultPolicy
from hcisim.lab.hosts import deadman_command, disarm_command, hold_interrupts
from hcisim.scenario import Fault, make_fault

HOSTS = frozenset({"host1", "host2", "host3"})


def _fault(kind: str = "brick_crash", **kw: object) -> Fault:
    return make_fault(at_s=0, kind=kind, target="host2", **kw)


def test_no_destructive_fault_without_permission() -> None:
    policy = FaultPolicy(allow_destructive=False, hosts=HOSTS)
    for kind in ("brick_crash", "nic_loss", "node_power_loss", "node_hang"):
        why = policy.refusal(_fault(kind))
        assert why is not None and "--allow-destructive" in why and "host2" in why


def test_only_named_hosts_and_supported_kinds() -> None:
    policy = FaultPolicy(allow_destructive=True, hosts=frozenset({"host1"}))
    assert "not one of the hosts named" in (policy.refusal(_fault()) or "")
    policy = FaultPolicy(allow_destructive=True, hosts=HOSTS)
    assert policy.refusal(_fault("brick_crash")) is None
    assert policy.refusal(_fault("nic_loss")) is None
    assert "not supported" in (policy.refusal(_fault("node_hang")) or "")
    assert "storage NIC" in (policy.refusal(_fault("nic_loss", network="management")) or "")
    assert "--power-cmd" in (policy.refusal(_fault("node_power_loss")) or "")
    with_power = FaultPolicy(True, HOSTS, power_off_cmd="off {host}", power_on_cmd="on {host}")
    assert with_power.refusal(_fault("node_power_loss")) is None


@settings(max_examples=50)
@given(st.one_of(st.none(), st.floats(min_value=0.1, max_value=1e6)),
       st.floats(min_value=1, max_value=3600))
def test_every_fault_has_a_hard_bound(duration: float | None, cap: float) -> None:
    policy = FaultPolicy(True, HOSTS, max_fault_s=cap)
    bound = policy.bound_s(_fault(duration_s=duration))
    assert 0 < bound <= cap
    if duration is not None and duration <= cap:
        assert bound == duration


def _sh(cmd: str) -> int:
    return subprocess.run(["sh", "-c", cmd], timeout=30, check=False).returncode


def test_switch_undoes_the_fault_after_the_bound_with_nobody_watching(tmp_path: Path) -> None:
    """The switch outlives the shell that armed it (as when the SSH session dies)."""
    fault, pidfile = tmp_path / "fault-on", str(tmp_path / "switch.pid")
    cmd = deadman_command(pidfile, f"touch {fault}", f"rm -f {fault}", bound_s=1)
    assert _sh(cmd) == 0  # the arming shell has exited here
    assert fault.exists() and Path(pidfile).exists()
    deadline = time.time() + 10
    # the switch removes its pid file just after the undo: wait for both (a loaded machine)
    while (fault.exists() or Path(pidfile).exists()) and time.time() < deadline:
        time.sleep(0.1)
    assert not fault.exists(), "the switch did not undo the fault"
    assert not Path(pidfile).exists()


def test_disarmed_switch_does_not_fire(tmp_path: Path) -> None:
    fault, pidfile = tmp_path / "fault-on", str(tmp_path / "switch.pid")
    undone = tmp_path / "undo-ran"
    assert _sh(deadman_command(pidfile, f"touch {fault}", f"touch {undone}", 2)) == 0
    pid = int(Path(pidfile).read_text())
    assert _sh(disarm_command(pidfile)) == 0
    time.sleep(2.5)
    assert not undone.exists()
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert _sh(disarm_command(pidfile)) == 0  # disarming twice is harmless


def test_hold_interrupts_without_signal_passes_through() -> None:
    with hold_interrupts() as held:
        pass
    assert held == []
