"""A real sanlock daemon per lab host, the lockspace and the VM leases on a Gluster volume.

oVirt protects an HA VM that may run on an unreachable host with a VM lease: a sanlock
paxos lease on the storage domain. The qemu holding it is killed by sanlock when its host
can no longer renew its delta lease (8 x io_timeout), and another host can acquire the
lease once the dead host's delta lease is older than sanlock's ``host_dead_seconds``
(8 x io_timeout + watchdog_fire_timeout 60 s: sanlock 3.8 ``timeouts.c``).

Several daemons on one machine (Debian's sanlock 3.8.5): each gets its own run directory
(``SANLOCK_RUN_DIR``: socket and lock file) and runs in unprivileged mode
(``SANLOCK_PRIVILEGED=0``): privileged mode raises RLIMIT_MEMLOCK/RTPRIO to unlimited and
exits with "cannot set the limits for memlock 1" (EPERM) where the process may not raise
its hard limits (``setup_limits`` in sanlock ``main.c``), as in this container. No watchdog
(``-w 0``: there is no wdmd per host; a host that stops renewing is not reset by a
watchdog, sanlock kills the lease holders instead), no mlockall (``-l 0``). Each daemon runs
in its host's network namespace; its leases are files on that host's FUSE mount of the
volume (``ids`` the lockspace, ``xleases`` one 1 MiB slot per VM, as oVirt's storage
domain names them), read and written with O_DIRECT through Gluster.

A guest holds its lease the way ``sanlock client command`` does it: the client registers
with the host's daemon, acquires the lease and then ``execv``\\ s qemu, so the qemu PID is
the lease owner and sanlock kills it when the lease is lost.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hcisim.lab.errors import LabError
from hcisim.lab.process import alive, kill_and_wait, read_pid, spawn
from hcisim.lab.wait import wait_until
from hcisim.placement.ha_rules import (
    WATCHDOG_FIRE_TIMEOUT_S as WATCHDOG_FIRE_TIMEOUT_S,
)
from hcisim.placement.ha_rules import lease_host_dead_s, lease_renewal_fail_s

SANLOCK = "sanlock"
ALIGN = 1 << 20  # 512-byte sectors, 1 MiB per lease (sanlock's default 512/1M)
MAX_NAME = 48  # sanlock's limit for lockspace and resource names
LOCKSPACE = "hcisim"
# the hosted engine's own lockspace and lease (ovirt-hosted-engine-ha keeps its files in the
# engine storage domain's ``ha_agent`` directory: hosted-engine.lockspace, .metadata)
ENGINE_LOCKSPACE = "hosted-engine"
HA_AGENT_DIR = "ha_agent"

# sanlock_rv.h: what an acquire or add_lockspace answers, for error messages
ERRORS = {
    -202: "I/O timeout on the lease storage",
    -243: "the lease owner's host is alive (its delta lease is renewed)",
    -244: "the lease is owned by another host",
    -245: "the lease is held by another process",
    -262: "the host id is in use by another live host",
}


def preflight() -> None:
    if shutil.which(SANLOCK) is None:
        raise LabError("start sanlock", "the sanlock binary is missing: apt-get install sanlock")


# sanlock's timing rules, shared with the model (hcisim.placement.ha_rules)
lease_expiry_s = lease_renewal_fail_s  # the holder's host kills its lease holders
host_dead_s = lease_host_dead_s  # another host may take over a lease of a silent host


def check_name(what: str, name: str) -> None:
    if not name or len(name) > MAX_NAME or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise LabError(f"name the {what}",
                       f"{name!r}: 1..{MAX_NAME} of letters, digits, '.', '_', '-'")


@dataclass(frozen=True)
class SanlockHost:
    """Where one host's daemon keeps its socket, lock file, pid file and log."""

    name: str
    netns: str
    dir: Path  # the host's directory in the lab (``<lab>/h/<host>``)

    @property
    def run_dir(self) -> Path:
        return self.dir / "run" / "sanlock"

    @property
    def sock(self) -> Path:
        return self.run_dir / "sanlock.sock"

    @property
    def pidfile(self) -> Path:
        return self.dir / "pids" / "sanlock.pid"

    @property
    def log(self) -> Path:
        return self.dir / "log" / "sanlock.log"

    def env(self) -> dict[str, str]:
        return {"SANLOCK_RUN_DIR": str(self.run_dir), "SANLOCK_PRIVILEGED": "0"}


