"""Per-entry heal timings from kept self-heal daemon logs (docs/validation.md, session 15).

Each entry's "performing data selfheal on GFID" to "Completed data selfheal on GFID" in
every host's glustershd.log of one run: how long entries take, how many are in flight, and
which daemon healed them. Usage, on a directory of runs (``hcisim validate --keep-logs
DIR`` or ``hcisim calibrate --keep-logs DIR``, or an archive here unpacked):

    python lab/validation/heal_entries.py DIR/power-loss-r3-t5-1 DIR/brick-crash-r3-1 ...
"""

from __future__ import annotations

import re
import statistics
import sys
from datetime import datetime
from pathlib import Path

LINE = re.compile(r"\[(\S+ \S+) \+0000\].*(performing data selfheal on|Completed data "
                  r"selfheal on) ([0-9a-f-]{36})")


def _epoch(stamp: str) -> float:
    return datetime.strptime(stamp + "+0000", "%Y-%m-%d %H:%M:%S.%f%z").timestamp()


def entries(run: Path) -> list[tuple[float, float, str]]:
    """(start, end, daemon's host) of every data heal the run's daemons completed."""
    out = []
    for log in sorted(run.glob("lab/host*/glustershd.log")):
        host = log.parent.name
        started: dict[str, float] = {}
        for line in log.read_text(errors="replace").splitlines():
            m = LINE.search(line)
            if m is None:
                continue
            t, gfid = _epoch(m.group(1)), m.group(3)
            if m.group(2).startswith("performing"):
                started[gfid] = t
            elif gfid in started:
                out.append((started.pop(gfid), t, host))
    return sorted(out)


def summary(run: Path) -> str:
    heals = entries(run)
    if not heals:
        return f"{run.name}: no data heal"
    took = sorted(b - a for a, b, _ in heals)
    t0, t1 = heals[0][0], max(b for _, b, _ in heals)
    peak = max(sum(1 for a, b, _ in heals if a <= x < b) for x, _, _ in heals)
    hosts: dict[str, int] = {}
    for _, _, h in heals:
        hosts[h] = hosts.get(h, 0) + 1
    return (f"{run.name}: {len(heals)} entries in {t1 - t0:.2f} s, each "
            f"{took[0]:.2f} / {statistics.median(took):.2f} / {took[-1]:.2f} s (min / median"
            f" / max), at most {peak} in flight, by daemon {dict(sorted(hosts.items()))}")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(summary(Path(arg)))
