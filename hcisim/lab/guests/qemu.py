"""One qemu guest in one host's network namespace, its disk on that host's FUSE mount.

Why qemu + QMP and not libvirt: a netns host is a network namespace, not a machine. One
libvirtd serves the whole machine from the harness's namespace, so every domain's
migration stream and NBD/TCP traffic would leave from there; per-host isolation would need
a libvirtd per namespace, each with its own state, sockets and pid file. A qemu started
with ``nsenter --net`` lives in its host's namespace by construction: its migration
listens on and connects from that host's addresses only, its process dies with the host's
power loss, and the harness talks to it over a unix socket (files are shared across
network namespaces). qemu's own options are exactly what oVirt's libvirt XML turns into.

Disk settings are oVirt's (vdsm's domain XML for a file disk on Gluster FUSE):
``cache=none`` (O_DIRECT on the mount), ``aio=threads``, ``werror=stop,rerror=stop``: a
write that fails with EIO/ENOTCONN pauses the VM instead of reaching the guest, and the
failed request is retried when the VM is continued.

KVM where :func:`kvm_usable` finds usable hardware virtualisation, software emulation
(TCG) otherwise (here: why not KVM is in its docstring).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from hcisim.lab.errors import LabError
from hcisim.lab.guests.agentlink import AgentLink
from hcisim.lab.guests.image import GuestImage
from hcisim.lab.guests.qmp import QmpEvent, QmpSession
from hcisim.lab.history_writer import BOOT_CHARS, BOOT_MAX, new_boot_id, record
from hcisim.lab.process import alive, kill_and_wait, read_pid, spawn
from hcisim.lab.wait import wait_until

QEMU = "qemu-system-x86_64"
SECTOR = 512
QEMU_RAM_ALIGN_KIB = 8  # qemu rounds -m up to 8 KiB (machine.c)
DIRTY_WORD_KIB = 256  # one 64-bit word of qemu's dirty bitmap: 64 pages of 4 KiB


def preflight() -> None:
    """Root and qemu, named with their packages, before anything starts."""
    if os.geteuid() != 0:
        raise LabError("check guest prerequisites", "guests need root (network namespaces)")
    missing = [f"{cmd} (apt-get install {pkg})" for cmd, pkg in
               ((QEMU, "qemu-system-x86"), ("nsenter", "util-linux")) if shutil.which(cmd) is None]
    if missing:
        raise LabError("check guest prerequisites", "missing: " + ", ".join(missing))


def kvm_usable() -> tuple[bool, str]:
    """Whether to use KVM, and why (not). No boot is tried: a PVM /dev/kvm hangs it.

    On this machine /dev/kvm exists but belongs to the ``kvm_pvm`` module (a paravirtual
    KVM for guests without hardware virtualisation) and the CPU shows neither ``vmx`` nor
    ``svm``: qemu ``-accel kvm`` hangs at "Booting from ROM" or aborts on an MSR
    (lab-notes.md). KVM is used only with a hardware flag and no PVM module.
    """
    if not Path("/dev/kvm").exists():
        return False, "no /dev/kvm"
    if Path("/sys/module/kvm_pvm").exists():
        return False, "/dev/kvm is served by kvm_pvm (paravirtual KVM): qemu hangs on it"
    flags = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if not flags & {"vmx", "svm"}:
        return False, "the CPU has no vmx/svm flag"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not accessible"
    return True, "hardware virtualisation"


@dataclass(frozen=True)
class GuestSpec:
    """What one guest is: its name, where it runs, its disk, its agent's parameters."""

    name: str
    netns: str  # the host's network namespace (``/run/netns/<netns>``)
    host: str
    disk: Path  # the image file on the host's FUSE mount
    run_dir: Path  # sockets, console log, history log
    pidfile: Path
    mem_mib: float = 160.0
    vcpus: int = 1
    record_size: int = 64
    interval_ms: int = 20
    heartbeat_ms: int = 100
    dirty_mib: int = 0  # the memory writer's working set
    dirty_pages_s: int = 0
    aio: str = "threads"
    incoming: str | None = None  # ``tcp:ADDR:PORT``: a migration destination
    extra_args: tuple[str, ...] = field(default=())
    accel: str = "tcg"  # kvm: a guest inside a libvirt node with nested KVM
    disk_bytes: int | None = None  # the disk's size where the harness cannot stat it
    boot: str = ""  # this boot's id, in every record (Guest.launch gives each boot its own)
    # qemu's image locking (OFD locks, which Gluster's FUSE client holds volume-wide: a
    # second qemu on the image through another host's mount is refused, "Is another
    # process using the image"); off only to run two copies on purpose (a checker test)
    image_locking: bool = True

    def __post_init__(self) -> None:
        if not 64 <= self.mem_mib <= 4096:
            raise LabError(f"configure guest {self.name}",
                           f"mem_mib {self.mem_mib} not in 64..4096")
        if SECTOR % self.record_size or self.record_size < 32:
            raise LabError(f"configure guest {self.name}",
                           f"record_size {self.record_size} must divide {SECTOR} and be >= 32")
        if self.aio not in ("threads", "native"):
            raise LabError(f"configure guest {self.name}", f"aio {self.aio!r}: threads|native")
        if len(self.boot) > BOOT_MAX or not set(self.boot) <= BOOT_CHARS:
            raise LabError(f"configure guest {self.name}",
                           f"boot id {self.boot!r}: at most {BOOT_MAX} characters of [0-9a-z]")
        try:
            record(self.name, 0, self.record_size, self.boot or new_boot_id())
        except ValueError as exc:
            raise LabError(f"configure guest {self.name}", str(exc)) from None

    @property
    def qmp_sock(self) -> Path:
        return self.run_dir / "qmp.sock"

    @property
    def launch_wait_s(self) -> float:
        """How long qemu may take to open its QMP socket (a wrapper that acquires a lease
        first, hcisim.lab.plane.leased, waits longer)."""
        return 15.0

    @property
    def agent_sock(self) -> Path:
        return self.run_dir / "agent.sock"

    @property
    def console_log(self) -> Path:
        return self.run_dir / "console.log"

    @property
    def history_log(self) -> Path:
        """This boot's history (earlier boots' are kept as ``history.<boot>.log``)."""
        return self.run_dir / "history.log"

    @property
    def qemu_log(self) -> Path:
        return self.run_dir / "qemu.log"

    def per_file(self) -> int:
        """Records that fit the disk: the history's segment 0 is the whole disk."""
        size = self.disk_bytes if self.disk_bytes is not None else self.disk.stat().st_size
        return size // self.record_size

    def cmdline(self) -> str:
        params = {"name": self.name, "size": self.record_size, "per_file": self.per_file(),
                  "interval_ms": self.interval_ms, "hb_ms": self.heartbeat_ms,
                  "mem_mib": self.dirty_mib, "dirty_pages_s": self.dirty_pages_s,
                  **({"boot": self.boot} if self.boot else {})}
        return "console=ttyS0 panic=-1 quiet " + " ".join(
            f"hcisim.{k}={v}" for k, v in params.items())

    def ram_kib(self, accel: str = "tcg") -> int:
        """RAM for qemu's ``-m``: under TCG off qemu 7.2's dirty-bitmap grid (tcg_ram_kib)."""
        return tcg_ram_kib(self.mem_mib) if accel == "tcg" else int(self.mem_mib * 1024)

    def argv(self, image: GuestImage, accel: str = "tcg") -> list[str]:
        drive = (f"file={self.disk},format=raw,if=none,id=disk0,cache=none,aio={self.aio},"
                 "werror=stop,rerror=stop" + ("" if self.image_locking else ",file.locking=off"))
        argv = [
            QEMU, "-name", f"{self.name},debug-threads=on", "-machine", f"q35,accel={accel}",
            "-m", f"{self.ram_kib(accel)}k", "-smp", str(self.vcpus),
            "-nodefaults", "-nographic", "-no-reboot",
            "-kernel", str(image.kernel), "-initrd", str(image.initrd),
            "-append", self.cmdline(),
            "-serial", f"file:{self.console_log}",
            "-drive", drive, "-device", "virtio-blk-pci,drive=disk0,id=vda",
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", f"socket,id=agent,path={self.agent_sock},server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=org.hcisim.agent",
            "-qmp", f"unix:{self.qmp_sock},server=on,wait=off",
            "-pidfile", str(self.pidfile),
            *self.extra_args,
        ]
        # a new guest starts paused (-S: QMP and the agent connect before it runs); a
        # migration destination runs as soon as the stream is in (no -S: no extra pause)
        argv += ["-incoming", self.incoming] if self.incoming else ["-S"]
        return argv


