"""A measured baseline: the scenario's VM I/O profiles with fio on each host's own mount,
next to what the model predicts for the same VMs on the scenario's hardware.

Short (``seconds``) and rate-limited to each profile's demand, so that it measures whether
the cluster carries the planned load rather than how much it can take; O_DIRECT like a VM
disk. One fio per host, one job per VM disk placed there, all hosts at once (they share
the storage network, as the VMs will).
"""

from __future__ import annotations

import json
import math
import shlex
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hcisim.accept.remote import RemoteError
from hcisim.accept.ssh import Shell
from hcisim.lab.fio import rate_iops
from hcisim.lab.hosts import find_mount
from hcisim.lab.node import put_file, sh
from hcisim.placement import initial_placement
from hcisim.scenario import IoProfile, Scenario, with_overrides


@dataclass(frozen=True)
class BaselineJob:
    vm: str
    host: str
    volume: str
    profile: IoProfile


@dataclass
class BaselineRow:
    """Model against measurement for one VM disk (MB/s are 10^6 B/s, latency in ms)."""

    vm: str
    host: str
    volume: str
    demand_mb_s: float
    model_mb_s: float | None
    measured_mb_s: float | None
    model_latency_ms: float | None
    measured_latency_ms: float | None
    model_p99_ms: float | None
    measured_p99_ms: float | None
    note: str = ""

    @property
    def error_pct(self) -> float | None:
        if self.model_mb_s is None or self.measured_mb_s is None or self.measured_mb_s == 0:
            return None
        return 100.0 * (self.model_mb_s - self.measured_mb_s) / self.measured_mb_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error_pct": self.error_pct}


def baseline_jobs(sc: Scenario, hosts: list[str]) -> list[BaselineJob]:
    """Each VM disk with an I/O profile, on the VM's host in the shared placement."""
    where = initial_placement(sc)
    return [BaselineJob(vm.name, host, d.volume, prof) for vm in sc.vms for d in vm.disks
            if (prof := sc.io_profile(d.io)) is not None
            and (host := where[vm.name]) is not None and host in hosts]


def job_text(jobs: list[tuple[BaselineJob, str]], seconds: int, size_mb: int) -> str:
    """A fio job file: one section per (job, file on the host's mount)."""
    lines = ["[global]", "ioengine=libaio", "direct=1", "time_based=1",
             f"runtime={seconds}", f"size={size_mb}M", "thread=0", ""]
    for job, path in jobs:
        p = job.profile
        r, w = rate_iops(p, 1.0)
        lines += [f"[{job.vm}.{job.volume}]", f"filename={path}",
                  f"rw={'randrw' if p.random else 'rw'}", f"rwmixread={round(p.read_pct)}",
                  f"bs={round(p.block_kib * 1024)}", f"iodepth={p.queue_depth}",
                  f"rate_iops={r},{w}", ""]
    return "\n".join(lines)


def parse_fio_json(text: str) -> dict[str, dict[str, float]]:
    """Per job name: read/write MB/s and IOPS, mean and p99 completion latency in ms."""
    start = text.find("{")
    data = json.loads(text[start:]) if start >= 0 else {}
    out = {}
    for job in data.get("jobs", []):
        stats: dict[str, float] = {}
        lat_sum = n_ios = 0.0
        p99 = 0.0
        for d in ("read", "write"):
            s = job.get(d, {})
            stats[f"{d}_mb_s"] = float(s.get("bw_bytes", 0)) / 1e6
            stats[f"{d}_iops"] = float(s.get("iops", 0.0))
            clat = s.get("clat_ns", {})
            n = float(s.get("total_ios", 0))
            lat_sum += float(clat.get("mean", 0.0)) * n
            n_ios += n
            pct = clat.get("percentile", {})
            p99 = max(p99, float(pct.get("99.000000", 0.0)))
        stats["latency_ms"] = lat_sum / n_ios / 1e6 if n_ios else math.nan
        stats["p99_ms"] = p99 / 1e6 if n_ios else math.nan
        out[str(job.get("jobname", ""))] = stats
    return out


