"""``reclaim`` kills what lives in the lab's own namespaces even without a pid file (a
daemon glusterd forks while the lab is torn down writes its pid file too late)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from hcisim.lab.netns.layout import NS_PREFIX
from hcisim.lab.netns.reclaim import netns_pids, reclaim
from hcisim.lab.process import alive

pytestmark = [pytest.mark.lab]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")
def test_a_process_without_pid_file_in_the_labs_namespace_is_reclaimed() -> None:
    name = f"rcl{os.getpid() % 100000}"
    ns = f"{NS_PREFIX}{name}-host1"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "600"])
    try:
        deadline = time.time() + 5
        while not netns_pids([ns]) and time.time() < deadline:
            time.sleep(0.05)
        assert netns_pids([ns]) == [proc.pid]  # exec'd in place: the same pid
        assert netns_pids(["no-such-namespace"]) == []
        left = reclaim(name)
        assert left.empty, left
        proc.wait(timeout=10)
        assert not alive(proc.pid)
        assert not os.path.exists(f"/run/netns/{ns}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
