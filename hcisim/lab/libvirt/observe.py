"""Turn node probe answers (see node_probe.py) into the lab's Sample.

The rule for pending bytes is healinfo.pending_by_brick's: for each entry in a source
brick's heal index, each brick its AFR changelog blames for data is a sink that must receive
the entry's allocated size, never an arbiter, once per sink (max over sources). Only the
facts are read on the nodes, since the bricks live inside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hcisim.lab.clientlog import ConnEvent, parse_line
from hcisim.lab.healinfo import Pending


@dataclass(frozen=True)
class BrickSlot:
    """Brick ``index`` of ``volume``: on ``host``, arbiter or not."""

    volume: str
    index: int
    host: str
    arbiter: bool


def conn_events(answers: dict[str, dict[str, Any]]) -> list[tuple[str, ConnEvent]]:
    """Client connection events from the new client log lines of each node."""
    out = []
    for host, ans in answers.items():
        for volume, lines in ans.get("logs", {}).items():
            for line in lines:
                ev = parse_line(line, volume)
                if ev is not None:
                    out.append((host, ev))
    return out


def pending_and_connected(answers: dict[str, dict[str, Any]], bricks: list[BrickSlot]
                          ) -> tuple[dict[str, dict[int, Pending]], dict[str, list[bool]]]:
    """Per volume: pending heal per brick index, and which bricks are online.

    A volume whose bricks did not all answer is left out of ``pending`` (unknown, as when
    glfsheal gives no answer), but it is in ``connected`` with those bricks down.
    """
    volumes = sorted({b.volume for b in bricks})
    pending: dict[str, dict[int, Pending]] = {}
    connected: dict[str, list[bool]] = {}
    for vol in volumes:
        slots = sorted((b for b in bricks if b.volume == vol), key=lambda b: b.index)
        arbiter = {b.index: b.arbiter for b in slots}
        facts: dict[int, dict[str, Any]] = {}
        for b in slots:
            ans = answers.get(b.host)
            if ans is None:
                continue
            for rec in ans.get("bricks", []):
                if rec.get("volume") == vol and rec.get("index") == b.index:
                    facts[b.index] = rec
        connected[vol] = [bool(facts.get(b.index, {}).get("online")) for b in slots]
        if len(facts) < len(slots):
            continue
        work: dict[str, dict[int, float]] = {}
        for src, rec in facts.items():
            for entry, size, blame in rec.get("entries", []):
                sinks = work.setdefault(str(entry), {})
                for key, data_pending in dict(blame).items():
                    sink = int(key)
                    if sink == src or sink not in arbiter:
                        continue
                    nbytes = float(size) if data_pending and not arbiter[sink] \
                        and not arbiter[src] else 0.0
                    sinks[sink] = max(sinks.get(sink, 0.0), nbytes)
        result = {b.index: Pending() for b in slots}
        for sinks in work.values():
            for sink, nbytes in sinks.items():
                result[sink].bytes += nbytes
                result[sink].entries += 1
        pending[vol] = result
    return pending, connected