def measure(shells: dict[str, Shell], jobs: list[BaselineJob], own: dict[str, list[str]],
            run_id: str, seconds: int, size_mb: int) -> dict[tuple[str, str], dict[str, float]]:
    """Run fio on every host at once; (vm, volume) -> measured stats."""
    results: dict[tuple[str, str], dict[str, float]] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def on_host(host: str) -> None:
        shell = shells[host]
        mine = [j for j in jobs if j.host == host]
        placed = []
        dirs = set()
        for j in mine:
            mount = find_mount(shell, j.volume, own.get(host, []))
            if mount is None:
                raise RemoteError(f"{shell.target.label}: volume {j.volume} is not mounted")
            d = f"{mount}/.hcisim-accept/{run_id}"
            dirs.add(d)
            placed.append((j, f"{d}/baseline-{j.vm}.img"))
        jobfile = f"/tmp/hcisim-accept-{run_id}-{host}.fio"
        put_file(shell, jobfile, job_text(placed, seconds, size_mb).encode())
        mk = " ".join(shlex.quote(d) for d in dirs)
        tops = " ".join(shlex.quote(str(Path(d).parent)) for d in dirs)
        res = shell.run(sh(f"mkdir -p {mk} && fio --output-format=json {jobfile}; r=$?; "
                        f"rm -rf {jobfile} {mk}; rmdir {tops} 2>/dev/null; exit $r"),
                        timeout_s=seconds + 120 + size_mb / 20)
        if not res.ok:
            raise RemoteError(f"{shell.target.label}: fio failed (rc {res.rc}): "
                              f"{(res.stderr.strip().splitlines() or [''])[-1][:200]}")
        stats = parse_fio_json(res.stdout)
        with lock:
            for j in mine:
                results[(j.vm, j.volume)] = stats.get(f"{j.vm}.{j.volume}", {})

    def guarded(host: str) -> None:
        try:
            on_host(host)
        except Exception as exc:  # reported per host in the baseline table
            with lock:
                errors.append(str(exc))

    threads = [threading.Thread(target=guarded, args=(h,)) for h in {j.host for j in jobs}]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RemoteError("; ".join(sorted(errors)))
    return results


def model_prediction(sc: Scenario, seconds: float) -> dict[str, dict[str, Any]] | None:
    """Per VM: the model's throughput and latency for the steady load (no faults); None
    when the model is not available in this installation."""
    try:
        from hcisim.observations import summarize
        from hcisim.runner import EngineError, engine_observations
    except ImportError:
        return None
    steady = with_overrides(sc, {"faults": [], "operations": [], "claims": [],
                                 "phases": [{"start_s": 0.0, "load": 1.0}],
                                 "duration_s": max(60.0, seconds)})
    try:
        obs = engine_observations(steady, "model")
    except (ImportError, EngineError, NotImplementedError):
        return None
    vms: dict[str, dict[str, Any]] = summarize(obs, [v.name for v in sc.vms], [])["vms"]
    return vms


def compare(jobs: list[BaselineJob], measured: dict[tuple[str, str], dict[str, float]],
            model: dict[str, dict[str, Any]] | None) -> list[BaselineRow]:
    rows = []
    for j in jobs:
        m = measured.get((j.vm, j.volume)) or {}
        p = (model or {}).get(j.vm)
        got = m.get("read_mb_s", 0.0) + m.get("write_mb_s", 0.0) if m else None
        rows.append(BaselineRow(
            j.vm, j.host, j.volume, j.profile.demand_mb_s,
            None if p is None else float(p["read_mb_s"]) + float(p["write_mb_s"]),
            got, None if p is None else p.get("mean_latency_ms"),
            m.get("latency_ms") if m else None,
            None if p is None else p.get("p99_latency_ms"), m.get("p99_ms") if m else None,
            "" if model is not None else "model not available"))
    return rows
