"""The client's view of its bricks, read from the FUSE client's own log.

Why the log and not ``.meta/graphs/active/*/private``: during a silent brick loss a read of
``.meta`` blocks in FUSE for the whole ping-timeout (measured here: 8 s), exactly when the
state matters; the log is never blocked and its lines carry microsecond timestamps of the
moment the client marked the brick down (ping timer expired, or RST) and up again.

Lines used (glusterfs 10.x):
- ``MSGID: 114046`` ``0-VOL-client-N: Connected, attached to remote volume``: brick N up;
- ``MSGID: 114018`` ``0-VOL-client-N: disconnected from ...``: brick N down;
- ``MSGID: 100030`` ``Started running``: a new client process; every brick starts down.

The self-heal daemon's log (glustershd.log) has the same lines for its own connections.
The self-heal daemon's log also says when it healed what (AFR_MSG_SELF_HEAL_INFO, INFO):
- ``0-VOL-replicate-K: performing data selfheal on GFID`` (afr-self-heal-data.c
  ``afr_selfheal_data_do``; ``entry`` and ``metadata`` likewise): a heal of one file (one
  shard) begins;
- ``0-VOL-replicate-K: Completed data selfheal on GFID. sources=[0] 2 sinks=1``
  (afr-self-heal-common.c ``afr_log_selfheal``): it ended, brick 1 of the replica set healed.

glusterd's log (glusterd.log) says when server quorum made it stop or start the host's
bricks (glusterd-server-quorum.c ``glusterd_do_volume_quorum_action``):
- ``MSGID: 106002`` ``Server quorum lost for volume VOL. Stopping local bricks.``;
- ``MSGID: 106003`` ``Server quorum regained for volume VOL. Starting local bricks.`` (also
  at every glusterd start).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Generic, TypeVar

_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) ([+-]\d{4})\] \w \[MSGID: (\d+)\][^\]]*\] "
    r"(\S+?): (.*)$")
_CLIENT = re.compile(r"^\d+-(.+)-client-(\d+)$")
_REPLICATE = re.compile(r"^\d+-(.+)-replicate-(\d+)$")
_HEAL_BEGIN = re.compile(r"^performing (?:\S+ )?(data|entry|metadata) selfheal on ([0-9a-f-]{36})")
_HEAL_END = re.compile(r"^Completed (data|entry|metadata) selfheal on ([0-9a-f-]{36})\. "
                       r"sources=.*?sinks=([\d ]*)$")
_QUORUM = re.compile(r"^Server quorum (lost|regained) for volume (\S+?)\. ")
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


@dataclass(frozen=True)
class QuorumEvent:
    """At ``t`` (epoch seconds) glusterd stopped (``lost``) or started the host's bricks of
    ``volume`` for server quorum."""

    t: float
    volume: str
    lost: bool


def parse_quorum_line(line: str) -> QuorumEvent | None:
    m = _LINE.match(line)
    if not m:
        return None
    stamp, zone, _msgid, _xl, rest = m.groups()
    q = _QUORUM.match(rest)
    if not q:
        return None
    return QuorumEvent(parse_time(stamp, zone), q.group(2), q.group(1) == "lost")


@dataclass(frozen=True)
class HealLine:
    """At ``t`` (epoch seconds) a self-heal began (``done`` False) or completed (True) on file
    ``gfid`` of replica set ``subvol`` of ``volume``; ``sinks``: the replica set's bricks it
    healed (known at completion only)."""

    t: float
    volume: str
    subvol: int
    kind: str  # data, entry, metadata
    gfid: str
    done: bool
    sinks: tuple[int, ...] = ()

    def sink_bricks(self, set_size: int) -> list[int]:
        """The volume's brick indices it healed into (``sinks`` count within its replica
        set)."""
        return [self.subvol * set_size + k for k in self.sinks]


def parse_heal_line(line: str, volume: str) -> HealLine | None:
    m = _LINE.match(line)
    if not m:
        return None
    stamp, zone, _msgid, xl, rest = m.groups()
    r = _REPLICATE.match(xl)
    if not r or r.group(1) != volume:
        return None
    begin = _HEAL_BEGIN.match(rest)
    if begin:
        return HealLine(parse_time(stamp, zone), volume, int(r.group(2)), begin.group(1),
                        begin.group(2), False)
    end = _HEAL_END.match(rest)
    if end:
        return HealLine(parse_time(stamp, zone), volume, int(r.group(2)), end.group(1),
                        end.group(2), True, tuple(int(x) for x in end.group(3).split()))
    return None


T = TypeVar("T")


class LogTail(Generic[T]):
    """Reads only the new complete lines of one log each time it is polled, and keeps
    what ``parse`` makes of them."""

    def __init__(self, path: Path, parse: Callable[[str], T | None]) -> None:
        self.path = path
        self.parse = parse
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[T]:
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
            ev = self.parse(raw.decode(errors="replace"))
            if ev is not None:
                events.append(ev)
        return events


class ClientLogTail(LogTail[ConnEvent]):
    """A Gluster client's log (a FUSE mount's, a self-heal daemon's): its connection events
    of one volume."""

    def __init__(self, path: Path, volume: str) -> None:
        super().__init__(path, lambda line: parse_line(line, volume))
        self.volume = volume


class HealLogTail(LogTail[HealLine]):
    """A self-heal daemon's log: its heals of one volume's files."""

    def __init__(self, path: Path, volume: str) -> None:
        super().__init__(path, lambda line: parse_heal_line(line, volume))


class QuorumLogTail(LogTail[QuorumEvent]):
    """glusterd's log: its server-quorum actions."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, parse_quorum_line)


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
