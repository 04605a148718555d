"""Time in the unit a reader thinks in: seconds for a stall, days for a month-long run.

Every time axis and every time printed in the report goes through here, so a 35 s stall
reads "35 s" and a fault 15 days into a run reads "15 d 03 h", not "1307200 s".
"""

from __future__ import annotations

import math

# (name, seconds per unit, the longest span still shown in this unit)
UNITS: tuple[tuple[str, float, float], ...] = (
    ("s", 1.0, 600.0), ("min", 60.0, 3 * 3600.0), ("h", 3600.0, 3 * 86400.0),
    ("d", 86400.0, math.inf))


def axis_unit(span_s: float) -> tuple[str, float]:
    """The unit for an axis ``span_s`` long: a few up to a few hundred ticks' worth."""
    for name, scale, longest in UNITS:
        if span_s <= longest:
            return name, scale
    return UNITS[-1][0], UNITS[-1][1]


def format_duration(seconds: float) -> str:
    """``35.2 s``, ``4 min 10 s``, ``2 h 05 min``, ``15 d 03 h``: two units at most."""
    if not math.isfinite(seconds):
        return "never"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 60:
        return f"{sign}{s:.2g} s" if 0 < s < 1 else f"{sign}{s:.1f} s"
    if s < 3600:
        m, rest = divmod(round(s), 60)
        return f"{sign}{m} min {rest:02d} s"
    if s < 86400:
        h, rest = divmod(round(s / 60), 60)
        return f"{sign}{h} h {rest:02d} min"
    d, rest = divmod(round(s / 3600), 24)
    return f"{sign}{d} d {rest:02d} h"


def format_time(t_s: float) -> str:
    """A moment of the run: its readable offset from the start, and the exact seconds when
    the readable form rounds (so the CSVs can be searched for it)."""
    readable = format_duration(t_s)
    return readable if t_s < 60 else f"{readable} ({t_s:,.1f} s)"
