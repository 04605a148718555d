"""What qemu does on a Gluster FUSE image for a 512-byte guest write, in a process of its own.

Run by file path (standard library only). Record ``seq`` (64 bytes, the lab's history
format) goes into its 512-byte sector, which holds the records of that sector up to ``seq``,
as the guest agent writes it. Mode ``rmw`` is qemu's read-modify-write with
cache=none on FUSE (alignment 4096): ``pread`` the 4 KiB page, put the sector in, ``pwrite``
the page, ``fdatasync``. Mode ``aligned`` writes the same page from its own memory, without
reading it (a guest that writes whole 4 KiB blocks). Both with ``O_DIRECT``.

A process of its own because a FUSE fd must not be shared with anything that forks: every
close of an inherited copy (a forked child closing its fds) is a FUSE FLUSH, and AFR's
flush wakes the delayed post-op and releases the eager lock, which changes exactly what is
under test.

Log lines (times epoch seconds):
  ``A seq t``              record ``seq`` acknowledged (fdatasync returned)
  ``S seq t first``        the page read for ``seq`` lacked acknowledged record ``first``
  ``E seq t errno``        an attempt failed; the same record is tried again
  ``H seq t``              holding after ``seq`` (SIGUSR1), until SIGUSR2
SIGTERM stops it after the current record.
"""

from __future__ import annotations

import argparse
import mmap
import os
import signal
import sys
import time

PAGE = 4096
SECTOR = 512


def record(name: str, seq: int, size: int) -> bytes:
    """The lab's record (hcisim.lab.history_writer.record; repeated: this runs standalone)."""
    head = f"{name}:{seq:012d}:".encode()
    return head + b"." * (size - len(head) - 1) + b"\n"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--path", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--mode", choices=("rmw", "aligned"), required=True)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args(argv)
    size: int = args.size
    flags = {"stop": False, "hold": False}

    def on_signal(signum: int, frame: object) -> None:
        if signum == signal.SIGUSR1:
            flags["hold"] = True
        elif signum == signal.SIGUSR2:
            flags["hold"] = False
        else:
            flags["stop"] = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, on_signal)
    log = open(args.log, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    fd = os.open(args.path, os.O_RDWR | os.O_DIRECT)
    buf = mmap.mmap(-1, PAGE)  # page aligned, as O_DIRECT needs
    pages: dict[int, bytearray] = {}
    per_page = PAGE // size
    seq = 0
    while not flags["stop"]:
        off = seq * size
        page, sec = off // PAGE, off - off % SECTOR
        sector = b"".join(record(args.name, s, size) for s in range(sec // size, seq + 1))
        sector += bytes(SECTOR - len(sector))
        so = sec - page * PAGE
        try:
            if args.mode == "rmw":
                if os.preadv(fd, [buf], page * PAGE) != PAGE:
                    raise OSError(5, "short read")
                for s in range(page * per_page, seq):
                    k = (s - page * per_page) * size
                    if buf[k:k + size] != record(args.name, s, size):
                        log.write(f"S {seq} {time.time():.6f} {s}\n")
                        break
            else:
                mine = pages.setdefault(page, bytearray(PAGE))
                mine[so:so + SECTOR] = sector
                buf[:] = bytes(mine)
            buf[so:so + SECTOR] = sector
            if os.pwritev(fd, [buf], page * PAGE) != PAGE:
                raise OSError(5, "short write")
            os.fdatasync(fd)
        except OSError as exc:
            log.write(f"E {seq} {time.time():.6f} {exc.errno or 0}\n")
            time.sleep(0.05)
            continue
        log.write(f"A {seq} {time.time():.6f}\n")
        seq += 1
        if flags["hold"]:
            log.write(f"H {seq - 1} {time.time():.6f}\n")
            while flags["hold"] and not flags["stop"]:
                time.sleep(0.001)
        time.sleep(args.interval)
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
