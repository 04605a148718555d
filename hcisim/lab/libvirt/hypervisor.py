"""The hypervisor side: a libvirt daemon to talk to, and which domain type it can run.

This machine has no systemd, so when no libvirtd answers we start ``virtlogd -d`` and
``libvirtd -d`` ourselves, with pid files under /run/hcisim/libvirt; only daemons with such a
pid file are ever stopped, and only when no hcisim lab is left. A libvirtd that was already
running is used and never touched.

KVM: /dev/kvm existing proves nothing (here it belongs to a PVM host module and qemu with
``-accel kvm`` hangs at "Booting from ROM"). Two probes, each run under a timeout:
- a 512-byte boot sector that writes to qemu's isa-debug-exit port (qemu exits with status
  3): proves real-mode guest code runs. Measured here: it passes under KVM too (in 6 s), so
  it is not enough on its own;
- the node image's kernel, booted with no root disk, must reach its "Kernel panic" line:
  proves long mode, MSRs and the kernel's own probing work. Here: 8.5 s under TCG, hangs
  under KVM. The verdict is cached per kernel and machine boot (/run), as it costs seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DAEMON_DIR = Path("/run/hcisim/libvirt")
LIBVIRT_SOCK = Path("/run/libvirt/libvirt-sock")
VIRTLOGD_SOCK = Path("/run/libvirt/virtlogd-sock")
DNSMASQ_DIR = Path("/var/lib/libvirt/dnsmasq")
PROBE_TIMEOUT_S = 10.0
KERNEL_PROBE_TIMEOUT_S = 30.0
DEBUG_EXIT_PORT = 0xF4
# mov al, 1 ; out 0xf4, al ; hlt ; jmp $-1 -- qemu exits with (1 << 1) | 1 = 3
_PROBE_CODE = bytes([0xB0, 0x01, 0xE6, DEBUG_EXIT_PORT, 0xF4, 0xEB, 0xFD])
PROBE_EXIT_OK = 3


class HypervisorError(RuntimeError):
    """No usable libvirt or accelerator; the message says what to install or start."""


def is_local(uri: str) -> bool:
    """A URI whose hypervisor is this machine (files and the KVM probe are local)."""
    return "://" not in uri or uri.split("://", 1)[1].startswith("/")


def boot_sector() -> bytes:
    return _PROBE_CODE + bytes(510 - len(_PROBE_CODE)) + b"\x55\xaa"


def probe_argv(qemu: str, accel: str, args: list[str]) -> list[str]:
    """The command line of a short probe run of ``qemu`` (here, or inside a node)."""
    return [qemu, "-accel", accel, "-machine", "pc", "-nodefaults", "-display", "none",
            "-no-reboot", *args]


def kernel_probe_args(kernel: str, console: str) -> list[str]:
    """Boot ``kernel`` with no root disk, its console to the file ``console``."""
    return ["-m", "128", "-serial", f"file:{console}", "-kernel", kernel,
            "-append", "console=ttyS0 panic=-1 root=/dev/hcisim-none loglevel=4"]


def kernel_probe_verdict(accel: str, console_text: str, rc: int | None,
                         took: float) -> tuple[bool, str]:
    """Did the kernel probe reach its "Kernel panic" line (long mode, MSRs, the kernel's
    own probing all worked)? (ok, what was seen)."""
    if "Kernel panic" in console_text:
        return True, f"qemu -accel {accel} booted the kernel to its panic in {took:.1f} s"
    why = "timed out" if rc is None else f"exit {rc}"
    return False, f"qemu -accel {accel}: the kernel did not boot ({why} after {took:.0f} s)"


def _qemu(accel: str, args: list[str], timeout_s: float) -> tuple[int | None, str, float]:
    """(exit status or None on timeout, stderr, seconds) of a short qemu run."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise HypervisorError("qemu-system-x86_64 not installed (apt-get install qemu-system-x86)")
    cmd = probe_argv(qemu, accel, args)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None, "", time.monotonic() - t0
    return proc.returncode, proc.stderr, time.monotonic() - t0