def keep_history(log: Path) -> None:
    """Move an earlier boot's history out of the way as ``history.<boot>.log`` (named by its
    first line, ``B <boot> <t>``), so the checker can still read every boot of the VM; a
    log without a boot line (an agent before boot ids) is dropped as before."""
    try:
        with log.open() as f:
            first = f.readline().split()
    except FileNotFoundError:
        return
    if len(first) == 3 and first[0] == "B":
        log.replace(log.with_name(f"history.{first[1]}.log"))
    else:
        log.unlink(missing_ok=True)


def tcg_ram_kib(mem_mib: float) -> int:
    """The guest RAM given to a TCG qemu, in KiB: never a whole number of 256 KiB.

    qemu before 9.0 (Debian 12 ships 7.2) loses guest memory writes in live migration
    under TCG: ``cpu_physical_memory_sync_dirty_bitmap`` (include/exec/ram_addr.h) takes a
    fast path when the RAM block's start and length are whole words of the dirty bitmap
    (64 pages, 256 KiB); it clears the migration bits a word at a time but does not reset
    the vCPUs' TLB entries, so a store through a TLB entry that was already marked dirty
    never sets the bit again and that page is not re-sent. The destination then runs with
    the page as it was one round earlier. Fixed upstream by "physmem: Fix migration dirty
    bitmap coherency with TCG memory access" (qemu commit 03bfc2188f, 9.0); not in Debian's
    7.2.22. Seen here as acknowledged disk records lost after a migration without a fault
    (the agent's sector buffer went back in time on the destination, which then wrote the
    stale sector: 2-5 records in 5 of 9 runs at 160 MiB, none in 10 runs with this) and
    as destination panics (lab-notes.md's "256 or 512 MiB" trap: any multiple of 256 KiB
    is hit). A RAM size off
    that grid makes qemu take the per-page slow path, which resets the TLB for every page
    it clears: 8 KiB less (qemu's own rounding) is enough. KVM tracks dirty pages in the
    kernel and needs none of this.
    """
    kib = int(mem_mib * 1024) // QEMU_RAM_ALIGN_KIB * QEMU_RAM_ALIGN_KIB
    return kib - QEMU_RAM_ALIGN_KIB if kib % DIRTY_WORD_KIB == 0 else kib


