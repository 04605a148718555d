"""fio as a VM's disk: the job file from an I/O profile, and its per-interval logs read back.

One fio process per VM disk, one job section per workload phase (``startdelay`` +
``runtime``, rate scaled by the phase's load), O_DIRECT, rate-limited per direction. Logs
are written with ``log_unix_epoch`` so their timestamps are on the harness's clock, averaged
per second (``log_avg_msec``), plus a per-second latency histogram (``log_hist_msec``) from
which the p99 of each second is computed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hcisim.lab.errors import LabError
from hcisim.scenario import IoProfile, Scenario

PLAT_BITS = 6
PLAT_VAL = 1 << PLAT_BITS
PLAT_NR = 29 * PLAT_VAL  # fio's FIO_IO_U_PLAT_NR with coarseness 0


@dataclass(frozen=True)
class PhaseRate:
    start_s: float
    duration_s: float
    load: float


@dataclass(frozen=True)
class FioPlan:
    vm: str
    volume: str
    path: Path  # the disk image on the FUSE mount
    size_bytes: int
    profile: IoProfile  # already scaled to what the lab runs
    phases: tuple[PhaseRate, ...]
    log_dir: Path


def closed_loop_disks(sc: Scenario) -> list[str]:
    """The VM disks of ``sc`` whose I/O profile says ``catch_up: false`` (closed loop), as
    ``vms[i].disks[j] (profile NAME)``."""
    out = []
    for i, vm in enumerate(sc.vms):
        for j, d in enumerate(vm.disks):
            p = sc.io_profile(d.io)
            if p is not None and not p.catch_up:
                name = d.io if isinstance(d.io, str) else "inline"
                out.append(f"vms[{i}].disks[{j}] of {vm.name} (profile {name})")
    return out


def refuse_closed_loop(sc: Scenario) -> None:
    """fio cannot run a closed-loop profile: its ``rate_iops`` pacing (rate_process=linear,
    and poisson alike) schedules every I/O from the job's start, so after a stall it always
    catches up (io_u.c ``usec_for_io``); no fio option paces at a rate without that
    (``thinktime`` waits after each I/O, so its rate depends on the latency). The model
    would predict another workload than the one the lab runs: refuse, naming the disks."""
    closed = closed_loop_disks(sc)
    if closed:
        raise LabError("check the scenario", f"scenario {sc.name!r}: {'; '.join(closed)}: "
                       "catch_up is false (closed loop), but fio's rate pacing always "
                       "catches up after a stall; set catch_up: true in the profile (or run "
                       "it on the model)")


def rate_iops(profile: IoProfile, load: float) -> tuple[int, int]:
    """(read, write) IOPS limits; at least 1 in a direction the mix uses (fio: 0 = no cap)."""
    total = profile.demand_iops * load
    r = total * profile.read_pct / 100
    w = total - r
    return (max(1, round(r)) if profile.read_pct > 0 else 0,
            max(1, round(w)) if profile.read_pct < 100 else 0)


def job_file(plan: FioPlan) -> str:
    p = plan.profile
    lines = [
        "[global]", "ioengine=libaio", "direct=1", f"filename={plan.path}",
        f"size={plan.size_bytes}", f"rw={'randrw' if p.random else 'rw'}",
        f"rwmixread={round(p.read_pct)}", f"bs={round(p.block_kib * 1024)}",
        f"iodepth={p.queue_depth}", "time_based=1", "continue_on_error=all",
        "log_unix_epoch=1", "log_avg_msec=1000", "log_hist_msec=1000", "thread=0", "",
    ]
    for k, ph in enumerate(plan.phases):
        if ph.load <= 0 or ph.duration_s < 1:
            continue
        r, w = rate_iops(p, ph.load)
        prefix = plan.log_dir / f"p{k}"
        lines += [f"[p{k}]", f"startdelay={ph.start_s:.3f}", f"runtime={ph.duration_s:.3f}",
                  f"rate_iops={r},{w}", f"write_bw_log={prefix}", f"write_iops_log={prefix}",
                  f"write_lat_log={prefix}", f"write_hist_log={prefix}", ""]
    return "\n".join(lines)


def plat_idx_to_val(idx: int) -> float:
    """Latency (ns) a histogram bin stands for (fio stat.c plat_idx_to_val, coarseness 0)."""
    if idx < (PLAT_VAL << 1):
        return float(idx)
    error_bits = (idx >> PLAT_BITS) - 1
    base = 1 << (error_bits + PLAT_BITS)
    k = idx % PLAT_VAL
    return base + (k + 0.5) * (1 << error_bits)


BIN_VALUES_NS = np.array([plat_idx_to_val(i) for i in range(PLAT_NR)])


def hist_quantile(counts: np.ndarray, q: float) -> float:
    """Quantile (ns) of a fio latency histogram; NaN when it is empty."""
    total = counts.sum()
    if total <= 0:
        return math.nan
    idx = int(np.searchsorted(np.cumsum(counts), q * total))
    return float(BIN_VALUES_NS[min(idx, len(counts) - 1)])


@dataclass
class Window:
    """One second of fio's logs: [t_end - 1, t_end) in epoch seconds, both directions."""

    t_end: float
    bw_kib: list[float] = field(default_factory=lambda: [0.0, 0.0])
    iops: list[float] = field(default_factory=lambda: [0.0, 0.0])
    lat_ns: list[float] = field(default_factory=lambda: [math.nan, math.nan])
    hist: np.ndarray = field(default_factory=lambda: np.zeros(PLAT_NR))


