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
from hcisim.accept.faults import FaultFailed, FaultRun, HostHealth, host_health, inject
from hcisim.accept.faults import restore_rows as restored
from hcisim.accept.heal import sample, wait_for_heal
from hcisim.accept.remote import RemoteError
from hcisim.accept.rows import CheckRow, row
from hcisim.accept.safety import DEFAULT_MAX_FAULT_S, FaultPolicy, RollbackLedger
from hcisim.accept.ssh import Shell, SshError, SshOptions, connect, ssh_session
from hcisim.accept.targets import HostTarget, bind_targets
from hcisim.accept.writes import cleanup, collect, placements, start_writers, stop_writers
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
    for i, fault in enumerate(sorted(sc.faults, key=lambda f: f.at_s)):
        why = policy.refusal(fault)
        if why is not None:
            refusals.append(why)
            progress(why)
            continue
        progress(f"fault {fault.kind} on {fault.target}")
        try:
            got, interrupted = fault_cycle(run, fault, i, opts, report.offset_s())
        except (SshError, RemoteError, FaultFailed) as exc:
            got = [row("fault injected", fault.target, fault.kind, str(exc), False)]
        fault_rows += got
        if interrupted:
            notes.append("interrupted (Ctrl-C) during a fault: hosts were restored first")
            break
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
    own = {h: [b.host for v in report.view.volumes.values() for b in v.bricks
               if b.host_uuid == report.view.uuids.get(h)] for h in shells}
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


def fault_cycle(run: FaultRun, fault: Fault, index: int, opts: AcceptOptions,
                offsets: dict[str, float]) -> tuple[list[CheckRow], bool]:
    """One fault: writers on, inject, hold for the bound, undo (always), heal, judge.

    Returns the rows and whether the user interrupted (Ctrl-C): the undo steps run either
    way, and the restore check still says whether each host is back as it was.
    """
    host = fault.target
    before: HostHealth = host_health(run, host)
    bound = run.policy.bound_s(fault)
    where = placements(run, host if fault.kind == "node_power_loss" else None)
    until = time.time() + opts.settle_s + bound + opts.heal_timeout_s + 120
    rows: list[CheckRow] = []
    ledger = RollbackLedger()
    named: str | None = getattr(fault, "volume", None)
    volumes = run.volumes_on(host, named) or [v.name for v in run.sc.volumes]
    interrupted = False
    writers = start_writers(run, f"f{index}", where, until)
    try:
        try:
            run.sleep(opts.settle_s)
            inject(run, fault, index, ledger)
            rows.append(row("fault injected", host, f"{fault.kind} for {bound:g} s",
                            "injected", True, named or ""))
            _hold(run, host, volumes, bound)
        except (FaultFailed, SshError, RemoteError) as exc:
            rows.append(row("fault injected", host, f"{fault.kind} for {bound:g} s", str(exc),
                            False, named or ""))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            try:
                ledger.unwind()
            except KeyboardInterrupt:  # held during the unwind, raised after it
                interrupted = True
            run.event("fault_end", host, fault.kind)
        try:
            wait_for_heal(run, volumes, host, 30.0 if interrupted else opts.heal_timeout_s)
        except KeyboardInterrupt:
            interrupted = True
    finally:
        stop_writers(run, writers)
    results = collect(run, writers, offsets)
    lost = sum(r.lost_count for r in results)
    acked = sum(len(r.acked) for r in results)
    rows.append(row("acknowledged writes kept", "cluster", "0 lost",
                    f"{lost} lost of {acked} acknowledged", lost == 0 and acked > 0))
    cleanup(run, writers)
    try:
        after: HostHealth | None = host_health(run, host)
    except SshError:
        after = None
    rows += restored(host, before, after, ledger.failed)
    return rows, interrupted


def _hold(run: FaultRun, host: str, volumes: list[str], bound: float) -> None:
    """Keep the fault for its bound, sampling the volumes from another host meanwhile.

    A sample can take seconds while a node is silent (glusterd waits for it), so none is
    started close to the end: the fault must not outlast its bound because we were looking.
    """
    _, watch = run.survivor(host)
    end = run.clock() + bound
    while run.clock() < end - SAMPLE_MARGIN_S:
        for vol in volumes:
            sample(run, watch, vol, host)
        run.sleep(min(2.0, max(0.0, end - SAMPLE_MARGIN_S - run.clock())))
    run.sleep(max(0.0, end - run.clock()))


def observe_hosts(sc: Scenario, hosts: str | list[HostTarget], ssh: SshOptions | None = None,
                  opts: AcceptOptions = AcceptOptions()) -> Observations:
    """Observations of ``sc`` on existing servers (``pytest validators --target hosts:...``)."""
    from hcisim.accept.targets import parse_targets

    targets = parse_targets(hosts) if isinstance(hosts, str) else hosts
    return accept(sc, targets, ssh or SshOptions(), opts).observations
