"""Tear a netns lab down from what is on disk alone: state file, pid files, /proc/mounts.

Used by ``destroy`` (normal end, exception, Ctrl-C) and by ``hcisim lab down`` after a
harness was SIGKILLed. Order matters: processes first (they hold mounts and loop
devices), then FUSE and brick mounts, loop devices, namespaces, block-I/O cgroups, sockets,
the directory.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from hcisim.lab.netns.bricks import detach, loops_of, mounted_under, remove_tree, unmount
from hcisim.lab.netns.impose import lab_cgroups, remove_cgroups
from hcisim.lab.netns.layout import LAB_ROOT, NS_PREFIX, lab_dirs, read_state
from hcisim.lab.process import (
    cmdline,
    file_lock,
    kill_and_wait,
    netns_inode,
    owned_pids,
    proc_start,
    run,
)

SOCKET_DIR = "/var/run/gluster/"
KILL_ROUNDS = 5  # kill, scan the pid files again; normally the second scan is empty


@dataclass
class Leftovers:
    """What of a lab still exists on the machine."""

    netns: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    loops: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)  # like for like's block-I/O cgroups

    @property
    def empty(self) -> bool:
        return not (self.netns or self.pids or self.mounts or self.loops or self.sockets
                    or self.cgroups)

    def describe(self) -> str:
        parts = [f"{k}: {', '.join(map(str, v))}" for k, v in vars(self).items() if v]
        return "; ".join(parts) or "nothing"


def lab_netns(name: str) -> list[str]:
    proc = run("list namespaces", ["ip", "netns", "list"], check=False)
    prefix = f"{NS_PREFIX}{name}-"
    return sorted(line.split()[0] for line in proc.stdout.splitlines()
                  if line.split() and line.split()[0].startswith(prefix))


def pid_files(lab_dir: Path) -> list[Path]:
    """Every pid file of the lab, found by fixed patterns: never walk into a mount (a FUSE
    mount of a stopped client would block the walk forever)."""
    found: list[Path] = []
    for host_dir in sorted((lab_dir / "h").glob("*")):
        found += [host_dir / "glusterd.pid", *sorted((host_dir / "pids").glob("*.pid"))]
        run_dir = host_dir / "run"
        if run_dir.is_dir():
            found += sorted(run_dir.rglob("*.pid"))
    return [p for p in found if p.is_file()]


def images(lab_dir: Path) -> list[Path]:
    return sorted((lab_dir / "h").glob("*/*.img"))


def _state_list(state: dict[str, object] | None, key: str) -> list[str]:
    value = (state or {}).get(key)
    return [str(v) for v in value] if isinstance(value, list) else []


def sockets_of(pids: list[int]) -> list[str]:
    """The /var/run/gluster/<hash>.socket paths that bricks and shd were given with -S."""
    out = []
    for pid in pids:
        args = cmdline(pid)
        for i, a in enumerate(args[:-1]):
            if a == "-S" and args[i + 1].startswith(SOCKET_DIR):
                out.append(args[i + 1])
    return out


def find_leftovers(name: str, root: Path | None = None) -> Leftovers:
    lab_dir = (root or LAB_ROOT) / name
    state = read_state(lab_dir)
    names = sorted(set(lab_netns(name)) | {n for n in _state_list(state, "netns")
                                            if Path("/run/netns", n).exists()})
    inodes = {i for i in (netns_inode(n) for n in names) if i is not None}
    pids = owned_pids(pid_files(lab_dir), inodes, lab_dir)
    mounts = [m for m, _ in mounted_under(lab_dir)]
    loops: list[str] = []
    for img in images(lab_dir):
        loops += loops_of(img)
    sockets = [s for s in _state_list(state, "sockets") if os.path.exists(s)]
    cgroups = [str(c) for c in lab_cgroups(name)]
    return Leftovers(names, pids, mounts, sorted(set(loops)), sockets, cgroups)


def netns_pids(names: list[str]) -> list[int]:
    """Processes living in the lab's own network namespaces: only the lab starts processes
    there, so they are its own even without a pid file (a self-heal daemon glusterd forks
    while the lab is torn down writes its pid file too late for the scan: one outlived a
    calibration lab on 2026-11-29 and, its namespace deleted, no later ``lab down`` could
    find it)."""
    me = os.getpid()
    out: set[int] = set()
    for ns in names:
        if not Path("/run/netns", ns).exists():
            continue
        res = run(f"list the processes of {ns}", ["ip", "netns", "pids", ns], check=False)
        out |= {int(x) for x in res.stdout.split() if x.isdigit() and int(x) not in (0, 1, me)}
    return sorted(out)


def orphaned(state: dict[str, object] | None) -> bool:
    """A lab whose harness is gone without tearing it down (SIGKILL, a killed session): its
    owner PID no longer runs that process (PID + start time; a state written before the
    start time was recorded: the PID alone). A lab left up on purpose (``hcisim lab up``
    detaches it) is never an orphan, nor one whose state cannot be read."""
    if state is None or state.get("detached"):
        return False
    pid = state.get("pid")
    if not isinstance(pid, int):
        return False
    started = state.get("pid_start")
    return proc_start(pid) is None or (started is not None and proc_start(pid) != started)


def reclaim_orphans(root: Path | None = None) -> list[str]:
    """Tear down every orphaned lab (:func:`orphaned`) under ``root``: what a killed run
    left is reclaimed by the next lab that is built, not only by a later ``lab down``."""
    done = []
    with file_lock((root or LAB_ROOT) / ".lock"):  # two builds must not reclaim one orphan
        for lab_dir in lab_dirs(root):
            if orphaned(read_state(lab_dir)):
                reclaim(lab_dir.name, root)
                done.append(lab_dir.name)
    return done


def reclaim(name: str, root: Path | None = None, remove_dir: bool = True) -> Leftovers:
    """Remove every trace of lab ``name``; return what could not be removed (normally none)."""
    lab_dir = (root or LAB_ROOT) / name
    found = find_leftovers(name, root)
    sockets = set(found.sockets) | set(sockets_of(found.pids))
    # kill, then scan again until a scan finds nobody: a plane agent alive at the last
    # scan (an HA agent) may have started a guest since, its pid file written after it
    pids = sorted(set(found.pids) | set(netns_pids(found.netns)))
    for _ in range(KILL_ROUNDS):
        kill_and_wait(pids)
        pids = sorted(set(find_leftovers(name, root).pids) | set(netns_pids(found.netns)))
        sockets |= set(sockets_of(pids))
        if not pids:
            break
    for point, fstype in mounted_under(lab_dir):
        if fstype.startswith("fuse"):
            run(f"unmount {point}", ["umount", "-l", point], check=False)
    for point, _ in mounted_under(lab_dir):
        unmount(Path(point))
    for dev in found.loops:  # by backing file: a recorded /dev/loopN may be someone else's now
        detach(dev)
    for ns in found.netns:
        run(f"delete namespace {ns}", ["ip", "netns", "del", ns], check=False)
    remove_cgroups(name)  # after the processes: a cgroup with members cannot go
    for sock in sockets:
        if sock.startswith(SOCKET_DIR) and sock.endswith(".socket"):
            with contextlib.suppress(OSError):
                os.unlink(sock)
    left = find_leftovers(name, root)
    left.sockets = [s for s in sockets if os.path.exists(s)]
    if remove_dir and not left.mounts:
        remove_tree(lab_dir)
    return left


def all_lab_names(root: Path | None = None) -> list[str]:
    """Labs with a directory, plus any whose namespaces outlived their directory."""
    names = {d.name for d in lab_dirs(root)}
    proc = run("list namespaces", ["ip", "netns", "list"], check=False)
    for line in proc.stdout.splitlines():
        ns = line.split()[0] if line.split() else ""
        if ns.startswith(NS_PREFIX) and ns.endswith("-sw"):
            names.add(ns[len(NS_PREFIX):-len("-sw")])
    return sorted(names)