def _rows(path: Path) -> Iterable[list[str]]:
    try:
        text = path.read_text()
    except OSError:
        return
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0].isdigit():
            yield parts


def read_job_logs(log_dir: Path, prefix: str) -> list[Window]:
    """Join the bw, iops, lat and histogram logs of one fio job into per-second windows."""
    files = {kind: sorted(log_dir.glob(f"{prefix}_{kind}.*.log"))
             for kind in ("bw", "iops", "clat", "clat_hist")}
    samples: list[tuple[str, int, list[str]]] = []
    for kind, paths in files.items():
        for path in paths:
            samples += [(kind, int(r[0]), r) for r in _rows(path)]
    if not samples:
        return []
    ref = min(ms for _, ms, _ in samples)
    windows: dict[int, Window] = {}
    for kind, ms, row in samples:
        k = round((ms - ref) / 1000)
        w = windows.setdefault(k, Window(t_end=(ref + 1000 * k) / 1000))
        ddir = int(row[2]) if row[2].isdigit() else -1
        if kind == "clat_hist":
            counts = np.array([float(x) for x in row[3:3 + PLAT_NR]])
            w.hist[: len(counts)] += counts
            continue
        if ddir not in (0, 1):
            continue
        value = float(row[1])
        if kind == "bw":
            w.bw_kib[ddir] += value
        elif kind == "iops":
            w.iops[ddir] += value
        else:
            w.lat_ns[ddir] = value
    return [windows[k] for k in sorted(windows)]


def read_plan_logs(log_dir: Path) -> list[Window]:
    prefixes = sorted({p.name.split("_", 1)[0] for p in log_dir.glob("p*_bw.*.log")})
    out: list[Window] = []
    for prefix in prefixes:
        out += read_job_logs(log_dir, prefix)
    return sorted(out, key=lambda w: w.t_end)


@dataclass(frozen=True)
class Cell:
    """I/O of one disk over [t_start_s, t_end_s) of the run (seconds since its start)."""

    t_start_s: float
    t_end_s: float
    read_mb_s: float
    write_mb_s: float
    read_iops: float
    write_iops: float
    latency_ms: float
    latency_p99_ms: float


def rebin(windows: list[Window], t0: float, duration_s: float, step_s: float = 1.0) -> list[Cell]:
    """fio's windows re-cut onto the run's grid, weighting each by its overlap with a cell."""
    n = max(1, math.ceil(duration_s / step_s))
    acc: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    hists: dict[int, np.ndarray] = {}
    for w in windows:
        a, b = w.t_end - 1.0 - t0, w.t_end - t0
        for k in range(max(0, math.floor(a / step_s)), min(n, math.ceil(b / step_s))):
            lo, hi = max(a, k * step_s), min(b, (k + 1) * step_s)
            f = max(0.0, hi - lo) / step_s
            if f <= 0:
                continue
            c = acc[k]
            c["r_mb"] += f * w.bw_kib[0] * 1024 / 1e6
            c["w_mb"] += f * w.bw_kib[1] * 1024 / 1e6
            c["r_io"] += f * w.iops[0]
            c["w_io"] += f * w.iops[1]
            for d in (0, 1):
                if not math.isnan(w.lat_ns[d]) and w.iops[d] > 0:
                    c["lat_w"] += f * w.iops[d]
                    c["lat_sum"] += f * w.iops[d] * w.lat_ns[d]
            hists[k] = hists.get(k, np.zeros(PLAT_NR)) + f * w.hist
    cells = []
    for k in range(n):
        c = acc.get(k, {})
        # no completed I/O in the cell: latency 0 (its weight, the IOPS, is 0 too)
        lat = c.get("lat_sum", 0.0) / c["lat_w"] / 1e6 if c.get("lat_w") else 0.0
        p99 = hist_quantile(hists[k], 0.99) / 1e6 if k in hists else math.nan
        p99 = 0.0 if math.isnan(p99) else p99
        cells.append(Cell(k * step_s, min((k + 1) * step_s, duration_s), c.get("r_mb", 0.0),
                          c.get("w_mb", 0.0), c.get("r_io", 0.0), c.get("w_io", 0.0), lat, p99))
    return cells
