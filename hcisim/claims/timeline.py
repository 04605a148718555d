"""Facts several claims (and the report) read off a run: fault windows, who ran where.

Everything here is derived from the observation tables, with the scenario only as a
fallback for what an engine did not record; a lab and the model are read the same way.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass

import numpy as np

from hcisim.observations import Observations
from hcisim.scenario import Scenario
from hcisim.scenario.faults import FAULT_TABLE

# vm_state intervals are half-open [t_start, t_end): the state "at" a fault is the one just
# before it, so that a VM marked down exactly at the fault still counts as on that host.
_BEFORE = 1e-6


@dataclass(frozen=True)
class FaultWindow:
    """One fault from its start to its repair (``end_s`` None: not repaired in the run)."""

    target: str
    kind: str
    start_s: float
    end_s: float | None

    def end_or(self, horizon: float) -> float:
        return horizon if self.end_s is None else self.end_s


def fault_windows(sc: Scenario, obs: Observations) -> list[FaultWindow]:
    """Faults as the run recorded them (fault_start..fault_end events, FIFO per target and
    fault kind, read from the events' structured ``fault_kind`` column).

    When the events table has no fault_start at all (an engine that does not log the
    schedule), the scenario's fault list stands in for it.
    """
    ev = obs["events"]
    ev = ev[ev["kind"].isin(["fault_start", "fault_end"])].sort_values("t_s", kind="stable")
    if not (ev["kind"] == "fault_start").any():
        return [FaultWindow(f.target, f.kind, f.at_s, f.end_s) for f in sc.faults]
    open_: dict[tuple[str, str], deque[float]] = defaultdict(deque)
    done: list[FaultWindow] = []
    for t, kind, target, fault_kind in zip(ev["t_s"], ev["kind"], ev["target"],
                                           ev["fault_kind"], strict=True):
        key = (str(target), str(fault_kind))
        if kind == "fault_start":
            open_[key].append(float(t))
        elif open_[key]:
            done.append(FaultWindow(key[0], key[1], open_[key].popleft(), float(t)))
    for (target, fault_kind), starts in open_.items():
        done.extend(FaultWindow(target, fault_kind, s, None) for s in starts)
    return sorted(done, key=lambda w: (w.start_s, w.target))


def host_failures(sc: Scenario, obs: Observations) -> list[FaultWindow]:
    """Fault windows during which the target host counts as failed (the fault table's
    ``host_window``). A fault kind outside the vocabulary is an error, never skipped."""
    out = []
    for w in fault_windows(sc, obs):
        if w.kind not in FAULT_TABLE:
            raise ValueError(f"fault window {w.kind!r} on {w.target}: not a fault kind "
                             f"({', '.join(FAULT_TABLE)})")
        if FAULT_TABLE[w.kind].host_window and w.target in sc.host_names:
            out.append(w)
    return out


def host_of(sc: Scenario, obs: Observations, vm: str, t_s: float) -> str | None:
    """Where ``vm`` ran just before ``t_s``: vm_state, else failover_pairs, else the scenario."""
    st = obs["vm_state"]
    st = st[st["vm"] == vm]
    if not st.empty:
        t = max(t_s - _BEFORE, 0.0)
        cover = st[(st["t_start_s"] <= t) & (st["t_end_s"] > t)]
        if cover.empty:  # before the first record or after the last: nearest in time
            before = st[st["t_start_s"] <= t]
            cover = before.tail(1) if not before.empty else st.sort_values("t_start_s").head(1)
        host = str(cover["host"].iloc[-1])
        if host:
            return host
    fp = obs["failover_pairs"]
    row = fp[fp["vm"] == vm]
    if not row.empty and str(row["host"].iloc[0]):
        return str(row["host"].iloc[0])
    try:
        return sc.vm(vm).host
    except KeyError:
        return None


def state_at(obs: Observations, vm: str, t_s: float) -> str | None:
    st = obs["vm_state"]
    st = st[(st["vm"] == vm) & (st["t_start_s"] <= t_s) & (st["t_end_s"] > t_s)]
    return None if st.empty else str(st["state"].iloc[-1])


def overlap_s(t0: np.ndarray, t1: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Seconds of each interval [t0, t1) inside ``window``."""
    inside: np.ndarray = np.clip(np.minimum(t1, window[1]) - np.maximum(t0, window[0]), 0.0, None)
    return inside


def run_window(sc: Scenario, obs: Observations,
               window_s: tuple[float, float] | None) -> tuple[float, float]:
    """A claim's time window, defaulting to the whole run."""
    if window_s is None:
        return (0.0, float(obs.duration_s or sc.duration_s))
    return (float(window_s[0]), float(window_s[1]))


def claimed_vms(sc: Scenario, names: tuple[str, ...] | None) -> list[str]:
    return list(names) if names is not None else [v.name for v in sc.vms]


def vms_with_io(sc: Scenario, names: tuple[str, ...] | None) -> list[str]:
    """The claim's VMs; without a list, every VM that has a disk with an I/O profile."""
    if names is not None:
        return list(names)
    return [v.name for v in sc.vms if any(d.io is not None for d in v.disks)]
