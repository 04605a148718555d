"""``vm_state`` rows from qemu's QMP events, and vdsm's answer to a storage pause.

The states are the observation schema's: running, paused, migrating, down. Times are
qemu's own event timestamps, so a pause starts at the moment qemu stopped the CPUs, not
when a poll noticed. The events used:

| event | state |
|---|---|
| RESUME | running (after boot, a ``cont``, or on a migration destination) |
| BLOCK_IO_ERROR (action ``stop``) then STOP | paused, reason ``io-error: <qemu's reason>`` |
| STOP without an I/O error | paused (``migration`` during a migration, else ``user``) |
| MIGRATION status setup/active/... | migrating (the source still runs) |
| MIGRATION completed | down on the source (``migrated``) |
| MIGRATION failed/cancelled | running again on the source |
| SHUTDOWN, or the process gone (PROCESS_EXIT, harness-side) | down |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from hcisim.lab.guests.qmp import QmpEvent
from hcisim.observations.record import Recorder
from hcisim.observations.schema import VmState

MIGRATING = {"setup", "active", "pre-switchover", "device", "postcopy-active",
             "wait-unplug"}


@dataclass(frozen=True)
class StateRow:
    vm: str
    host: str
    t_start_s: float
    t_end_s: float
    state: str
    reason: str


def vm_state_rows(vm: str, host: str, events: list[QmpEvent], t0: float,
                  t_end: float) -> list[StateRow]:
    """The guest's states on ``host`` as intervals in run seconds (``t0`` = run start).

    Consecutive events that leave the state and reason unchanged do not split a row. The
    last row ends at ``t_end`` (the end of the run) unless the VM went down.
    """
    rows: list[StateRow] = []
    cur: tuple[float, str, str] | None = None  # (t, state, reason)
    io_error: str | None = None
    migrating = False

    def enter(t: float, state: str, reason: str) -> None:
        nonlocal cur
        if cur is not None and (cur[1], cur[2]) == (state, reason):
            return
        if cur is not None and t > cur[0]:
            rows.append(StateRow(vm, host, cur[0] - t0, t - t0, cur[1], cur[2]))
        cur = (t, state, reason) if cur is None or t >= cur[0] else (cur[0], state, reason)

    for ev in sorted(events, key=lambda e: e.t):
        if cur is not None and cur[1] == "down":
            break
        if ev.name == "BLOCK_IO_ERROR" and ev.data.get("action") == "stop":
            io_error = str(ev.data.get("reason") or ev.data.get("operation") or "I/O error")
            if cur is not None and cur[1] == "paused" and not cur[2].startswith("io-error"):
                enter(ev.t, "paused", f"io-error: {io_error}")
        elif ev.name == "STOP":
            if io_error is not None:
                enter(ev.t, "paused", f"io-error: {io_error}")
            else:
                enter(ev.t, "paused", "migration" if migrating else "user")
        elif ev.name == "RESUME":
            reason = "resumed" if cur is not None else "started"
            io_error = None
            enter(ev.t, "migrating" if migrating else "running", reason)
        elif ev.name == "MIGRATION":
            status = str(ev.data.get("status", ""))
            if status in MIGRATING and not migrating and cur is not None \
                    and cur[1] == "running":
                migrating = True
                enter(ev.t, "migrating", status)
            elif status == "completed" and cur is not None:
                migrating = False
                if cur[1] in ("migrating", "paused"):
                    enter(ev.t, "down", "migrated")
            elif status in ("failed", "cancelled") and migrating:
                migrating = False
                enter(ev.t, "running" if cur and cur[1] == "migrating" else "paused",
                      f"migration {status}")
        elif ev.name in ("SHUTDOWN", "PROCESS_EXIT") and cur is not None:
            reason = str(ev.data.get("reason", "")) if ev.name == "SHUTDOWN" else "killed"
            enter(ev.t, "down", reason or "shutdown")
    if cur is not None:
        rows.append(StateRow(vm, host, cur[0] - t0, max(t_end, cur[0]) - t0, cur[1], cur[2]))
    return rows


def pause_windows(rows: list[StateRow],
                  reason_prefix: str = "io-error") -> list[tuple[float, float]]:
    """(start, end) in run seconds of every pause whose reason starts with ``reason_prefix``."""
    return [(r.t_start_s, r.t_end_s) for r in rows
            if r.state == "paused" and r.reason.startswith(reason_prefix)]


def record_vm_state(rec: Recorder, rows: list[StateRow]) -> None:
    """Put the rows into a run's observations (the recorder checks every state name)."""
    for r in rows:
        rec.vm_state(r.vm, r.host, r.t_start_s, r.t_end_s, cast(VmState, r.state), r.reason)
