"""The one fault timeline player: inject each fault at ``at_s``, repair it at its end.

Every backend plays a scenario's faults through here (the labs in :func:`hcisim.lab.run_lab`,
existing servers in the acceptance run), on the run's own clock: a fault is injected when
its ``at_s`` comes (or at once, if the action before it ran late) and repaired ``bound``
seconds after (its ``duration_s``; the acceptance policy may cap it). A repair comes before
an injection due at the same moment. Faults still active at the end are reported unrepaired
(``end`` None); the caller decides what to do with them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hcisim.scenario import Fault

Progress = Callable[[float], None]


@dataclass(frozen=True)
class FaultWindow:
    fault: Fault
    start: float  # epoch
    end: float | None  # epoch; None: not repaired

    def active(self, t: float) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


def play(faults: Sequence[Fault], t0: float, duration_s: float,
         inject: Callable[[Fault], float], restore: Callable[[Fault], float], *,
         bound: Callable[[Fault], float | None] = lambda f: f.duration_s,
         progress: Progress | None = None, clock: Callable[[], float] = time.time,
         sleep: Callable[[float], None] = time.sleep) -> list[FaultWindow]:
    """Play ``faults`` from epoch ``t0`` until ``t0 + duration_s``; the windows they made."""
    actions: list[tuple[float, bool, int]] = []  # (time, is_inject, index)
    for i, f in enumerate(faults):
        actions.append((f.at_s, True, i))
        b = bound(f)
        if b is not None and f.at_s + b < duration_s:
            actions.append((f.at_s + b, False, i))
    actions.sort(key=lambda a: (a[0], a[1]))
    started: dict[int, float] = {}
    windows: list[FaultWindow] = []

    def wait_until(t: float) -> None:
        while (now := clock()) < t:
            if progress:
                progress(min(1.0, (now - t0) / duration_s))
            sleep(min(0.2, t - now))

    for at, is_inject, i in actions:
        wait_until(t0 + at)
        if is_inject:
            started[i] = inject(faults[i])
        else:
            windows.append(FaultWindow(faults[i], started.pop(i), restore(faults[i])))
    wait_until(t0 + duration_s)
    windows += [FaultWindow(faults[i], t, None) for i, t in started.items()]
    return windows
