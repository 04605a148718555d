"""Turn node probe answers (see node_probe.py) into the lab's Sample.

The rule for pending bytes is the netns lab's (:func:`hcisim.lab.healinfo.owed`); only the
facts are read on the nodes, since the bricks live inside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hcisim.lab.clientlog import ConnEvent, parse_line
from hcisim.lab.healinfo import Pending, owed


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
        pending[vol] = owed(arbiter, [
            (src, str(entry), float(size), {int(k): bool(v) for k, v in dict(blame).items()})
            for src, rec in facts.items() for entry, size, blame in rec.get("entries", [])])
    return pending, connected