@dataclass(frozen=True)
class LeaseStore:
    """The lockspace and the VM leases on one volume; ``vms`` fixes each VM's lease slot."""

    vms: tuple[str, ...]
    io_timeout_s: int = 10
    lockspace: str = LOCKSPACE

    def __post_init__(self) -> None:
        check_name("lockspace", self.lockspace)
        for vm in self.vms:
            check_name("VM lease", vm)
        if not 1 <= self.io_timeout_s <= 60:
            raise LabError("configure sanlock", f"io_timeout {self.io_timeout_s} s not in 1..60")

    def ids(self, mount: Path) -> Path:
        if self.lockspace == ENGINE_LOCKSPACE:
            return mount / HA_AGENT_DIR / "hosted-engine.lockspace"
        return mount / "ids"

    def xleases(self, mount: Path) -> Path:
        if self.lockspace == ENGINE_LOCKSPACE:
            return mount / HA_AGENT_DIR / "hosted-engine.lease"
        return mount / "xleases"

    def offset(self, vm: str) -> int:
        if vm not in self.vms:
            raise LabError(f"find the lease of {vm}", f"no lease slot; slots: {list(self.vms)}")
        return self.vms.index(vm) * ALIGN

    def lockspace_arg(self, mount: Path, host_id: int) -> str:
        return f"{self.lockspace}:{host_id}:{self.ids(mount)}:0"

    def resource_arg(self, mount: Path, vm: str) -> str:
        return f"{self.lockspace}:{vm}:{self.xleases(mount)}:{self.offset(vm)}"


def done_code(out: str) -> int | None:
    """The result code of a sanlock command (``... done <rv>``), None if it printed none."""
    codes = re.findall(r"done (-?\d+)", out)
    return int(codes[-1]) if codes else None


def explain(rv: int) -> str:
    if rv in ERRORS:
        return f"{rv} ({ERRORS[rv]})"
    if -200 < rv < 0:
        return f"{rv} ({os.strerror(-rv)})"
    return str(rv)


