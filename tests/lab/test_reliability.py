"""The harness itself: nothing left behind after a SIGKILL, a failed bring-up, or two labs.

Debian packages needed (tests/run.sh installs them): glusterfs-server glusterfs-client fio
xfsprogs iproute2 iptables.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hcisim.lab import LabError, run_lab
from hcisim.lab.netns.backend import NetnsBackend, preflight
from hcisim.lab.netns.layout import LAB_ROOT, NS_PREFIX, read_state, unique_name
from hcisim.lab.netns.reclaim import find_leftovers, orphaned, pid_files, reclaim_orphans
from hcisim.lab.netns.state import LabState
from hcisim.lab.process import alive, file_lock, proc_start
from hcisim.scenario import save_scenario
from tests.lab.scenarios import small

REPO = Path(__file__).resolve().parents[2]
HCISIM = [str(Path(sys.executable).parent / "hcisim")]


def _nothing_left(name: str, pids: list[int]) -> None:
    left = find_leftovers(name)
    assert left.empty, left.describe()
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{NS_PREFIX}{name}-" not in netns
    assert [p for p in pids if alive(p)] == []
    lab_dir = str(LAB_ROOT / name)
    mounts = Path("/proc/mounts").read_text()
    assert lab_dir not in mounts
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert lab_dir not in loops
    assert not (LAB_ROOT / name).exists()


def test_preflight_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="needs root"):
        preflight()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which",
                        lambda cmd: None if cmd == "fio" else "/usr/bin/" + cmd)
    with pytest.raises(LabError, match=r"fio \(apt-get install fio\)") as exc:
        preflight()
    assert exc.value.step == "check prerequisites"


@pytest.mark.lab
@pytest.mark.parametrize("by", ["lab down", "the next build"])
def test_sigkilled_harness_is_reclaimed_by_lab_down(tmp_path: Path, by: str) -> None:
    """Start a run in a subprocess, SIGKILL it mid-fault: `hcisim lab down` removes it all,
    and so does the next lab's build on its own (``reclaim_orphans``: the harness that made
    the lab is gone), so a killed session's lab does not outlive it until someone runs
    `down`."""
    name = unique_name("kill")
    sc = small(120, "[{at_s: 2, kind: node_hang, target: host2, duration_s: 100}]")
    file = tmp_path / "sc.yaml"
    save_scenario(sc, file)
    script = textwrap.dedent(f"""
        from hcisim.lab import run_lab
        from hcisim.scenario import load_scenario
        run_lab(load_scenario({str(file)!r}), name={name!r})
    """)
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lab_dir = LAB_ROOT / name
    deadline = time.monotonic() + 120
    try:
        while not (read_state(lab_dir) or {}).get("active_faults"):
            assert child.poll() is None, "the lab run ended before its fault"
            assert time.monotonic() < deadline, "the fault never started"
            time.sleep(0.2)
        pids = [int(p.read_text()) for p in pid_files(lab_dir)]
        assert len(pids) >= 3 + 3 + 3 + 2  # glusterd, brick, shd and mount per host, vm
        # holding the labs' lock, no other build (another xdist worker's) reclaims the
        # orphan between the kill and the check
        with file_lock(LAB_ROOT / ".lock"):
            child.send_signal(signal.SIGKILL)
            child.wait()
            assert [p for p in pids if alive(p)], "daemons outlive a killed harness"
            if by == "lab down":  # left to `down`, as a lab from `hcisim lab up` would be
                LabState(lab_dir / "state.json").set("detached", True)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if by == "the next build":
            reclaim_orphans()  # what a build does first (another worker's build may have)
            assert not lab_dir.exists()
        else:
            down = subprocess.run([*HCISIM, "lab", "down", "--name", name],
                                  capture_output=True, text=True, timeout=120)
            assert down.returncode == 0, down.stderr
    _nothing_left(name, pids)


@pytest.mark.lab
def test_failed_bring_up_says_which_step_and_leaves_nothing() -> None:
    name = unique_name("fail")
    with pytest.raises(LabError) as exc:
        run_lab(small(), name=name, volume_set={"no.such-option": "on"})
    assert exc.value.step == "set options of volume data"
    assert "no.such-option" in exc.value.reason or "option" in exc.value.reason
    _nothing_left(name, [])


@pytest.mark.lab
def test_existing_name_is_refused_without_touching_that_lab() -> None:
    name = unique_name("dup")
    with NetnsBackend(small(), name=name) as first:
        first.build()
        with pytest.raises(LabError, match="exists"):
            NetnsBackend(small(), name=name).build()
        assert os.path.exists(f"/run/netns/{NS_PREFIX}{name}-host1")
    _nothing_left(name, [])


@pytest.mark.lab
def test_two_labs_side_by_side() -> None:
    """Distinct names, namespaces and subnets; a file written in one is not in the other."""
    labs = [NetnsBackend(small(), name=unique_name(f"two{i}")) for i in range(2)]
    errors: list[BaseException] = []

    def up(be: NetnsBackend) -> None:
        try:
            be.build()
            be.deploy()
        except BaseException as exc:  # re-raised below, after both are destroyed
            errors.append(exc)

    try:
        threads = [threading.Thread(target=up, args=(be,)) for be in labs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        a, b = labs[0].lab_, labs[1].lab_
        assert a.name != b.name and a.index != b.index
        assert not set(a.netns_names) & set(b.netns_names)
        assert a.hosts[0].storage_addr != b.hosts[0].storage_addr
        (labs[0].mount_path("host1", "data") / "only-in-a").write_text("a")
        assert (labs[0].mount_path("host2", "data") / "only-in-a").read_text() == "a"
        assert not (labs[1].mount_path("host1", "data") / "only-in-a").exists()
    finally:
        names = [be.name for be in labs]
        for be in labs:
            be.destroy()
    for n in names:
        _nothing_left(n, [])


def test_an_orphan_is_a_lab_whose_harness_is_gone() -> None:
    """Who the next build may reclaim: a lab whose owner PID is gone, or runs another
    process (its start time differs); never a lab left up on purpose (detached), one whose
    owner still runs, or one without a readable state."""
    me = os.getpid()
    mine = proc_start(me)
    dead = 2**22 + 1  # above pid_max's 2^22: no such process
    assert orphaned({"pid": dead})
    assert orphaned({"pid": dead, "pid_start": "123"})
    assert orphaned({"pid": me, "pid_start": "not-" + str(mine)})  # the PID was reused
    assert not orphaned({"pid": me, "pid_start": mine})
    assert not orphaned({"pid": me})  # a state from before the start time was recorded
    assert not orphaned({"pid": dead, "detached": True})  # `hcisim lab up`
    assert not orphaned(None)
    assert not orphaned({"name": "x"})
