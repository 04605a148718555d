"""A scenario on the netns lab with a real qemu guest per VM (``lab: {vms: guests}``).

The same run as the fio one (:func:`hcisim.lab.run.run_lab` builds and deploys the lab and
calls this instead of its fio run): every VM boots as a guest on its host (booted one after
the other before ``t = 0``), each under vdsm's auto-resume; the scenario's faults play on
the lab's clock; its operations are carried out (:mod:`hcisim.lab.guests.operations`:
qemu's live migration over the lab's network, maintenance through the lab plane).
A power-lost host's guests are SIGKILLed with it. After the run the
guests stop, the heal wait runs as in the fio run, and the observations get:

- ``vm_state`` from qemu's QMP events (running, paused with qemu's reason, migrating, down);
- ``vm_io`` from the agent's numbered, fsync-acknowledged records: a write slower than the
  stall threshold is a stall the guest saw, a pause shows as a ``paused`` state;
- ``writes`` from the history check on every data brick after heal (lost records);
- ``migrations`` from qemu's ``query-migrate`` counters: rounds = dirty-sync-count - 1,
  downtime and total time as qemu counted them, transferred_mb = ram.transferred / 1e6
  divided by the guest's scale (``fleet.scale``: guest RAM / scenario RAM), so it is in
  the scenario VM's size like the model's (times need no such factor: the bandwidth cap
  is scaled alike). qemu's raw bytes are in ``meta["migrations"]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import math
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from hcisim.engines import LabOptions
from hcisim.lab.collect import LabRecord, build_observations, quorum_at
from hcisim.lab.faults import mechanism
from hcisim.lab.guests.fleet import scenario_guests
from hcisim.lab.guests.lab import check_guest, merged_history
from hcisim.lab.guests.links import shaped_migration_links
from hcisim.lab.guests.operations import GuestRun, run_operations
from hcisim.lab.guests.qemu import Guest, kvm_usable
from hcisim.lab.guests.resume import AutoResume, ResumeBehavior, mount_writable
from hcisim.lab.guests.vmstate import StateRow, record_vm_state, vm_state_rows
from hcisim.lab.heal import heal_settled
from hcisim.lab.history import (
    CheckResult,
    Interval,
    bad_intervals,
    history_summary,
    parse_history,
    per_second,
    ran_twice_events,
)
from hcisim.lab.run import Poller, placement
from hcisim.lab.schedule import play
from hcisim.lab.timeline import VolumePoint
from hcisim.lab.wait import wait_until
from hcisim.observations import Observations, Recorder
from hcisim.scenario import Fault, Scenario

Progress = Callable[[float], None]
OPERATIONS_JOIN_S = 60.0


def guest_accel() -> dict[str, str]:
    """What the guests ran on, and why: ``meta["guest_accel"]`` (times measured under TCG
    are the emulator's as much as the guest's)."""
    usable, why = kvm_usable()
    return {"accel": "kvm" if usable else "tcg", "why": why}


def migration_rows(gr: GuestRun, t0: float, out: Recorder) -> None:
    """One row per migration: downtime as the guest saw it (:attr:`Moved.switchover_s`,
    qemu's counter when the events are missing), the end when the destination runs."""
    for m in gr.migrations:
        r = m.result
        end = r.t_start + r.total_time_s if r.total_time_s else r.t_end
        end = max(end, m.resumed_at or end)
        outcome = "converged" if r.outcome == "completed" else "aborted"
        downtime = m.switchover_s if m.switchover_s is not None else r.downtime_s or 0.0
        out.add("migrations", m.vm, m.src, m.dst, r.t_start - t0, end - t0,
                downtime if outcome == "converged" else 0.0,
                passes(r.dirty_sync_count or 1, outcome == "converged"),
                (r.ram_transferred_bytes or 0) / 1e6 / gr.fleet.scale[m.vm], outcome,
                "lab: qemu query-migrate")
        out.event(r.t_start - t0, "migration_start", m.vm, f"{m.src} -> {m.dst}")
        out.event(end - t0, "migration_end", m.vm, f"{r.outcome} {r.reason}".strip())


def passes(dirty_syncs: int, converged: bool) -> int:
    """Copy passes, as the model counts them (``rounds``): qemu syncs once at setup and
    once at the end of each pass, the stop-and-copy's sync included; a migration given
    up was in a pass that never ended (the model counts it)."""
    return max(dirty_syncs - 1, 0) if converged else dirty_syncs


def operation_events(gr: GuestRun, t0: float, out: Recorder) -> None:
    for t, target, detail, source in gr.events:
        out.event(t - t0, "operation", target, detail,
                  source="scenario" if source == "scenario" else "engine")


def io_rows(sc: Scenario, gr: GuestRun, t0: float, stall_s: float, out: Recorder) -> None:
    """Per-second ``vm_io`` of each guest's disk writer: rates from its acknowledged
    records, cut where a record took longer than ``stall_s`` (stalled / error)."""
    dur = sc.duration_s
    for vm, qemus in gr.qemus.items():
        spec = qemus[-1].spec
        h = parse_history(merged_history(qemus), vm)
        marks = [Interval(i.start - t0, i.end - t0, i.status)
                 for i in bad_intervals(h, stall_s, t0 + dur)]
        if spec.host in gr.killed:
            t_kill = gr.killed[spec.host] - t0
            marks = [Interval(m.start, min(m.end, t_kill), m.status) for m in marks
                     if m.start < t_kill] + [Interval(t_kill, dur, "stopped")]
        acked = sorted(a.t_end - t0 for a in h.attempts if a.ok and a.t_end is not None)
        edges = sorted({0.0, dur, *range(1, math.ceil(dur)),
                        *(e for m in marks for e in (m.start, m.end) if 0 < e < dur)})
        j = 0
        for a, b in itertools.pairwise(edges):
            n = 0
            while j < len(acked) and acked[j] < b:
                n += acked[j] >= a
                j += 1
            mid = (a + b) / 2
            status = next((m.status for m in marks if m.start <= mid < m.end), "ok")
            iops = n / (b - a)
            out.add("vm_io", vm, gr.fleet.volumes[vm], a, b, 0.0, 0.0,
                    iops * spec.record_size / 1e6, 0.0, iops, float("nan"), float("nan"),
                    status)


def compute_tables(sc: Scenario, gr: GuestRun, t0: float, stall_s: float,
                   checks: dict[str, CheckResult]
                   ) -> Callable[[Recorder, dict[str, list[VolumePoint]]], None]:
    """The recorder hook of :class:`LabRecord`: the guests' tables."""

    def write(out: Recorder, timelines: dict[str, list[VolumePoint]]) -> None:
        end = t0 + sc.duration_s
        for vm, qemus in gr.qemus.items():
            per_qemu = [vm_state_rows(vm, g.spec.host, g.qmp.events, t0, end) for g in qemus]
            rows: list[StateRow] = []
            for i, mine in enumerate(per_qemu):
                if i < len(qemus) - 1:  # it moved on: not down, running at the destination,
                    mine = [r for r in mine if (r.state, r.reason) != ("down", "migrated")]
                    nxt = per_qemu[i + 1]  # and paused until the destination runs
                    if mine and nxt and (mine[-1].state, mine[-1].reason) == \
                            ("paused", "migration"):
                        mine[-1] = dataclasses.replace(mine[-1], t_end_s=nxt[0].t_start_s)
                rows += mine
            record_vm_state(out, [clip(r, sc.duration_s) for r in rows
                                  if r.t_start_s < sc.duration_s])
            pts = timelines[gr.fleet.volumes[vm]]
            times = [p.t for p in pts]

            def quorum(t: float, pts: list[VolumePoint] = pts,
                       times: list[float] = times) -> bool:
                return quorum_at(pts, times, t)

            for a, b, n, copies, lost, q in per_second(checks[vm], t0, sc.duration_s, quorum):
                out.add("writes", vm, gr.fleet.volumes[vm], a, b, n, copies, q, lost)
            for t, detail in ran_twice_events(checks[vm], t0):
                out.event(t, "vm_ran_twice", vm, detail)
        io_rows(sc, gr, t0, stall_s, out)
        migration_rows(gr, t0, out)
        operation_events(gr, t0, out)

    return write


def clip(r: StateRow, duration_s: float) -> StateRow:
    """A row cut at the run's end (guests are stopped after it, before the heal wait)."""
    return StateRow(r.vm, r.host, r.t_start_s, min(r.t_end_s, duration_s), r.state, r.reason)


def run_guests(sc: Scenario, be: Any, opts: LabOptions, progress: Progress | None,
               backend: str) -> Observations:
    """Boot the guests, play faults and operations, stop the guests, wait for heal, judge."""
    where = placement(sc)
    with contextlib.ExitStack() as stack:
        fleet = stack.enter_context(scenario_guests(be, sc, where))
        gr = GuestRun(fleet, {vm: [g] for vm, g in fleet.guests.items()})
        links = stack.enter_context(shaped_migration_links(
            sc, be, min(fleet.scale.values(), default=1.0)))

        def resume(g: Guest, volume: str) -> None:
            usable = functools.partial(mount_writable, be.mount_path(g.spec.host, volume),
                                       g.spec.host)
            stack.enter_context(AutoResume(g, ResumeBehavior.AUTO_RESUME, usable))

        for vm, g in fleet.guests.items():
            resume(g, fleet.volumes[vm])
        t0 = time.time()

        def inject(f: Fault) -> float:
            # the host's qemus die with it: frozen before the cut, so that none of them sees
            # its storage vanish (and pauses) before the host is gone, killed after it
            dying = [qemus[-1] for qemus in gr.qemus.values()
                     if mechanism(f) == "power" and qemus[-1].spec.host == f.target]
            for q in dying:
                q.freeze()
            try:
                t = cast(float, be.inject(f))
            except BaseException:
                for q in dying:
                    q.thaw()
                raise
            if mechanism(f) == "power":
                gr.killed[f.target] = t
                for q in dying:
                    q.kill()
            return t

        poller = Poller(be.observe, opts.poll_s)
        poller.start()
        halt = threading.Event()
        ops = threading.Thread(target=run_operations,
                               args=(sc, be, gr, t0, stack, resume, halt),
                               daemon=True, name="lab-operations")
        try:
            ops.start()
            windows = play(sc.faults, t0, sc.duration_s, inject, be.restore, progress=progress)
            ops.join()
            for qemus in gr.qemus.values():  # stop writing before the heal wait
                qemus[-1].stop()
            vols = [v.name for v in sc.volumes]
            healed = all(w.end is not None for w in windows) and wait_until(
                lambda: heal_settled(poller.samples, vols), opts.heal_wait_s, opts.poll_s / 2)
        finally:
            halt.set()  # on an exception: no new migration, the one under way is cancelled
            if ops.is_alive():  # and ends, so its destination is on the stack to be stopped
                for qemus in gr.qemus.values():
                    with contextlib.suppress(Exception):  # qemu: a no-op when not migrating
                        qemus[-1].qmp.execute("migrate_cancel")
            ops.join(OPERATIONS_JOIN_S)
            poller.stop()
    unrepaired = {w.fault.target for w in windows if w.end is None}
    reader = next((h for h in sc.host_names if h not in unrepaired), sc.host_names[0])
    checks = {vm: check_guest(be, qemus, fleet.volumes[vm], reader)
              for vm, qemus in gr.qemus.items()}
    hook = compute_tables(sc, gr, t0, opts.stall_threshold_s, checks)
    rec = LabRecord(t0=t0, duration_s=sc.duration_s, end=time.time(), workloads=[],
                    samples=poller.samples, windows=windows, killed=gr.killed,
                    stall_threshold_s=opts.stall_threshold_s, placement=where, compute=hook)
    meta: dict[str, Any] = {
        **be.meta(),
        "vms": "guests",
        "guest_boot_s": {vm: round(s, 2) for vm, s in fleet.boot_s.items()},
        "guest_scale": {vm: round(s, 5) for vm, s in fleet.scale.items()},
        "guest_accel": guest_accel(),
        "migration_link_mbit": {h: round(r, 3) for h, r in links.items()},
        "heal_settled_after_run": healed,
        "poll_errors": poller.errors[:20],
        "operation_errors": gr.errors,
        "history": {vm: history_summary(c, t0) for vm, c in checks.items()},
        # the agents' RAM check: hot pages that lost a store (a migration losing RAM)
        "ram_errors": {vm: sum(len(g.agent.ram_errors) for g in qemus)
                       for vm, qemus in gr.qemus.items()},
        "migrations": [{"vm": m.vm, "outcome": m.result.outcome, "reason": m.result.reason,
                        "total_s": m.result.total_time_s, "downtime_s": m.result.downtime_s,
                        "switchover_s": m.switchover_s,
                        "setup_s": m.result.setup_time_s,
                        "transferred_mib": (m.result.ram_transferred_bytes or 0) / (1 << 20),
                        "dirty_syncs": m.result.dirty_sync_count,
                        "downtime_limits_ms": m.result.downtime_limits_ms,
                        "monitor_samples": m.result.samples} for m in gr.migrations],
        "method": {
            "vm_state": "qemu QMP events (hcisim.lab.guests.vmstate)",
            "stalls": f"guest agent records slower than {opts.stall_threshold_s} s",
            "writes_copies": "data bricks holding each acknowledged guest record after heal",
            "migrations": "qemu query-migrate: rounds = dirty-sync-count - 1",
        },
    }
    if progress:
        progress(1.0)
    return build_observations(sc, rec, meta, engine=f"lab:{backend.split('://')[0]}")
