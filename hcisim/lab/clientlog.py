"""The client's view of its bricks, read from the FUSE client's own log.

Why the log and not ``.meta/graphs/active/*/private``: during a silent brick loss a read of
``.meta`` blocks in FUSE for the whole ping-timeout (measured here: 8 s), exactly when the
state matters; the log is never blocked and its lines carry microsecond timestamps of the
moment the client marked the brick down (ping timer expired, or RST) and up again.

Lines used (glusterfs 10.x):
- ``MSGID: 114046`` ``0-VOL-client-N: Connected, attached to remote volume``: brick N up;
- ``MSGID: 114018`` ``0-VOL-client-N: disconnected from ...``: brick N down;
- ``MSGID: 100030`` ``Started running``: a new client process; every brick starts down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) ([+-]\d{4})\] \w \[MSGID: (\d+)\][^\]]*\] "
    r"(\S+?): (.*)$")
_CLIENT = re.compile(r"^\d+-(.+)-client-(\d+)$")
FORGET_DOWNS = -2


@dataclass(frozen=True)
class ConnEvent:
    """At ``t`` (epoch seconds) the client saw brick ``index`` of ``volume`` go up or down.

    ``index`` -1: the client process (re)started, every brick unknown. ``index``
    FORGET_DOWNS: what the client saw go down is no longer known (its own host was cut off
    until ``t``; those disconnects say nothing about the bricks).
    """

    t: float
    volume: str
    index: int
    up: bool


def parse_time(stamp: str, zone: str) -> float:
    return datetime.strptime(f"{stamp} {zone}", "%Y-%m-%d %H:%M:%S.%f %z").timestamp()


def parse_line(line: str, volume: str) -> ConnEvent | None:
    m = _LINE.match(line)
    if not m:
        return None
    stamp, zone, msgid, xl, rest = m.groups()
    if msgid == "100030":
        return ConnEvent(parse_time(stamp, zone), volume, -1, False)
    c = _CLIENT.match(xl)
    if not c or c.group(1) != volume:
        return None
    index = int(c.group(2))
    if msgid == "114046" and rest.startswith("Connected"):
        return ConnEvent(parse_time(stamp, zone), volume, index, True)
    if msgid == "114018" and rest.startswith("disconnected"):
        return ConnEvent(parse_time(stamp, zone), volume, index, False)
    return None


class ClientLogTail:
    """Reads only the new complete lines of one client log each time it is polled."""

    def __init__(self, path: Path, volume: str) -> None:
        self.path = path
        self.volume = volume
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[ConnEvent]:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        events = []
        for raw in lines:
            ev = parse_line(raw.decode(errors="replace"), self.volume)
            if ev is not None:
                events.append(ev)
        return events


class ClientView:
    """Brick connection state of one client, replayed from its events in time order."""

    def __init__(self, n_bricks: int) -> None:
        self.n = n_bricks
        self.events: list[ConnEvent] = []

    def add(self, events: list[ConnEvent]) -> None:
        self.events.extend(events)
        self.events.sort(key=lambda e: e.t)

    def state_at(self, t: float) -> list[bool | None]:
        """Per brick: True connected, False seen going down, None not known (since the
        client process (re)started it has not attached to that brick yet)."""
        up: list[bool | None] = [None] * self.n
        for ev in self.events:
            if ev.t > t:
                break
            if ev.index == FORGET_DOWNS:
                up = [None if x is False else x for x in up]
            elif ev.index < 0:
                up = [None] * self.n
            elif ev.index < self.n and (ev.up or up[ev.index] is not None):
                up[ev.index] = ev.up
        return up

    def change_times(self) -> list[float]:
        return [e.t for e in self.events]
