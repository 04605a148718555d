"""Commands in a netns node, and the lab's own PIDs.

Commands run through :class:`hcisim.lab.node.NsenterShell` (``nsenter --net`` only: files and
mounts stay shared with the harness, which is what lets the checker read every brick
directly). PIDs are only ever taken from the lab's own pid files and checked against the
lab's namespaces before a signal is sent, so a recycled PID of someone else is never hit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import psutil

from hcisim.lab.errors import LabError
from hcisim.lab.node import NETNS_DIR, Completed, NsenterShell, ns_argv
from hcisim.lab.wait import wait_until


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (made if missing): one lab at a time allocates
    names and subnets, one build at a time fills an image cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run(step: str, argv: Sequence[str], netns: str | None = None, timeout: float = 60.0,
        check: bool = True) -> Completed:
    """Run a command to completion in ``netns``; on failure raise LabError naming ``step``."""
    res = NsenterShell(netns).run(argv, timeout)
    if check and not res.ok:
        raise LabError(step, f"{' '.join(argv)}: {res.tail}")
    return res


def spawn(argv: Sequence[str], netns: str | None, log: Path,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a long-running process in ``netns``, its output appended to ``log``.

    ``start_new_session`` keeps a Ctrl-C of the harness from reaching it directly: the
    harness decides the order in which things stop.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(ns_argv(netns, argv), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, **(env or {})})


def netns_inode(netns: str) -> int | None:
    try:
        return (NETNS_DIR / netns).stat().st_ino
    except OSError:
        return None


def pid_netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (a zombie holds nothing but its PID)."""
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks (/proc/PID/stat field 22): with the PID, who
    it is (a PID alone may have been reused); None if there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


def owned_pids(pid_files: Iterable[Path], netns_inodes: set[int], lab_dir: Path) -> list[int]:
    """Live PIDs from ``pid_files`` that really are the lab's.

    A PID counts only if its process lives in one of the lab's network namespaces or its
    command line names the lab's directory: a pid file left by a dead daemon may point at
    a PID the kernel has since given to an unrelated process.
    """
    found: list[int] = []
    for pf in pid_files:
        pid = read_pid(pf)
        if pid is None or pid <= 1 or pid == os.getpid() or not alive(pid):
            continue
        ino = pid_netns_inode(pid)
        if (ino is not None and ino in netns_inodes) or any(
                str(lab_dir) in a for a in cmdline(pid)):
            found.append(pid)
    return sorted(set(found))


def signal_pids(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_and_wait(pids: Sequence[int], timeout: float = 10.0) -> list[int]:
    """SIGKILL ``pids``; return those still alive after ``timeout``.

    SIGKILL alone: it ends a stopped process too. No SIGCONT first: a process the harness
    froze so that it dies without seeing the others go (a power-lost host's qemu) would run
    again between the two signals; a frozen guest saw its FUSE client die and paused 12 ms
    before its SIGKILL (CI of stop 26, lab-guests-node-loss).
    """
    signal_pids(pids, signal.SIGKILL)
    wait_until(lambda: not any(alive(p) for p in pids), timeout, 0.02)
    return [p for p in pids if alive(p)]