def sanlock(step: str, args: Sequence[str], env: dict[str, str] | None = None,
            timeout: float = 120.0) -> str:
    """Run ``sanlock ARGS``; a negative result code is a LabError naming it."""
    try:
        proc = subprocess.run([SANLOCK, *args], env={**os.environ, **(env or {})},
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise LabError(step, f"sanlock {' '.join(args[:2])} did not answer within "
                       f"{timeout:.0f} s") from None
    out = proc.stdout + proc.stderr
    rv = done_code(out)
    if proc.returncode != 0 or (rv is not None and rv < 0):
        detail = explain(rv) if rv is not None else f"exit {proc.returncode}"
        raise LabError(step, f"sanlock {' '.join(args[:2])}: {detail}; {out.strip()[-300:]}")
    return out


def format_store(store: LeaseStore, mount: Path) -> None:
    """Create and initialise the lockspace and every VM lease (``sanlock direct init``).

    Formatted with the hosts' io_timeout (``-o``): each host-id slot records it, and a host
    joining a free slot waits 2 x that recorded value before its first renewal
    (``delta_acquire``'s delta_short_delay in sanlock ``delta_lease.c``). Formatted with the
    default 10 s while the hosts ran with 2 s, a join waited 20 s, longer than the hosts' own
    id_renewal_fail (16 s): the daemon's first lease check could find its lease 21 s old and
    drop the lockspace it had just joined ("check_our_lease failed 21", CI, 1 of 4 runs)."""
    for path, size in ((store.ids(mount), ALIGN), (store.xleases(mount), ALIGN * len(store.vms))):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            os.posix_fallocate(f.fileno(), 0, max(size, ALIGN))
    timeout = ["-o", str(store.io_timeout_s)]
    sanlock("initialise the lockspace",
            ["direct", "init", *timeout, "-s", f"{store.lockspace}:0:{store.ids(mount)}:0"])
    for vm in store.vms:
        sanlock(f"initialise the lease of {vm}",
                ["direct", "init", *timeout, "-r", store.resource_arg(mount, vm)])


def start_daemon(h: SanlockHost) -> subprocess.Popen[bytes]:
    """Start ``h``'s daemon in its namespace and wait for its socket."""
    preflight()
    pid = read_pid(h.pidfile)
    if pid is not None and alive(pid) and _ours(pid, h):
        raise LabError(f"start sanlock on {h.name}", f"a daemon runs already (pid {pid})")
    h.run_dir.mkdir(parents=True, exist_ok=True)
    h.pidfile.parent.mkdir(parents=True, exist_ok=True)
    h.sock.unlink(missing_ok=True)
    proc = spawn([SANLOCK, "daemon", "-D", "-w", "0", "-l", "0", "-U", "root", "-G", "root",
                  "-e", h.name], h.netns, h.log, env=h.env())
    h.pidfile.write_text(f"{proc.pid}\n")
    wait_until(lambda: h.sock.exists() or proc.poll() is not None, 10.0, 0.05)
    if proc.poll() is not None or not h.sock.exists():
        tail = h.log.read_text(errors="replace").strip().splitlines()[-1:] if h.log.exists() \
            else []
        raise LabError(f"start sanlock on {h.name}",
                       f"the daemon exited ({proc.poll()}): {' '.join(tail)}")
    return proc


def add_lockspace(h: SanlockHost, store: LeaseStore, mount: Path, host_id: int) -> None:
    """Join the lockspace as ``host_id`` (blocks until the delta lease is acquired)."""
    sanlock(f"join the lockspace on {h.name}",
            ["client", "add_lockspace", "-s", store.lockspace_arg(mount, host_id),
             "-o", str(store.io_timeout_s)], env=h.env(), timeout=30 + 10 * store.io_timeout_s)


def lockspaces(h: SanlockHost) -> list[str]:
    """The lockspaces ``h``'s daemon holds (``client status`` ``s`` lines)."""
    out = sanlock(f"ask sanlock on {h.name}", ["client", "status"], env=h.env(), timeout=10)
    return [line.split()[1] for line in out.splitlines() if line.startswith("s ")]


def lease_owners(h: SanlockHost) -> dict[str, int]:
    """Resource name -> PID of the process holding it on ``h`` (``client status`` ``r``
    lines: ``r LOCKSPACE:NAME:PATH:OFFSET:LVER p PID``)."""
    out = sanlock(f"ask sanlock on {h.name}", ["client", "status"], env=h.env(), timeout=10)
    owners: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "r" and parts[2] == "p" and parts[3].isdigit():
            owners[parts[1].split(":")[1]] = int(parts[3])
    return owners


def holder_argv(h: SanlockHost, store: LeaseStore, mount: Path, vm: str,
                argv: Sequence[str]) -> list[str]:
    """``argv`` run as the holder of ``vm``'s lease: acquire through ``h``'s daemon, then exec.

    ``env`` and ``sanlock client command`` both exec, so the PID that starts is the PID of
    the program: pid files and the process-ownership checks stay valid.
    """
    exe = shutil.which(argv[0])
    if exe is None:
        raise LabError(f"start {vm} with its lease", f"{argv[0]} is not on PATH")
    env = [f"{k}={v}" for k, v in h.env().items()]
    return ["env", *env, SANLOCK, "client", "command", "-r", store.resource_arg(mount, vm),
            "-c", exe, *argv[1:]]


def _ours(pid: int, h: SanlockHost) -> bool:
    """True if ``pid`` is a sanlock daemon of ``h`` (its environment names ``h``'s run dir)."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"SANLOCK_RUN_DIR={h.run_dir}".encode() in env


def stop_daemon(h: SanlockHost) -> None:
    """Kill ``h``'s daemon (only the PID of its own pid file, if it is that daemon)."""
    pid = read_pid(h.pidfile)
    if pid is not None and alive(pid) and _ours(pid, h):
        kill_and_wait([pid])
    h.pidfile.unlink(missing_ok=True)


def host_dirs(lab_dir: Path) -> Iterable[Path]:
    return sorted(p for p in (lab_dir / "h").glob("*") if p.is_dir())


_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \d+ \[\d+\]: (.*)$")


def log_lines(h: SanlockHost) -> list[tuple[float, str]]:
    """(epoch, message) of every line of ``h``'s daemon log; whole seconds: sanlock logs
    local time to the second."""
    if not h.log.exists():
        return []
    out = []
    for line in h.log.read_text(errors="replace").splitlines():
        m = _LOG_LINE.match(line)
        if m:
            out.append((time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")),
                        m.group(2)))
    return out


def lease_lost_times(h: SanlockHost) -> list[float]:
    """When ``h``'s daemon found its delta lease unrenewed for id_renewal_fail and started
    killing its lease holders (``check_our_lease failed``, once per failure)."""
    return [t for t, msg in log_lines(h) if "check_our_lease failed" in msg]


_ACQUIRED = re.compile(r"^cmd_acquire \d+,\d+,(\d+) result 0 ")


def acquired_times(h: SanlockHost) -> list[tuple[float, int]]:
    """(epoch, PID) of every lease ``h``'s daemon granted (``cmd_acquire ... result 0``):
    the PID is the holder, which execs qemu."""
    return [(t, int(m.group(1))) for t, msg in log_lines(h)
            if (m := _ACQUIRED.match(msg)) is not None]


def reclaim_sanlock(lab_dir: Path) -> list[int]:
    """Kill every sanlock daemon of the lab at ``lab_dir`` (``hcisim lab down``).

    Only PIDs from our pid files whose environment names the host's run dir; returns the
    PIDs still alive afterwards (normally none).
    """
    pids = []
    for d in host_dirs(lab_dir):
        h = SanlockHost(d.name, "", d)
        pid = read_pid(h.pidfile)
        if pid is not None and pid > 1 and alive(pid) and _ours(pid, h):
            pids.append(pid)
    left = kill_and_wait(pids)
    for d in host_dirs(lab_dir):
        (d / "pids" / "sanlock.pid").unlink(missing_ok=True)
    return left
