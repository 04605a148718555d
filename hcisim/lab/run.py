"""One scenario on a real lab: build, deploy, load, play the faults on the lab's clock,
wait for heal, check the write history, and return the shared observation tables.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import psutil

from hcisim.engines import LabOptions, engine_options, parse_engine
from hcisim.lab.backend import Backend, Workload, open_backend
from hcisim.lab.collect import LabRecord, build_observations
from hcisim.lab.faults import mechanism
from hcisim.lab.fio import FioPlan, PhaseRate, refuse_closed_loop
from hcisim.lab.heal import heal_settled
from hcisim.lab.healbytes import COUNTER_PERIOD_S, timed
from hcisim.lab.healsinks import entry_sizes
from hcisim.lab.history import check, history_summary, read_history
from hcisim.lab.scale import LabScale, as_built
from hcisim.lab.schedule import play
from hcisim.lab.wait import wait_until
from hcisim.observations import Observations
from hcisim.placement import initial_placement
from hcisim.scenario import Fault, Scenario

Progress = Callable[[float], None]
RECORD_SIZE = 64
WRITER_LEAD_S = 30.0


WORK_PREFIX = "hcisim-labrun-"
HARNESS_FILE = "harness"  # "<pid> <process start time>": whose work directory this is


def make_work_dir() -> Path:
    """A run's scratch directory (fio job files, write histories), signed with the harness's
    pid and start time so that ``hcisim lab down`` can remove it after a SIGKILL."""
    work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX))
    me = psutil.Process()
    (work / HARNESS_FILE).write_text(f"{me.pid} {me.create_time()!r}\n")
    return work


def orphaned_work_dirs(tmp: Path | None = None) -> list[Path]:
    """Work directories whose harness is gone: its pid dead, or reused by a process that
    started at another time. Directories without the signature are not ours to judge."""
    found = []
    for work in sorted((tmp or Path(tempfile.gettempdir())).glob(f"{WORK_PREFIX}*")):
        try:
            pid_text, started = (work / HARNESS_FILE).read_text().split()
            pid, t_start = int(pid_text), float(started)
        except (OSError, ValueError):
            continue
        try:
            if psutil.Process(pid).create_time() == t_start:
                continue  # the harness still runs
        except psutil.Error:
            pass
        found.append(work)
    return found


def remove_orphaned_work_dirs(tmp: Path | None = None) -> list[Path]:
    """Remove what :func:`orphaned_work_dirs` finds; return what was removed."""
    gone = orphaned_work_dirs(tmp)
    for work in gone:
        shutil.rmtree(work, ignore_errors=True)
    return gone


def placement(sc: Scenario) -> dict[str, str]:
    """Where each VM runs: the shared placement (its ``host``, else the scheduler's choice,
    as on the model); a VM that fits nowhere does not run."""
    return {vm: host for vm, host in initial_placement(sc).items() if host is not None}


def phase_rates(sc: Scenario, vm: str) -> tuple[PhaseRate, ...]:
    """The VM's load over time as (start, duration, load) segments within the run."""
    starts = sorted({0.0, *(p.start_s for p in sc.phases if p.start_s < sc.duration_s)})
    out: list[PhaseRate] = []
    for i, s in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else sc.duration_s
        load = 1.0
        for ph in sc.phases:
            if ph.start_s <= s and (ph.vms is None or vm in ph.vms):
                load = ph.load
        if out and out[-1].load == load:
            last = out.pop()
            out.append(PhaseRate(last.start_s, end - last.start_s, load))
        else:
            out.append(PhaseRate(s, end - s, load))
    return tuple(p for p in out if p.load > 0)


def idle_windows(sc: Scenario, vm: str) -> tuple[tuple[float, float], ...]:
    """When the VM's load is 0 (seconds from t = 0): its fio and its history writer issue
    nothing then, as the model's VM does."""
    out, t = [], 0.0
    for ph in phase_rates(sc, vm):
        if ph.start_s > t + 1e-9:
            out.append((t, ph.start_s))
        t = ph.start_s + ph.duration_s
    if t < sc.duration_s - 1e-9:  # idle to the end: and after it, until the writer stops
        out.append((t, sc.duration_s + WRITER_LEAD_S))
    return tuple(out)


