"""Running commands inside a node's network namespace, and handling the lab's own PIDs.

Commands enter a namespace with ``nsenter --net`` only (never ``ip netns exec``, which
also makes a private mount namespace: a FUSE mount made there would be invisible to the
harness). Files and mounts therefore stay shared with the harness, which is what lets the
checker read every brick directly.

PIDs are only ever taken from the lab's own pid files and checked against the lab's
namespaces before a signal is sent, so a recycled PID of someone else is never hit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from hcisim.lab.errors import LabError

NETNS_DIR = Path("/run/netns")


def ns_argv(netns: str | None, argv: Sequence[str]) -> list[str]:
    """``argv`` prefixed to run inside network namespace ``netns`` (None: the harness's)."""
    if netns is None:
        return list(argv)
    return ["nsenter", f"--net={NETNS_DIR / netns}", *argv]


def run(step: str, argv: Sequence[str], netns: str | None = None, timeout: float = 60.0,
        check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; on failure raise LabError naming ``step`` and stderr."""
    full = ns_argv(netns, argv)
    try:
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                              input=input_text, check=False)
    except FileNotFoundError:
        raise LabError(step, f"command not found: {full[0]} (is its package installed?)") from None
    except subprocess.TimeoutExpired:
        raise LabError(step, f"{' '.join(argv)} did not finish within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        msg = (proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}")
        raise LabError(step, f"{' '.join(argv)}: {msg.splitlines()[-1] if msg else ''}")
    return proc


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
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


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
    """SIGCONT (a stopped process cannot die cleanly) then SIGKILL; return PIDs still alive."""
    signal_pids(pids, signal.SIGCONT)
    signal_pids(pids, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if alive(p)]
    return left