def make_disk(path: Path, size_bytes: int) -> None:
    """A raw disk image of ``size_bytes`` (a multiple of 4 KiB), zeroed, on the mount."""
    if size_bytes <= 0 or size_bytes % 4096:
        raise LabError(f"create disk {path}", f"size {size_bytes} is not a positive multiple "
                       "of 4096")
    with path.open("wb") as f:
        os.posix_fallocate(f.fileno(), 0, size_bytes)


class Guest:
    """A running qemu: start (paused, -S), connect QMP and the agent, continue; stop.

    A context manager: leaving it kills the qemu (from its own pid file, only if that PID
    still runs this guest) whatever happened.
    """

    def __init__(self, spec: GuestSpec, image: GuestImage,
                 on_event: Callable[[QmpEvent], None] | None = None) -> None:
        self.spec = spec
        self.image = image
        self.proc: subprocess.Popen[bytes] | None = None
        self.qmp = QmpSession(spec.name, on_event)
        self.agent = AgentLink(spec.agent_sock, spec.history_log, spec.boot)
        self.t_start: float | None = None  # epoch time of the first ``cont``
        self.exit_time: float | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def launch(self) -> None:
        """Start qemu paused in the host's namespace and connect QMP (and the agent); on any
        failure (Ctrl-C too) stop what was started before raising: no half-started guest."""
        try:
            self._launch()
        except BaseException:
            self.stop()
            raise

    def _launch(self) -> None:
        s = self.spec
        s.run_dir.mkdir(parents=True, exist_ok=True)
        s.pidfile.parent.mkdir(parents=True, exist_ok=True)
        for sock in (s.qmp_sock, s.agent_sock):
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
        if s.incoming is None:  # a new boot: its own id, a new history (seq 0 again)
            keep_history(s.history_log)
            s = self.spec = dataclasses.replace(s, boot=new_boot_id())
            self.agent.boot = s.boot
        self.proc = self._spawn()
        proc = self.proc  # the socket appears once qemu runs (a lease wrapper first waits)
        wait_until(lambda: s.qmp_sock.exists() or proc.poll() is not None, s.launch_wait_s)
        if proc.poll() is not None:
            raise LabError(f"start guest {s.name}", self._why_dead())
        try:
            self.qmp.connect(s.qmp_sock)
        except LabError:
            raise LabError(f"start guest {s.name}", self._why_dead()) from None
        self.agent.connect()  # a destination too: the guest's lines go on after switchover

    def _spawn(self) -> subprocess.Popen[bytes]:
        """Start qemu in the host's namespace (a node VM's guest: over its SSH instead)."""
        s = self.spec
        proc = spawn(s.argv(self.image, s.accel), s.netns, s.qemu_log)
        # qemu writes -pidfile itself; write it now too, so a harness killed in the next
        # millisecond still leaves the PID for `lab down` (nsenter execs: same PID)
        s.pidfile.write_text(f"{proc.pid}\n")
        return proc

    def boot(self, timeout: float = 120.0) -> float:
        """Continue the CPU and wait for the agent's ready line; return the boot time (s)."""
        self.t_start = time.time()
        self.qmp.execute("cont")
        if not self.agent.wait_ready(timeout):
            raise LabError(f"boot guest {self.spec.name}",
                           f"the agent was not ready within {timeout:.0f} s; "
                           f"{self._why_dead()}")
        assert self.agent.ready_at is not None
        return self.agent.ready_at - self.t_start

    def _why_dead(self) -> str:
        code = self.proc.poll() if self.proc is not None else None
        tail = ""
        for log in (self.spec.qemu_log, self.spec.console_log):
            with contextlib.suppress(OSError):
                lines = log.read_text(errors="replace").strip().splitlines()
                if lines:
                    tail += f"; {log.name}: {lines[-1][-200:]}"
        state = f"qemu exited with {code}" if code is not None else "qemu runs"
        return state + tail

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> str:
        """qemu's run state: running, paused, io-error, postmigrate, inmigrate..."""
        return str(self.qmp.execute("query-status")["status"])

    def add_event(self, ev: QmpEvent) -> None:
        """Record a harness-side event (process exit, a kill by policy) among qemu's own."""
        self.qmp.record(ev)

    def wait_exit(self, timeout: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        if self.exit_time is None:
            self.exit_time = time.time()
            self.add_event(QmpEvent(self.exit_time, "PROCESS_EXIT",
                                    {"returncode": self.proc.returncode}))
        return True

    def freeze(self) -> None:
        """SIGSTOP the qemu: it dies with its host, so it must not see the host's storage go
        first (a power cut kills the FUSE client before the qemu: a running qemu got ENOTCONN
        and paused 16 ms before its SIGKILL, CI run of lab-guests-node-loss). It stays frozen
        until its SIGKILL: :func:`hcisim.lab.process.kill_and_wait` sends no SIGCONT."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze` (the power cut it was frozen for failed)."""
        self._signal(signal.SIGCONT)

    def _signal(self, sig: signal.Signals) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL the qemu (a host losing power); its state becomes down."""
        self._signal(signal.SIGKILL)
        self.wait_exit(10)

    def stop(self) -> None:
        """Quit qemu (QMP ``quit``, then SIGKILL), close the links; safe twice."""
        if self.running():
            with contextlib.suppress(LabError):
                self.qmp.execute("quit", timeout=5)
            if not self.wait_exit(5):
                self.kill()
        elif self.proc is not None:
            self.wait_exit(1)
        self.qmp.close()
        self.agent.stop()
        self.spec.pidfile.unlink(missing_ok=True)


def guest_pids(pidfiles: list[Path]) -> list[int]:
    """Live qemu PIDs from these pid files whose command line still names the pid file."""
    out = []
    for pf in pidfiles:
        pid = read_pid(pf)
        if pid is None or pid <= 1 or not alive(pid):
            continue
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(pf).encode() in args:
            out.append(pid)
    return out


def reclaim_guests(lab_dir: Path) -> list[int]:
    """Kill every guest qemu of the lab at ``lab_dir`` (after a SIGKILLed harness).

    Pid files live in ``<lab>/h/<host>/pids/guest-<vm>.pid``; a PID is killed only if its
    command line names that pid file (qemu got it as ``-pidfile``), so a recycled PID is
    never hit. Returns the PIDs still alive afterwards (normally none).
    """
    pidfiles = sorted(lab_dir.glob("h/*/pids/guest-*.pid"))
    left = kill_and_wait(guest_pids(pidfiles))
    for pf in pidfiles:
        if not guest_pids([pf]):
            pf.unlink(missing_ok=True)
    return left