def make_workloads(sc: Scenario, be: Backend, scale: LabScale, work: Path, t_end: float,
                   opts: LabOptions) -> list[Workload]:
    refuse_closed_loop(sc)  # fio's rate pacing is open loop (every backend, the hosts too)
    where = placement(sc)
    out = []
    for vm in [v for v in sc.vms if v.name in where]:
        for j, d in enumerate(vm.disks):
            key = f"{vm.name}-{j}"
            profile = sc.io_profile(d.io)
            shard = sc.volume(d.volume).options.shard_block_size_mib * 2**20
            fio = FioPlan(vm=vm.name, volume=d.volume,
                          path=be.mount_path(where[vm.name], d.volume) / f"{key}.img",
                          size_bytes=scale.vm_disk_bytes(d.size_gb),
                          profile=scale.profile(profile) if profile else _IDLE,
                          phases=phase_rates(sc, vm.name) if profile else (),
                          log_dir=work / key)
            out.append(Workload(vm=vm.name, host=where[vm.name], volume=d.volume,
                                disk_index=j, fio=fio, history_relname=f".hcisim-{key}.hist",
                                history_log=work / f"{key}.history", record_size=RECORD_SIZE,
                                per_file=min(shard, 4 * 2**20) // RECORD_SIZE,
                                interval_s=opts.writer_interval_s, until=t_end,
                                idle=idle_windows(sc, vm.name) if profile else ()))
    return out


def _idle() -> Any:
    from hcisim.scenario import IoProfile

    return IoProfile(iops=1.0)


_IDLE = _idle()
T = TypeVar("T")


