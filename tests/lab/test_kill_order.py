"""kill_and_wait ends a frozen process without letting it run again first.

A power cut freezes the host's guests (SIGSTOP) and then kills everything on the host; a
SIGCONT before the SIGKILL let a frozen qemu see its FUSE client die and pause (CI of stop
26). Needs no root: the processes are this test's own children.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from hcisim.lab.process import alive, kill_and_wait


def test_a_frozen_process_dies_without_being_continued(monkeypatch: pytest.MonkeyPatch) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)"])
    os.kill(child.pid, signal.SIGSTOP)
    time.sleep(0.1)
    sent: list[tuple[int, int]] = []
    real_kill = os.kill

    def record(pid: int, sig: int) -> None:
        sent.append((pid, sig))
        real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", record)
    left = kill_and_wait([child.pid], timeout=5.0)
    monkeypatch.undo()
    assert child.wait(5) == -signal.SIGKILL
    assert left == [] and not alive(child.pid)
    assert sent == [(child.pid, signal.SIGKILL)], sent  # never SIGCONT: it would run again