def probe_accel(accel: str, kernel: Path | None = None,
                timeout_s: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """Does ``qemu -accel ACCEL`` run guest code here, and boot ``kernel``? (ok, what was seen)."""
    if accel == "kvm" and not os.path.exists("/dev/kvm"):
        return False, "no /dev/kvm"
    with tempfile.TemporaryDirectory(prefix="hcisim-probe-") as tmp:
        img = Path(tmp) / "boot.img"
        img.write_bytes(boot_sector())
        rc, err, took = _qemu(accel, [
            "-m", "16", "-drive", f"file={img},format=raw,if=ide",
            "-device", f"isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04"], timeout_s)
        if rc != PROBE_EXIT_OK:
            why = "no guest code ran" if rc is None else (err.strip().splitlines() or [""])[-1]
            return False, f"qemu -accel {accel}: boot sector probe failed ({why})"
        seen = f"qemu -accel {accel} ran the boot sector probe in {took:.1f} s"
        if kernel is None:
            return True, seen
        console = Path(tmp) / "console.log"
        rc, err, took = _qemu(accel, kernel_probe_args(str(kernel), str(console)),
                              KERNEL_PROBE_TIMEOUT_S)
        text = console.read_text(errors="replace") if console.exists() else ""
        ok, said = kernel_probe_verdict(accel, text, rc, took)
        return ok, f"{seen}; {said}" if ok else said


def probe_kvm_cached(kernel: Path) -> tuple[bool, str]:
    """probe_accel("kvm", kernel), remembered until the machine reboots."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = "unknown"
    cache = DAEMON_DIR / "kvm-probe.json"
    key = f"{boot_id}:{kernel}"
    try:
        data = json.loads(cache.read_text())
        if data.get("key") == key:
            return bool(data["ok"]), str(data["seen"]) + " (cached)"
    except (OSError, ValueError, KeyError):
        pass
    ok, seen = probe_accel("kvm", kernel)
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"key": key, "ok": ok, "seen": seen}))
    return ok, seen


@dataclass(frozen=True)
class DomainType:
    """The libvirt domain type of the lab's nodes, and why it was chosen (for the report)."""

    name: str  # kvm | qemu
    reason: str


def choose_domain_type(conn: Any, uri: str, kernel: Path, accel: str = "auto") -> DomainType:
    """``kvm`` when the hypervisor really runs KVM guests, else ``qemu`` (TCG emulation)."""
    if accel in ("kvm", "qemu"):
        return DomainType(accel, "asked for (--accel)")
    if accel != "auto":
        raise HypervisorError(f"accel {accel!r}: use auto, kvm or qemu")
    try:
        conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)
    except Exception as exc:  # libvirt.libvirtError: kvm not offered at all
        return DomainType("qemu", f"libvirt offers no kvm domains ({str(exc).splitlines()[0]})")
    if not is_local(uri):
        return DomainType("kvm", f"{uri} offers kvm domains (remote: not probed)")
    ok, seen = probe_kvm_cached(kernel)
    return DomainType("kvm", seen) if ok else DomainType("qemu", f"software emulation: {seen}")


def _open(uri: str) -> Any:
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors come as exceptions
    return libvirt.open(uri)


def _pid_alive(pid_file: Path, binary: str) -> int | None:
    """The PID in ``pid_file`` if that process still runs ``binary`` (no recycled PIDs)."""
    try:
        pid = int(pid_file.read_text().split()[0])
        exe = os.readlink(f"/proc/{pid}/exe")
    except (OSError, ValueError, IndexError):
        return None
    return pid if os.path.basename(exe).startswith(binary) else None


def _answers(sock: Path) -> bool:
    """Whether a daemon listens on the UNIX socket ``sock``. Its existence is not enough: a
    virtlogd that was SIGKILLed, or a machine restored from a snapshot, leaves the file
    behind with nobody listening (seen in CI: every guest start failed with "Failed to
    connect socket to '/run/libvirt/virtlogd-sock': Connection refused")."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2.0)
        try:
            s.connect(str(sock))
        except OSError:
            return False
    return True


def connect(uri: str, start_daemons: bool = True, wait_s: float = 20.0) -> Any:
    """A libvirt connection to ``uri``; starts virtlogd/libvirtd here if none answers."""
    try:
        import libvirt  # noqa: F401
    except ImportError:
        raise HypervisorError(
            "libvirt-python is missing: apt-get install libvirt-dev pkg-config, then "
            "pip install 'hcisim[libvirt]'") from None
    if is_local(uri) and os.geteuid() == 0:
        # libvirt writes each network's MAC list here even with no DHCP; the directory comes
        # with dnsmasq-base, which an isolated lab without DHCP or DNS does not need.
        DNSMASQ_DIR.mkdir(parents=True, exist_ok=True)
    try:
        return _open(uri)
    except Exception as exc:
        if not (start_daemons and is_local(uri)):
            raise HypervisorError(f"cannot connect to {uri}: {exc}") from None
    if os.geteuid() != 0:
        raise HypervisorError(f"no libvirtd answers at {uri}, and starting one needs root")
    DAEMON_DIR.mkdir(parents=True, exist_ok=True)
    for binary, sock in (("virtlogd", VIRTLOGD_SOCK), ("libvirtd", LIBVIRT_SOCK)):
        pid_file = DAEMON_DIR / f"{binary}.pid"
        if binary == "virtlogd" and _answers(sock):
            continue  # someone's virtlogd already serves
        if _pid_alive(pid_file, binary):
            continue
        path = shutil.which(binary) or f"/usr/sbin/{binary}"
        if not os.path.exists(path):
            raise HypervisorError(f"{binary} not installed (apt-get install libvirt-daemon-system)")
        subprocess.run([path, "-d", "-p", str(pid_file)], check=True, capture_output=True)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return _open(uri)
        except Exception as exc:
            if time.monotonic() > deadline:
                raise HypervisorError(
                    f"started libvirtd, but {uri} does not answer: {exc}") from None
            time.sleep(0.3)


def started_daemons() -> dict[str, int]:
    """Daemons hcisim started (binary -> PID) that still run."""
    out = {}
    for binary in ("libvirtd", "virtlogd"):
        pid = _pid_alive(DAEMON_DIR / f"{binary}.pid", binary)
        if pid is not None:
            out[binary] = pid
    return out


def stop_started_daemons(wait_s: float = 10.0) -> list[str]:
    """SIGTERM the libvirtd/virtlogd hcisim started (from our pid files only)."""
    stopped = []
    for binary, pid in started_daemons().items():
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while _pid_alive(DAEMON_DIR / f"{binary}.pid", binary) and time.monotonic() < deadline:
            time.sleep(0.1)
        (DAEMON_DIR / f"{binary}.pid").unlink(missing_ok=True)
        stopped.append(f"{binary} ({pid})")
    return stopped
