"""Runs on a node over SSH (copied there with healinfo.py, standard library only): one poll.

Prints one JSON document: the node's clock, new lines of its FUSE client logs since the last
poll, and for each local brick the entries in its heal index (the same index that glfsheal
lists under that brick) with the facts the harness needs to turn them into pending bytes
per sink: allocated size and the AFR changelog blame (read with healinfo's own functions).
Reading the index directly instead of running glfsheal: glfsheal starts a whole gfapi
client, seconds of emulated CPU on every poll.

Usage: node_probe.py STATE_FILE VOLUME=CLIENT_LOG ... -- VOLUME:INDEX:N:BRICK_DIR:PID_FILE ...
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from healinfo import blamed, data_bytes, entry_path  # type: ignore[import-not-found]

MAX_LOG_BYTES = 1 << 20


def new_lines(path: str, offsets: dict[str, int]) -> list[str]:
    start = offsets.get(path, 0)
    try:
        size = os.path.getsize(path)
        if size < start:  # rotated or recreated
            start = 0
        with open(path, "rb") as fh:
            fh.seek(start)
            chunk = fh.read(MAX_LOG_BYTES)
    except OSError:
        return []
    end = chunk.rfind(b"\n") + 1
    offsets[path] = start + end
    return chunk[:end].decode(errors="replace").splitlines()


def brick_online(pid_file: str) -> bool:
    """The brick process glusterd started (its pid file) is alive."""
    try:
        with open(pid_file) as fh:
            os.kill(int(fh.read().split()[0]), 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def index_entries(brick: str, volume: str, n_bricks: int) -> list[list[object]]:
    """[[entry, bytes, {sink index: data pending}]] for the heal index of one brick."""
    xattrop = os.path.join(brick, ".glusterfs", "indices", "xattrop")
    out: list[list[object]] = []
    try:
        names = os.listdir(xattrop)
    except OSError:
        return out
    for name in names:
        if name.startswith("xattrop-"):
            continue  # the index's base file, not an entry
        entry = f"<gfid:{name}>"
        path = entry_path(Path(brick), entry)
        blame = blamed(path, volume, n_bricks)
        if not blame:
            continue  # indexed while a write was in flight, but nothing is pending
        out.append([entry, data_bytes(path), {str(k): v for k, v in blame.items()}])
    return out


def main(argv: list[str]) -> int:
    state = argv[0]
    sep = argv.index("--")
    logs = [a.split("=", 1) for a in argv[1:sep]]
    bricks = [a.split(":", 4) for a in argv[sep + 1:]]
    try:
        with open(state) as fh:
            offsets = json.load(fh)
    except (OSError, ValueError):
        offsets = {}
    result = {
        "t": time.time(),
        "logs": {vol: new_lines(path, offsets) for vol, path in logs},
        "bricks": [{"volume": vol, "index": int(idx), "online": brick_online(pid_file),
                    "entries": index_entries(brick, vol, int(n))}
                   for vol, idx, n, brick, pid_file in bricks],
    }
    tmp = state + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(offsets, fh)
    os.replace(tmp, state)
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
