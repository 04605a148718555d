"""Per-VM lifecycle intervals, written to the ``vm_state`` observation table.

States (observations.schema.VM_STATES): running, paused (reason: why), migrating (host: the
source, reason: "to <dst>"), down (reason: why), restarting (host: where it boots).
Intervals are contiguous per VM from t = 0 to the end of the run; zero-length ones are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hcisim.observations import Recorder


@dataclass(frozen=True)
class VmState:
    state: str
    host: str
    reason: str
    since: float


class VmStateLog:
    def __init__(self, recorder: Recorder, on_change: Callable[[], None] | None = None) -> None:
        self._rec = recorder
        self._cur: dict[str, VmState] = {}
        self._on_change = on_change

    def get(self, vm: str) -> VmState | None:
        return self._cur.get(vm)

    def state(self, vm: str) -> str | None:
        cur = self._cur.get(vm)
        return None if cur is None else cur.state

    def set(self, t: float, vm: str, state: str, host: str | None, reason: str = "") -> None:
        """From ``t`` on, ``vm`` is in ``state`` on ``host`` ('' for none)."""
        new = VmState(state, host or "", reason, t)
        cur = self._cur.get(vm)
        if cur is not None:
            if (cur.state, cur.host, cur.reason) == (new.state, new.host, new.reason):
                return
            self._emit(vm, cur, t)
        self._cur[vm] = new
        if self._on_change is not None:
            self._on_change()

    def close(self, t_end: float) -> None:
        for vm, cur in self._cur.items():
            self._emit(vm, cur, t_end)
        self._cur = {vm: VmState(c.state, c.host, c.reason, t_end) for vm, c in self._cur.items()}

    def _emit(self, vm: str, cur: VmState, t: float) -> None:
        if t > cur.since:
            self._rec.add("vm_state", vm, cur.host, cur.since, t, cur.state, cur.reason)
