"""A harness SIGKILLed with the whole management plane up: `hcisim lab down` reclaims it.

A child process runs a small hosted-engine scenario through the lab's own run path
(``hcisim.lab.run.run_lab``, what ``hcisim run --engine lab`` calls: lab, plane, the
hosted engine VM, the HA agents, a leased HA guest, the engine role), writes every pid file
of the lab once the run's clock starts, and is SIGKILLed. The sanlock daemons, the vdsm
and HA agents and the guests outlive it. The HA agents are the ordering hazard: left alive
they restart a dead engine VM by themselves (shown here: the engine's qemu killed, a new
one runs after host_data_wait_s), so a reclaim that read the pid files once and killed
could miss a guest started between its read and its kill. The test then kills the new
engine qemu too and runs the real CLI at once (the agents would restart it ~20 s later,
after `lab down` is done: that race's window is milliseconds wide and the unit test below
forces it). Nothing of the lab may be left, not even a process whose pid file `lab down`
never read (checked by the lab's network namespaces and its directory).
The lab test needs root, the netns lab's packages, sanlock, qemu and gcc; the unit test
of reclaim's rescans needs nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import yaml

from hcisim.lab.netns import reclaim as netns_reclaim
from hcisim.lab.netns.layout import LAB_ROOT, unique_name
from hcisim.lab.netns.reclaim import Leftovers, find_leftovers, lab_netns
from hcisim.lab.plane import sanlock as sl
from hcisim.lab.process import alive, cmdline, netns_inode, pid_netns_inode, read_pid

REPO = Path(__file__).resolve().parents[2]
HCISIM = str(Path(sys.executable).parent / "hcisim")
SCENARIO = REPO / "scenarios" / "lab-ha-engine-power-loss.yaml"
HOSTS = ("host1", "host2", "host3")
PLANE_FILES = [f"h/{h}/pids/{f}" for h in HOSTS
               for f in ("sanlock.pid", "agent.pid", "ha-agent.pid")]
GUEST_FILES = ["h/host3/pids/guest-engine.pid", "h/host1/pids/guest-db1.pid"]


def reclaim_scenario(path: Path) -> None:
    """lab-ha-engine-power-loss cut to the hosted engine (host3) and one HA guest with a
    VM lease (db1 on host1), no fault, a run longer than the test."""
    raw = yaml.safe_load(SCENARIO.read_text())
    raw["name"] = "lab-plane-reclaim"
    raw["duration_s"] = 900
    vms = {v["name"]: v for v in raw["vms"]}
    raw["vms"] = [vms["engine"], {**vms["db1"], "host": "host1", "lease": True}]
    raw["faults"] = []
    raw["claims"] = []
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def names_lab(pid: int, lab_dir: Path) -> bool:
    """The process names the lab's directory in its command line (agents, qemu's pid file,
    gluster's files) or environment (sanlock's run dir)."""
    try:
        p = psutil.Process(pid)
        return any(str(lab_dir) in x for x in [*p.cmdline(), *p.environ().values()])
    except psutil.Error:
        return False


def lab_processes(inodes: set[int], lab_dir: Path) -> list[int]:
    """Every process on the machine in one of the lab's network namespaces or naming its
    directory, whether a pid file names it or not."""
    return [pid for pid in psutil.pids() if pid != os.getpid() and alive(pid)
            and (pid_netns_inode(pid) in inodes or names_lab(pid, lab_dir))]


def wait_for(what: str, ok: Callable[[], bool], timeout: float,
             child: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if child is not None and child.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log else ""
            pytest.fail(f"the harness died before {what}: {tail}")
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.5)


@pytest.mark.lab
@pytest.mark.slow
def test_lab_down_reclaims_the_plane_and_guests_of_a_killed_harness(tmp_path: Path) -> None:
    name = unique_name("plkill")
    lab_dir = LAB_ROOT / name
    sc_file, seen = tmp_path / "sc.yaml", tmp_path / "pids.json"
    reclaim_scenario(sc_file)
    script = textwrap.dedent(f"""
        import json
        from pathlib import Path
        from hcisim.lab.netns.reclaim import pid_files
        from hcisim.lab.run import run_lab
        from hcisim.scenario import load_scenario

        lab, out = Path({str(lab_dir)!r}), Path({str(seen)!r})

        def started(_fraction: float) -> None:  # the run's clock runs: every VM is up
            if not out.exists():
                pids = {{str(p.relative_to(lab)): p.read_text().strip()
                         for p in pid_files(lab)}}
                out.with_suffix(".tmp").write_text(json.dumps(pids))
                out.with_suffix(".tmp").rename(out)

        run_lab(load_scenario(Path({str(sc_file)!r})), name={name!r}, progress=started)
    """)
    log = tmp_path / "harness.log"
    with log.open("wb") as out:
        child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=out,
                                 stderr=subprocess.STDOUT)
    pids: dict[str, int] = {}
    engines: list[int] = []  # engine VMs the HA agents started after the harness died
    inodes: set[int] = set()
    try:
        wait_for("the plane and its guests were up", seen.exists, 400, child, log)
        pids = {f: int(p) for f, p in json.loads(seen.read_text()).items()}
        assert set(PLANE_FILES + GUEST_FILES) <= set(pids), sorted(pids)
        inodes = {i for i in (netns_inode(n) for n in lab_netns(name)) if i is not None}
        # db1's qemu holds its VM lease in host1's sanlock daemon
        host1 = sl.SanlockHost("host1", "", lab_dir / "h" / "host1")
        assert sl.lease_owners(host1).get("db1") == pids["h/host1/pids/guest-db1.pid"]
        child.send_signal(signal.SIGKILL)
        child.wait()
        plane = [pids[f] for f in PLANE_FILES + GUEST_FILES]
        assert [p for p in plane if not alive(p)] == [], "the plane died with its harness"
        # the hazard is real: the HA agents alone start a dead engine VM again
        first = pids[GUEST_FILES[0]]
        os.kill(first, signal.SIGKILL)
        t_kill = time.monotonic()

        def restarted() -> int | None:
            for pf in lab_dir.glob("h/*/pids/guest-engine.pid"):
                pid = read_pid(pf)
                if pid is not None and pid != first and alive(pid):
                    return pid
            return None

        wait_for("the HA agents restart the engine VM", lambda: restarted() is not None, 120)
        second = restarted()
        assert second is not None
        print(f"engine VM started again by the HA agents {time.monotonic() - t_kill:.1f} s "
              "after its qemu was killed")
        engines.append(second)
        # and once more, `lab down` at once: the agents are in EngineDown, about to start it
        os.kill(second, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        t_down = time.monotonic()
        down = subprocess.run([HCISIM, "lab", "down", "--name", name], capture_output=True,
                              text=True, timeout=300, check=False)
        print(f"lab down: exit {down.returncode} in {time.monotonic() - t_down:.1f} s")
    stray = lab_processes(inodes, lab_dir)
    described = [(pid, " ".join(cmdline(pid))) for pid in stray]
    for pid in stray:  # kill only what names the lab (a namespace inode may be reused)
        if names_lab(pid, lab_dir):
            os.kill(pid, signal.SIGKILL)
    assert down.returncode == 0, down.stdout + down.stderr
    assert [p for p in [*pids.values(), *engines] if alive(p)] == []
    assert stray == [], described
    left = find_leftovers(name)
    assert left.empty, left.describe()
    assert not lab_dir.exists()


def test_reclaim_scans_again_after_killing_until_a_scan_finds_nobody(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first scan finds an HA agent; by the time it is killed it has started a guest
    whose pid file the first scan could not see: the next scan finds it and it dies too."""
    nap = [sys.executable, "-c", "import time; time.sleep(60)"]
    agent, guest = subprocess.Popen(nap), subprocess.Popen(nap)
    scans = [[agent.pid], [guest.pid], [], []]
    seen: list[list[int]] = []

    def scan(name: str, root: Path | None = None) -> Leftovers:
        seen.append([p for p in scans[len(seen)] if alive(p)])
        return Leftovers(pids=seen[-1])

    monkeypatch.setattr(netns_reclaim, "find_leftovers", scan)
    try:
        left = netns_reclaim.reclaim("nolab", tmp_path)
        assert left.empty
        assert seen == [[agent.pid], [guest.pid], [], []]  # first, rescan x2, final check
        assert agent.wait(10) == -signal.SIGKILL and guest.wait(10) == -signal.SIGKILL
    finally:
        for p in (agent, guest):
            if p.poll() is None:
                p.kill()
                p.wait()
