"""History writer: numbered records on the volume, each fsync'ed before it counts.

Runs as a standalone script (standard library only, started by file path inside a node's
network namespace) beside a VM's fio. It appends record ``seq`` at offset
``(seq % per_file) * size`` of segment file ``STEM.<seq // per_file>`` on the FUSE mount, then
fsync()s; only when fsync returns is the acknowledgement written to the local log
(never on the volume). Segments stay below the shard size, so on a brick each segment is
one plain file the checker can read directly.

Log lines (space separated, times are epoch seconds):
  ``B boot t``                  the attempts that follow belong to boot ``boot`` (one writer
                                process, or one boot of a guest), started at ``t``
  ``I seq t_issue``              an attempt starts (so an attempt that never returns is seen)
  ``A seq t_issue t_ack``       record seq is durable (acknowledged)
  ``E seq t_issue t_err errno`` the attempt failed; the same seq is tried again
A record's content is a pure function of (name, seq, boot), so the checker needs no copy of
it and can tell which boot wrote what it finds on a brick: ``NAME:SEQ:BOOT:....\n`` (SEQ 12
digits, BOOT a short token naming the writer's run, dots up to ``size - 1``, a newline).
A writer restarted on the same disk starts at seq 0 again under a new boot; the checker
(:mod:`hcisim.lab.history`) proves that two boots never wrote at the same time.
``--idle A:B`` (seconds after the writer started; repeatable): no attempt in that window,
as the VM issues no I/O while its load is 0.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import secrets
import signal
import sys
import time

BOOT_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyz")
BOOT_MAX = 16


def new_boot_id() -> str:
    """A fresh boot token: 8 hex digits, random (a counter would need state shared by every
    process that starts a writer or a guest; 2^-32 per pair is no practical collision)."""
    return secrets.token_hex(4)


def record_header(name: str, seq: int, boot: str = "") -> str:
    return f"{name}:{seq:012d}:{boot}:" if boot else f"{name}:{seq:012d}:"


def record(name: str, seq: int, size: int, boot: str = "") -> bytes:
    """Record ``seq`` of writer ``name`` in boot ``boot`` ("" : a writer with no boot id,
    the layout before boot ids: ``NAME:SEQ:....``)."""
    head = record_header(name, seq, boot).encode()
    if len(head) >= size:
        raise ValueError(f"record header {head!r} does not fit a {size}-byte record")
    return head + b"." * (size - len(head) - 1) + b"\n"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stem", required=True, help="path prefix of segment files on the mount")
    ap.add_argument("--name", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--per-file", type=int, default=65536)
    ap.add_argument("--until", type=float, required=True, help="epoch time to stop")
    ap.add_argument("--boot", default="", help="this run's boot id (default: a fresh one)")
    ap.add_argument("--idle", action="append", default=[], metavar="A:B",
                    help="no writes from A to B seconds after the start (repeatable)")
    args = ap.parse_args(argv)
    try:
        idle = [(float(a), float(b)) for a, b in (w.split(":") for w in args.idle)]
    except ValueError:
        ap.error(f"--idle {args.idle}: each is START:END in seconds")
    boot = args.boot or new_boot_id()
    if len(boot) > BOOT_MAX or not set(boot) <= BOOT_CHARS:
        ap.error(f"--boot {boot!r}: at most {BOOT_MAX} characters of [0-9a-z]")
    try:
        record(args.name, 0, args.size, boot)
    except ValueError as exc:
        ap.error(f"--size {args.size}: {exc}")
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log = open(args.log, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    started = time.time()
    log.write(f"B {boot} {started:.6f}\n")
    fd = -1
    segment = -1
    seq = 0
    while not stop and time.time() < args.until:
        t_issue = time.time()
        quiet = next((b for a, b in idle if a <= t_issue - started < b), None)
        if quiet is not None:  # the VM is idle: sleep (in short naps, to see a stop)
            time.sleep(min(0.2, max(0.0, started + quiet - t_issue)))
            continue
        want = seq // args.per_file
        log.write(f"I {seq} {t_issue:.6f}\n")
        try:
            if fd < 0 or segment != want:
                if fd >= 0:
                    os.close(fd)
                    fd = -1
                fd = os.open(f"{args.stem}.{want}", os.O_WRONLY | os.O_CREAT, 0o644)
                segment = want
            data = record(args.name, seq, args.size, boot)
            os.pwrite(fd, data, (seq % args.per_file) * args.size)
            os.fsync(fd)
        except OSError as exc:
            t_err = time.time()
            code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            log.write(f"E {seq} {t_issue:.6f} {t_err:.6f} {code}\n")
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
                fd = -1
            time.sleep(args.interval)
            continue
        log.write(f"A {seq} {t_issue:.6f} {time.time():.6f}\n")
        seq += 1
        rest = args.interval - (time.time() - t_issue)
        if rest > 0:
            time.sleep(rest)
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