class Poller(threading.Thread, Generic[T]):
    """Calls ``read`` every ``period`` seconds until stopped; keeps every sample. One for the
    backend's observations (``be.observe``), one for the brick write counters (dense, apart
    from the heal poll, which blocks for seconds during a silent loss)."""

    def __init__(self, read: Callable[[], T], period: float, name: str = "lab-poller") -> None:
        super().__init__(daemon=True, name=name)
        self.read = read
        self.period = period
        self.samples: list[T] = []
        self.errors: list[str] = []
        self._stop_evt = threading.Event()

    def run(self) -> None:
        while not self._stop_evt.is_set():
            t = time.monotonic()
            try:
                self.samples.append(self.read())
            except Exception as exc:  # a failed poll is recorded, never fatal to the run
                self.errors.append(f"{time.time():.3f}: {exc}")
            self._stop_evt.wait(max(0.0, self.period - (time.monotonic() - t)))

    def stop(self) -> None:
        self._stop_evt.set()
        self.join(timeout=30)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM of the harness unwinds like Ctrl-C, so destroy runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_lab(sc: Scenario, backend: str = "netns", progress: Progress | None = None,
            **options: Any) -> Observations:
    """Run ``sc`` on a real lab of kind ``backend``; observations in the shared schema."""
    opts = engine_options(parse_engine("lab"), options)
    assert isinstance(opts, LabOptions)
    scale = LabScale.fit(sc, opts.size_scale, opts.io_scale)
    if not sc.lab.plane and sc.lab.vms == "fio":
        refuse_closed_loop(sc)  # before anything is built: nothing to take down
    work = make_work_dir()
    try:
        lab_logs = opts.keep_logs / "lab" if opts.keep_logs is not None else None
        with sigterm_as_interrupt(), open_backend(backend, sc, name=opts.name, scale=scale,
                                                  volume_set=dict(opts.volume_set),
                                                  keep_logs=lab_logs) as be:
            t_up = time.monotonic()
            be.build()
            be.deploy()
            up_s = time.monotonic() - t_up
            if sc.lab.plane:
                from hcisim.lab.plane.scenario_run import run_plane

                obs = run_plane(sc, be, progress)
            elif sc.lab.vms == "guests":
                from hcisim.lab.guests.run import run_guests

                obs = run_guests(sc, be, opts, progress, backend)
            else:
                obs = run_on(sc, be, scale, work, opts, progress,
                             f"lab:{backend.split('://')[0]}")
            obs.meta["lab_up_s"] = round(up_s, 2)
        if opts.keep_logs is not None:  # the logs' wall clock read against the run's tables
            obs.save(opts.keep_logs)
        return obs
    finally:
        if opts.keep_logs is not None:
            shutil.copytree(work, opts.keep_logs, dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def run_on(sc: Scenario, be: Backend, scale: LabScale, work: Path, opts: LabOptions,
           progress: Progress | None, engine: str) -> Observations:
    """Load, the faults on the timeline, the heal wait and the history check on a lab that
    is up (every backend: netns, libvirt, existing servers); ``engine`` names the result."""
    t0 = time.time()
    # a writer the harness cannot stop (its host is cut off) stops by itself soon after
    workloads = make_workloads(sc, be, scale, work, t0 + sc.duration_s + WRITER_LEAD_S, opts)
    rec = LabRecord(t0=t0, duration_s=sc.duration_s, end=t0, workloads=workloads,
                    stall_threshold_s=opts.stall_threshold_s, placement=placement(sc))

    def inject(f: Fault) -> float:
        t = be.inject(f)
        if mechanism(f) == "power":  # its VMs stay down: the lab has no HA restart
            rec.killed[f.target] = t
        return t

    poller = Poller(be.observe, opts.poll_s)
    poller.start()
    read_counters = getattr(be, "brick_io", None)  # the brick processes' /proc: netns only
    counters = Poller(timed(read_counters), COUNTER_PERIOD_S, "lab-brick-counters") \
        if read_counters is not None else None
    if counters is not None:
        counters.start()
    try:
        be.start_workloads(workloads)
        rec.t0 = time.time()  # t = 0 once the load runs (starting it over SSH takes seconds)
        rec.windows = play(sc.faults, rec.t0, sc.duration_s, inject, be.restore, progress=progress)
        be.stop_workloads()
        vols = [v.name for v in sc.volumes]
        healed = all(w.end is not None for w in rec.windows) and wait_until(
            lambda: heal_settled(poller.samples, vols), opts.heal_wait_s, opts.poll_s / 2)
    finally:
        poller.stop()
        if counters is not None:
            counters.stop()
    rec.end = time.time()
    rec.samples = poller.samples
    rec.entry_sizes = entry_sizes(rec.samples, {v.name: be.data_brick_paths(v.name)
                                                for v in sc.volumes})
    rec.counters = counters.samples if counters is not None else []
    unrepaired = {w.fault.target for w in rec.windows if w.end is None}
    reader = next((h for h in sc.host_names if h not in unrepaired), sc.host_names[0])
    for w in workloads:
        h = read_history(w.history_log, w.key)
        rec.histories[w.key] = h
        rec.checks[w.key] = check(h, w.history_relname, w.record_size, w.per_file,
                                  be.data_brick_paths(w.volume), be.mount_path(reader, w.volume))
    meta: dict[str, Any] = {
        **be.meta(),
        "t0_epoch": rec.t0,  # run time 0 on the hosts' clock (their logs' timestamps)
        "as_built": as_built(sc, scale).model_dump(mode="json") if (scale.size, scale.io) != (
            1.0, 1.0) else None,
        "options": {k: str(v) for k, v in vars(opts).items()},
        "heal_settled_after_run": healed,
        "heal_info_at_end": poller.samples[-1].listing if poller.samples and not healed else {},
        "poll_errors": poller.errors[:20],
        "history": {k: history_summary(c, rec.t0) for k, c in rec.checks.items()},
        "method": {
            "bricks_up": "FUSE client logs (connect/disconnect lines), majority of the clients "
                         "on hosts no fault hits",
            "pending_heal_bytes": "glfsheal listing; per entry its allocated size on the "
                                  "source brick, attributed to the bricks its AFR changelog "
                                  "blames (see hcisim.lab.healinfo)",
            "bytes_healed": "what the returning brick's process wrote during its heal episode "
                            "(/proc/PID/io write_bytes) minus what a data brick of the volume "
                            "that was up and not healing wrote over the same polls (see "
                            "hcisim.lab.healbytes); the heal index estimate where the counters "
                            "cannot say (the event heal_done names which)",
            "stalls": f"history writer attempts slower than {opts.stall_threshold_s} s",
            "writes_copies": "data bricks holding each acknowledged record after the heal wait",
        },
    }
    if progress:
        progress(1.0)
    return build_observations(sc, rec, meta, engine=engine)
