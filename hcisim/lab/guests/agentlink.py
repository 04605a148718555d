"""The harness's end of the agent's virtio-serial port: live heartbeat and the write history.

qemu serves the port as a unix socket (``-chardev socket,server=on``); this thread reads
its lines and stamps each with the harness's clock on arrival. The guest's own clock is no
use here: it stops while the VM is paused, which is exactly the stall to be measured. The
acknowledgements are written to a local log in the history writer's format
(:mod:`hcisim.lab.history_writer`), so :func:`hcisim.lab.history.parse_history` and the
checker serve guests and fio VMs alike. A host stamp is later than the guest's event by
the port's latency (well under a millisecond here), never earlier: an ``A`` line received
means the record was durable before that moment.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


@dataclass(frozen=True)
class Heartbeat:
    """One ``H`` line: the guest's view of its own writes at host time ``t``."""

    t: float
    acked: int
    last_latency_s: float
    inflight_s: float  # how long the write in flight has been waiting (0: none)
    dirtied_pages: int


class AgentLink(threading.Thread):
    """Reads the agent's lines until the socket closes (qemu exited) or :meth:`stop`."""

    def __init__(self, sock_path: Path, history_log: Path, boot: str = "") -> None:
        super().__init__(name=f"agent-link {sock_path.parent.name}", daemon=True)
        self.sock_path = sock_path
        self.history_log = history_log
        self.boot = boot  # the id the harness gave this boot (the log's ``B`` line)
        self.boot_reported: str | None = None  # what the agent's ready line says
        self.ready_at: float | None = None
        self.heartbeats: list[Heartbeat] = []
        self.full = False
        self.acked = 0
        # the agent's RAM check: (host time, page, expected count, found count) per hot
        # page that lost a store (a migration that dropped dirty pages)
        self.ram_errors: list[tuple[float, int, int, int]] = []
        self._open: dict[int, float] = {}
        self._sock: socket.socket | None = None
        self._halt = threading.Event()
        self._ready = threading.Event()
        self._lock = threading.Lock()

    def connect(self, timeout: float = 10.0) -> None:
        """Connect to qemu's socket (it exists once qemu started) and start reading."""
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(self.sock_path))
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
                continue
            self._sock = s
            break
        self.start()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def stop(self) -> None:
        self._halt.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def run(self) -> None:
        assert self._sock is not None
        self.history_log.parent.mkdir(parents=True, exist_ok=True)
        with self._sock, self.history_log.open("a", buffering=1) as log:
            log.write(f"B {self.boot or '-'} {time.time():.6f}\n")
            buf = b""
            while not self._halt.is_set():
                try:
                    chunk = self._sock.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                t = time.time()
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    self._line(line.decode(errors="replace").split(), t, log)

    def _line(self, parts: list[str], t: float, log: TextIO) -> None:
        """One agent line at host time ``t`` (see lab/guest/agent.c for the protocol)."""
        if not parts:
            return
        kind, args = parts[0], parts[1:]
        try:
            if kind == "I" and len(args) == 1:
                seq = int(args[0])
                self._open[seq] = t
                log.write(f"I {seq} {t:.6f}\n")
            elif kind == "A" and len(args) == 2:
                seq = int(args[0])
                log.write(f"A {seq} {self._open.pop(seq, t):.6f} {t:.6f}\n")
                with self._lock:
                    self.acked += 1
            elif kind == "E" and len(args) == 2:
                seq = int(args[0])
                log.write(f"E {seq} {self._open.pop(seq, t):.6f} {t:.6f} errno{args[1]}\n")
            elif kind == "H" and len(args) == 4:
                hb = Heartbeat(t, int(args[0]), int(args[1]) / 1e6, int(args[2]) / 1e6,
                               int(args[3]))
                with self._lock:
                    self.heartbeats.append(hb)
            elif kind == "R":
                if len(args) == 4:
                    self.boot_reported = "" if args[3] == "-" else args[3]
                self.ready_at = t
                self._ready.set()
            elif kind == "F":
                self.full = True
            elif kind == "C" and len(args) == 3:
                self.ram_errors.append((t, int(args[0]), int(args[1]), int(args[2])))
        except ValueError:
            return  # a garbled line (the guest was killed mid-write): ignore it

    def heartbeats_since(self, t: float) -> list[Heartbeat]:
        with self._lock:
            return [h for h in self.heartbeats if h.t >= t]


def longest_silence(heartbeats: list[Heartbeat], start: float, end: float) -> float:
    """Longest time in [start, end] without a heartbeat: how long the guest did not run."""
    times = [start, *(h.t for h in heartbeats if start <= h.t <= end), end]
    return max(b - a for a, b in itertools.pairwise(times))


def longest_write_wait(heartbeats: list[Heartbeat], start: float, end: float) -> float:
    """Longest wait of one write as the running guest reported it (its own clock)."""
    return max((h.inflight_s for h in heartbeats if start <= h.t <= end), default=0.0)
