"""One acceptance run: read-only checks, a measured baseline, then (only when allowed) the
scenario's faults played on the hosts lab backend, and a restore check per host.

The faults run as on every lab (:func:`hcisim.lab.run.run_on` on
:class:`hcisim.lab.hosts.HostsBackend`): the same timeline player, injector, load and write
history, polls and heal wait. What the acceptance adds is its policy: refusal without
--allow-destructive, each fault capped at the hard bound, and the rows that judge the run.
The result is the shared Observations (engine ``hosts``), so the claims and the report
work on it unchanged; the checks, the baseline table, refusals and restore rows ride in
``meta`` and in their own files beside it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hcisim.accept import baseline as base
from hcisim.accept.checks import CheckReport, run_checks
from hcisim.accept.remote import RemoteError
from hcisim.accept.restored import HostHealth, host_health, restore_rows, storage_if_of
from hcisim.accept.rows import CheckRow, row
from hcisim.accept.safety import DEFAULT_MAX_FAULT_S, FaultPolicy
from hcisim.accept.ssh import Shell, SshOptions, ssh_session
from hcisim.accept.targets import HostTarget, bind_targets, parse_targets
from hcisim.engines import HostsOptions, LabOptions
from hcisim.lab.errors import LabError
from hcisim.lab.gluster import VolumeInfo
from hcisim.lab.hosts import HostsBackend, own_addresses
from hcisim.lab.node import SshError, SshShell, connect
from hcisim.lab.run import run_on
from hcisim.lab.scale import LabScale
from hcisim.observations import Observations, Recorder
from hcisim.scenario import Scenario

ENGINE = "hosts"


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
    def unrestored(self) -> list[CheckRow]:
        return [r for r in self.faults if r.check == "host restored" and r.verdict == "fail"]


Progress = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


def accept(sc: Scenario, targets: list[HostTarget], ssh: SshOptions,
           opts: AcceptOptions = AcceptOptions(), progress: Progress = _quiet) -> Acceptance:
    """The whole acceptance of ``sc`` on ``targets``: one shell per scenario host, each
    proven to answer first (else a SshError naming it)."""
    bound = bind_targets(sc, targets)
    with ssh_session(ssh) as session:
        shells: dict[str, Shell] = {h: session.shell(t) for h, t in bound.items()}
        for shell in shells.values():
            connect(shell)
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
    refusals = [why for f in sc.faults if (why := policy.refusal(f)) is not None]
    for why in refusals:
        progress(why)
    fault_rows: list[CheckRow] = []
    interrupted, played = False, None
    if len(refusals) < len(sc.faults):
        progress("faults")
        played, fault_rows, interrupted = play_faults(sc, shells, report.view.uuids,
                                                      report.view.volumes, policy, opts)
    if interrupted:
        notes.append("interrupted (Ctrl-C) during a fault: hosts were restored first")
    meta = {
        "targets": {h: t.url for h, t in bound.items()},
        "access": access or {},
        "checks": [r.to_dict() for r in report.rows],
        "baseline": [r.to_dict() for r in table],
        "refusals": refusals,
        "faults": [r.to_dict() for r in fault_rows],
        "interrupted": interrupted,
        "notes": notes,
    }
    if played is not None:  # the fault phase's own tables, on its own clock
        played.meta.update(meta, lab=dict(played.meta))
        obs = played
    else:
        obs = rec.build(ENGINE, sc.name, sc.seed, time.time() - t0, meta=meta)
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


def play_faults(sc: Scenario, shells: dict[str, Shell], uuids: dict[str, str],
                volumes: dict[str, VolumeInfo], policy: FaultPolicy, opts: AcceptOptions
                ) -> tuple[Observations | None, list[CheckRow], bool]:
    """The allowed faults, each capped at the hard bound, played on the hosts backend (a
    lab run of the scenario); the backend repairs whatever is still broken when it closes,
    Ctrl-C included. Returns the run's observations (None: it did not finish), the rows
    that judge it, and whether the user interrupted."""
    faults = [f.model_copy(update={"duration_s": policy.bound_s(f)})
              for f in sc.faults if policy.refusal(f) is None]
    end = max(f.at_s + policy.bound_s(f) for f in faults) + opts.settle_s
    run_sc = sc.model_copy(update={"faults": faults, "duration_s": max(sc.duration_s, end)})
    hit = sorted({f.target for f in faults})
    before = {h: host_health(sc, shells[h], volumes, uuids.get(h)) for h in hit}
    lab = LabOptions(heal_wait_s=opts.heal_timeout_s)
    ssh = {h: s for h, s in shells.items() if isinstance(s, SshShell)}
    assert len(ssh) == len(shells), "faults are played over SSH only"
    be = HostsBackend(run_sc, ssh, {h: s.target.glusterd_sock for h, s in shells.items()},
                      {h: storage_if_of(s, volumes, uuids.get(h)) for h, s in shells.items()},
                      policy.power_off_cmd, policy.power_on_cmd,
                      {h: s.target.address for h, s in shells.items()}, opts.power_boot_s)
    obs, rows, interrupted = None, [], False
    work = Path(tempfile.mkdtemp(prefix="hcisim-accept-"))
    try:
        with be:
            be.build()
            be.deploy()
            obs = run_on(run_sc, be, LabScale.fit(run_sc), work, lab, None, ENGINE)
    except KeyboardInterrupt:
        interrupted = True
    except (LabError, RemoteError) as exc:
        rows.append(row("faults played", "cluster", "every allowed fault injected and "
                        "repaired", str(exc), False))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if obs is not None:
        events = obs["events"]
        for f in faults:
            on = events[(events["kind"] == "fault_start") & (events["target"] == f.target)]
            rows.append(row("fault injected", f.target, f"{f.kind} for {f.duration_s:g} s",
                            "injected" if len(on) else "not injected", bool(len(on)),
                            getattr(f, "volume", None) or ""))
        history = obs.meta.get("history", {})
        lost = sum(h["lost"] for h in history.values())
        acked = sum(h["acked"] for h in history.values())
        rows.append(row("acknowledged writes kept", "cluster", "0 lost",
                        f"{lost} lost of {acked} acknowledged", lost == 0 and acked > 0))
    for h in hit:
        try:
            after: HostHealth | None = host_health(sc, shells[h], volumes, uuids.get(h))
        except SshError:
            after = None
        failed = [f for f in be.rollback_failed if f.endswith(f" on {h}") or f" on {h}:" in f]
        rows += restore_rows(h, before[h], after, failed)
    return obs, rows, interrupted


def run_hosts(sc: Scenario, hosts: tuple[str, ...], options: HostsOptions,
              progress: Callable[[float], None] | None = None) -> Observations:
    """``hosts+ssh://h1,h2,h3``: the acceptance run on existing servers (checks, baseline,
    and, when ``options.allow_destructive``, the scenario's faults on the timeline)."""
    ssh = SshOptions(identity=options.identity, known_hosts=options.known_hosts,
                     trust_new_hosts=options.trust_new_hosts)
    targets = parse_targets(",".join(f"ssh://{h}" for h in hosts))
    opts = AcceptOptions(options.allow_destructive, options.power_off_cmd, options.power_on_cmd,
                         options.max_fault_s or DEFAULT_MAX_FAULT_S)
    return accept(sc, targets, ssh, opts).observations
