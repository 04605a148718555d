"""One acceptance run: read-only checks, a measured baseline, then (only when allowed) the
scenario's faults with the write history, recovery, heal and a restore check per host.

The result is the shared Observations (engine ``hosts``), so the claims and the report
work on it unchanged; the checks, the baseline table, refusals and restore rows ride in
``meta`` and in their own files beside it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hcisim.accept import baseline as base
from hcisim.accept.checks import CheckReport, run_checks
from hcisim.accept.faults import FaultFailed, FaultRun, HostHealth, host_health
from hcisim.accept.faults import inject as inject_fault
from hcisim.accept.faults import restore_rows as restored
from hcisim.accept.heal import sample, wait_for_heal
from hcisim.accept.remote import RemoteError, own_addresses
from hcisim.accept.rows import CheckRow, row
from hcisim.accept.safety import DEFAULT_MAX_FAULT_S, FaultPolicy, RollbackLedger
from hcisim.accept.ssh import Shell, SshError, SshOptions, connect, ssh_session
from hcisim.accept.targets import HostTarget, bind_targets
from hcisim.accept.writes import (
    RemoteWriter,
    cleanup,
    collect,
    placements,
    start_writers,
    stop_writers,
)
from hcisim.lab.errors import LabError
from hcisim.lab.faults import mechanism
from hcisim.lab.schedule import play
from hcisim.observations import Observations, Recorder
from hcisim.scenario import Fault, Scenario

ENGINE = "hosts"
SAMPLE_MARGIN_S = 5.0  # no volume sample is started this close to a fault's end


@dataclass(frozen=True)
class AcceptOptions:
    allow_destructive: bool = False
    power_off_cmd: str | None = None
    power_on_cmd: str | None = None
    max_fault_s: float = DEFAULT_MAX_FAULT_S
    clock_tolerance_s: float = 0.5
    baseline_s: int = 10
    baseline_mb: int = 256
    heal_timeout_s: float = 600.0
    settle_s: float = 3.0
    power_boot_s: float = 600.0


@dataclass
class Acceptance:
    """What one acceptance run found."""

    scenario: Scenario
    targets: dict[str, HostTarget]
    checks: list[CheckRow]
    baseline: list[base.BaselineRow]
    refusals: list[str]
    faults: list[CheckRow]  # injected / restored rows
    observations: Observations
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> list[CheckRow]:
        return [*self.checks, *self.faults]

    @property
    def passed(self) -> bool:
        return not self.interrupted and all(r.verdict != "fail" for r in self.rows)

    @property
    def unrestored(self) -> list[CheckRow]:
        return [r for r in self.faults if r.check == "host restored" and r.verdict == "fail"]


Progress = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


@contextmanager
def open_shells(targets: dict[str, HostTarget], ssh: SshOptions) -> Iterator[dict[str, Shell]]:
    """One shell per scenario host; each proven to answer (else a SshError naming it)."""
    with ssh_session(ssh) as session:
        shells: dict[str, Shell] = {h: session.shell(t) for h, t in targets.items()}
        for shell in shells.values():
            connect(shell)
        yield shells


def accept(sc: Scenario, targets: list[HostTarget], ssh: SshOptions,
           opts: AcceptOptions = AcceptOptions(), progress: Progress = _quiet) -> Acceptance:
    """The whole acceptance of ``sc`` on ``targets`` (raises SshError on a bad host)."""
    bound = bind_targets(sc, targets)
    with open_shells(bound, ssh) as shells:
        return accept_on(sc, bound, shells, opts, progress, ssh.describe())


def accept_on(sc: Scenario, bound: dict[str, HostTarget], shells: dict[str, Shell],
              opts: AcceptOptions, progress: Progress = _quiet,
              access: dict[str, Any] | None = None) -> Acceptance:
    t0 = time.time()
    run_id = f"{os.getpid()}-{int(t0)}"
    rec = Recorder()
    progress("read-only checks")
    report = run_checks(sc, shells, opts.clock_tolerance_s)
    progress("baseline")
    table, notes = _baseline(sc, shells, report, rec, run_id, opts, t0)
    policy = FaultPolicy(opts.allow_destructive, frozenset(bound), opts.max_fault_s,
                         opts.power_off_cmd, opts.power_on_cmd)
    run = FaultRun(sc, shells, report.view.uuids, report.view.volumes, policy, run_id, rec, t0,
                   power_boot_s=opts.power_boot_s)
    refusals: list[str] = []
    fault_rows: list[CheckRow] = []
    interrupted = False
    allowed = []
    for fault in sc.faults:
        why = policy.refusal(fault)
        if why is None:
            allowed.append(fault)
        else:
            refusals.append(why)
            progress(why)
    if allowed:
        fault_rows, interrupted = play_faults(run, allowed, opts, report.offset_s(), progress)
    if interrupted:
        notes.append("interrupted (Ctrl-C) during a fault: hosts were restored first")
    obs = rec.build(ENGINE, sc.name, sc.seed, time.time() - t0, meta={
        "targets": {h: t.url for h, t in bound.items()},
        "access": access or {},
        "checks": [r.to_dict() for r in report.rows],
        "baseline": [r.to_dict() for r in table],
        "refusals": refusals,
        "faults": [r.to_dict() for r in fault_rows],
        "interrupted": interrupted,
        "notes": notes,
    })
    return Acceptance(sc, bound, report.rows, table, refusals, fault_rows, obs, interrupted,
                      notes)


def _baseline(sc: Scenario, shells: dict[str, Shell], report: CheckReport, rec: Recorder,
              run_id: str, opts: AcceptOptions,
              t0: float) -> tuple[list[base.BaselineRow], list[str]]:
    jobs = base.baseline_jobs(sc, list(shells))
    if not jobs or opts.baseline_s <= 0:
        return [], ["baseline skipped (no VM disk with an I/O profile, or --baseline-s 0)"]
    own = {h: own_addresses(report.view.volumes, report.view.uuids.get(h)) for h in shells}
    start = time.time() - t0
    try:
        measured = base.measure(shells, jobs, own, run_id, opts.baseline_s, opts.baseline_mb)
    except RemoteError as exc:
        measured, note = {}, [f"baseline failed: {exc}"]
    else:
        note = []
    end = time.time() - t0
    for j in jobs:
        m = measured.get((j.vm, j.volume))
        if not m:
            continue
        rec.add("vm_io", j.vm, j.volume, start, end, j.profile.demand_mb_s, m["read_mb_s"],
                m["write_mb_s"], m["read_iops"], m["write_iops"], m["latency_ms"],
                m["p99_ms"], "ok")
    return base.compare(jobs, measured, base.model_prediction(sc, opts.baseline_s)), note


@dataclass
class Cycle:
    """One fault on the servers, from its writers and injection to its judged recovery."""

    fault: Fault
    index: int
    before: HostHealth
    writers: list[RemoteWriter]
    ledger: RollbackLedger = field(default_factory=RollbackLedger)
    rows: list[CheckRow] = field(default_factory=list)
    injected: bool = False
    t_end: float = 0.0  # when its bound is up (the run's clock)


def play_faults(run: FaultRun, faults: list[Fault], opts: AcceptOptions,
                offsets: dict[str, float], progress: Progress = _quiet
                ) -> tuple[list[CheckRow], bool]:
    """The allowed faults on the shared timeline player (each at its ``at_s`` from now,
    held for its bound), sampling the volumes while one is on. The undo steps of every
    fault run whatever happens, Ctrl-C included; returns the rows and whether the user
    interrupted."""
    cycles: dict[int, Cycle] = {}
    index = {id(f): i for i, f in enumerate(faults)}
    rows: list[CheckRow] = []

    def inject(f: Fault) -> float:
        progress(f"fault {f.kind} on {f.target}")
        what = f"{f.kind} for {run.policy.bound_s(f):g} s"
        try:
            c = cycles[index[id(f)]] = start_cycle(run, f, index[id(f)], opts)
        except (LabError, RemoteError) as exc:  # no writers: the host was not touched
            rows.append(row("fault injected", f.target, what, str(exc), False, _volume(f)))
            return run.clock()
        t = run.clock()
        try:
            c.t_end = t + inject_fault(run, f, c.index, c.ledger)
            c.injected = True
            c.rows.append(row("fault injected", f.target, what, "injected", True, _volume(f)))
        except (FaultFailed, LabError, RemoteError) as exc:
            c.rows.append(row("fault injected", f.target, what, str(exc), False, _volume(f)))
        return t

    def restore(f: Fault) -> float:
        c = cycles.get(index[id(f)])
        if c is not None and c.injected:  # held for its whole bound from its real start
            while (left := c.t_end - run.clock()) > 0:
                hold(min(left, 1.0))
        t = run.clock()
        if (c := cycles.pop(index[id(f)], None)) is not None:
            rows.extend(finish_cycle(run, c, opts, offsets))
        return t

    last_sample = [float("-inf")]

    def hold(seconds: float) -> None:
        """Sleep, sampling the faulted volumes from another host every 2 s while a fault
        is on (never close to the fault's end: it must not outlast its bound)."""
        now = run.clock()
        if now - last_sample[0] >= 2.0:
            last_sample[0] = now
            for c in [c for c in cycles.values() if c.injected and c.t_end - now > SAMPLE_MARGIN_S]:
                _, watch = run.survivor(c.fault.target)
                for vol in fault_volumes(run, c.fault):
                    sample(run, watch, vol, c.fault.target)
        run.sleep(max(0.0, seconds - (run.clock() - now)))

    t0 = run.clock() + opts.settle_s
    duration = max(f.at_s + run.policy.bound_s(f) for f in faults) + 1.0
    interrupted = False
    try:
        play(faults, t0, duration, inject, restore, bound=run.policy.bound_s, clock=run.clock,
             sleep=hold)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for c in list(cycles.values()):  # still on (interrupted, or a step failed)
            rows.extend(finish_cycle(run, c, opts, offsets, interrupted=True))
    return rows, interrupted


def _volume(f: Fault) -> str:
    return getattr(f, "volume", None) or ""


def fault_volumes(run: FaultRun, f: Fault) -> list[str]:
    return run.volumes_on(f.target, getattr(f, "volume", None)) or [
        v.name for v in run.sc.volumes]


def start_cycle(run: FaultRun, fault: Fault, index: int, opts: AcceptOptions) -> Cycle:
    """Health read before, the write history started on every VM's host (not on a host
    about to lose power) and given time to settle."""
    host = fault.target
    bound = run.policy.bound_s(fault)
    settled = run.clock() + opts.settle_s  # the same lead for every fault: at_s stays exact
    where = placements(run, host if mechanism(fault) == "power" else None)
    until = time.time() + opts.settle_s + bound + opts.heal_timeout_s + 120
    c = Cycle(fault, index, host_health(run, host),
              start_writers(run, f"f{index}", where, until))
    run.sleep(max(0.0, settled - run.clock()))
    return c


def finish_cycle(run: FaultRun, c: Cycle, opts: AcceptOptions, offsets: dict[str, float],
                 interrupted: bool = False) -> list[CheckRow]:
    """Undo (always), heal, stop the writers and judge them, and say whether the host is
    back as it was."""
    host, fault = c.fault.target, c.fault
    try:
        c.ledger.unwind()
    finally:
        run.recorder.fault_event(run.now(), False, fault)
        try:
            wait_for_heal(run, fault_volumes(run, fault), host,
                          30.0 if interrupted else opts.heal_timeout_s)
        finally:
            stop_writers(run, c.writers)
    results = collect(run, c.writers, offsets)
    lost = sum(r.lost_count for r in results)
    acked = sum(len(r.acked) for r in results)
    c.rows.append(row("acknowledged writes kept", "cluster", "0 lost",
                      f"{lost} lost of {acked} acknowledged", lost == 0 and acked > 0))
    cleanup(run, c.writers)
    try:
        after: HostHealth | None = host_health(run, host)
    except SshError:
        after = None
    return [*c.rows, *restored(host, c.before, after, c.ledger.failed)]

