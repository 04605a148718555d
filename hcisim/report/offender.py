"""The worst offender of a claim: which VM (or volume, or host) and when.

The claims put their evidence worst first (``hcisim.claims.verdict.trim``), so the first
evidence item that names a subject is the one to look at; ``ha_reservation`` lists one plan
per host, and its worst is the host whose loss leaves the most HA VMs without a place.
This reads the claim as a dict (``Verdict.to_dict()`` or a claim of ``summary.json``), so the
terminal and the report say the same, also for runs written before this existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hcisim.report.units import format_duration, format_time

SUBJECTS = (("vm", "VM"), ("volume", "volume"), ("failed_host", "host"), ("host", "host"))
WHEN = ("at_s", "fault_at_s", "from_s", "recovered_at_s")
# The number that made the item bad, with its unit: durations print readably.
VALUES = (("stall_s", "stall", "s"), ("paused_s", "paused", "s"), ("for_s", "for", "s"),
          ("restart_s", "back running after", "s"), ("heal_s", "healing took", "s"),
          ("p99_ms", "p99", "ms"), ("mb_s", "throughput", "MB/s"),
          ("lost_bytes", "lost", "B"), ("acked_bytes", "acknowledged", "B"),
          ("copies", "copies", ""), ("usable_gb", "usable", "GB"),
          ("ram_short_gib", "RAM short", "GiB"))


@dataclass(frozen=True)
class Offender:
    """Who failed a claim worst, when (None: the claim is not about a moment), and how."""

    claim: str
    subject_kind: str  # VM, volume or host
    subject: str
    at_s: float | None
    detail: str

    def describe(self) -> str:
        """One line for terminal and page: ``VM db1 at 2 min 05 s (125.0 s): stall 35.2 s``."""
        when = f" at {format_time(self.at_s)}" if self.at_s is not None else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.subject_kind} {self.subject}{when}{detail}"


def _value(item: Mapping[str, Any]) -> str:
    problem = str(item.get("problem") or "")
    parts = [problem.replace("_", " ")] if problem and problem != "io_stall" else []
    for key, label, unit in VALUES:
        x = item.get(key)
        if key in item and x is None and key == "restart_s":
            parts.append("not running again by the end of the run")
            break
        if isinstance(x, int | float) and not isinstance(x, bool):
            shown = format_duration(float(x)) if unit == "s" else f"{x:,.4g} {unit}".rstrip()
            parts.append(f"{label} {shown}")
            break
    if item.get("unplaced"):
        parts.append("no room for " + ", ".join(map(str, item["unplaced"])))
    if item.get("no_failover_host"):
        parts.append("no failover host for " + ", ".join(map(str, item["no_failover_host"])))
    return ", ".join(parts)


def _when(item: Mapping[str, Any]) -> float | None:
    for key in WHEN:
        x = item.get(key)
        if isinstance(x, int | float) and not isinstance(x, bool):
            return float(x)
    window = item.get("window_s")
    if isinstance(window, list | tuple) and window:
        return float(window[0])
    return None


def _subject(item: Mapping[str, Any]) -> tuple[str, str] | None:
    for key, kind in SUBJECTS:
        if item.get(key):
            return kind, str(item[key])
    if item.get("no_failover_host"):
        return "VM", str(item["no_failover_host"][0])
    return None


def worst_offender(claim: Mapping[str, Any]) -> Offender | None:
    """The worst offender of a failed claim; None when it passed or names no subject."""
    if claim.get("verdict") != "fail":
        return None
    evidence = [e for e in claim.get("evidence") or [] if isinstance(e, Mapping)]
    if claim.get("kind") == "ha_reservation":
        homeless = [e for e in evidence if e.get("no_failover_host")]
        plans = sorted((e for e in evidence if e.get("unplaced")),
                       key=lambda e: -len(e["unplaced"]))
        evidence = homeless + plans
    for item in evidence:
        subject = _subject(item)
        if subject is not None:
            return Offender(str(claim.get("name", "")), subject[0], subject[1], _when(item),
                            _value(item))
    return None
