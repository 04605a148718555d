"""A harness SIGKILLed with a guest running: `hcisim lab down` kills the qemu too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hcisim.lab.guests.qemu import guest_pids, reclaim_guests
from hcisim.lab.netns.layout import LAB_ROOT, unique_name
from hcisim.lab.process import alive

pytestmark = [pytest.mark.lab, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
HCISIM = str(Path(sys.executable).parent / "hcisim")


def test_lab_down_reclaims_the_guest_of_a_killed_harness(tmp_path: Path) -> None:
    name = unique_name("gkill")
    ready = tmp_path / "ready"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from hcisim.lab.guests.lab import start_guest
        from hcisim.lab.netns.backend import NetnsBackend
        from tests.lab.scenarios import small
        be = NetnsBackend(small(600), name={name!r})
        be.build(); be.deploy()
        g = start_guest(be, "vm1", "host1", "data")
        g.boot()
        Path({str(ready)!r}).write_text(str(g.pid))
        time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pidfile = LAB_ROOT / name / "h" / "host1" / "pids" / "guest-vm1.pid"
    try:
        deadline = time.monotonic() + 240
        while not ready.exists():
            assert child.poll() is None, "the harness died before the guest booted"
            assert time.monotonic() < deadline, "the guest never booted"
            time.sleep(0.5)
        qemu = int(ready.read_text())
        assert guest_pids([pidfile]) == [qemu]
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert alive(qemu), "the guest died with its harness: nothing to reclaim"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        down = subprocess.run([HCISIM, "lab", "down", "--name", name], capture_output=True,
                              text=True, timeout=180, check=False)
    assert down.returncode == 0, down.stderr
    assert not alive(qemu)
    assert not (LAB_ROOT / name).exists()


def test_reclaim_guests_kills_only_pids_whose_command_line_names_their_pid_file(
        tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    piddir = lab / "h" / "host1" / "pids"
    piddir.mkdir(parents=True)
    mine = piddir / "guest-vm1.pid"
    stranger = piddir / "guest-vm2.pid"
    nap = [sys.executable, "-c", "import time; time.sleep(60)"]
    sleeper = subprocess.Popen([*nap, str(mine)])  # names its pid file, as qemu -pidfile does
    other = subprocess.Popen(nap)
    try:
        mine.write_text(f"{sleeper.pid}\n")
        stranger.write_text(f"{other.pid}\n")  # a recycled PID: not a guest of this lab
        deadline = time.monotonic() + 10
        while str(mine) not in " ".join(Path(f"/proc/{sleeper.pid}/cmdline").read_text()
                                        .split("\0")):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert guest_pids([mine, stranger]) == [sleeper.pid]
        assert reclaim_guests(lab) == []
        sleeper.wait(5)
        assert other.poll() is None
        assert not mine.exists() and not stranger.exists()  # stale files go, PIDs stay
    finally:
        for p in (sleeper, other):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
