"""The write history on existing servers: the lab's history writer, run over SSH.

Each scenario VM disk gets a writer on its host's mount of the disk's volume (the lab's
``history_writer.py``, standard library only, copied to the server): numbered records,
each fsync'ed before it counts as acknowledged, times logged locally on the server. The
writer stops by itself at ``--until`` (so it cannot outlive a dead controller by more than
that). Afterwards the logs and the record files on every data brick come back over SSH and
the lab's checker proves each acknowledged record is on the bricks, byte for byte.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hcisim.accept.faults import FaultRun
from hcisim.accept.remote import RemoteError, find_mount, own_addresses
from hcisim.accept.ssh import Shell
from hcisim.lab import history_writer
from hcisim.lab.history import CheckResult, History, bad_intervals, check, parse_history, per_second
from hcisim.lab.node import fetch_file, put_file, sh
from hcisim.placement import initial_placement

RECORD_BYTES = 64
PER_FILE = 65536
INTERVAL_S = 0.02
STALL_S = 1.0  # an fsync longer than this counts as an I/O stall


@dataclass(frozen=True)
class RemoteWriter:
    vm: str
    host: str
    volume: str
    mount: str
    relname: str  # path of the record files relative to the volume root
    log: str
    pidfile: str


def placements(run: FaultRun, skip_host: str | None) -> list[tuple[str, str, str]]:
    """(vm, host, volume) for each VM disk, on the VM's host in the shared placement."""
    where = initial_placement(run.sc)
    return [(vm.name, host, d.volume) for vm in run.sc.vms for d in vm.disks
            if (host := where[vm.name]) is not None and host != skip_host
            and host in run.shells]


def start_writers(run: FaultRun, tag: str, where: list[tuple[str, str, str]],
                  until_epoch: float) -> list[RemoteWriter]:
    script = Path(history_writer.__file__).read_bytes()
    pushed: set[str] = set()
    writers = []
    for vm, host, volume in where:
        shell = run.shells[host]
        mount = find_mount(shell, volume, own_addresses(run.volumes, run.uuids.get(host)))
        if mount is None:
            raise RemoteError(f"{shell.target.label}: volume {volume} is not mounted there "
                              "(the write history needs the host's FUSE mount)")
        base = f"/tmp/hcisim-accept-{run.run_id}-{host}"
        if host not in pushed:
            put_file(shell, f"{base}-writer.py", script)
            pushed.add(host)
        rel = f".hcisim-accept/{run.run_id}/{tag}-{vm}-{volume}"
        w = RemoteWriter(vm, host, volume, mount, rel, f"{base}-{tag}-{vm}-{volume}.log",
                         f"{base}-{tag}-{vm}-{volume}.wpid")
        stem = f"{mount}/{rel}"
        cmd = (f"mkdir -p {shlex.quote(str(Path(stem).parent))} && "
               f"S=$(command -v setsid || true); $S nohup python3 {shlex.quote(base)}-writer.py "
               f"--stem {shlex.quote(stem)} --name {shlex.quote(vm)} --log {shlex.quote(w.log)} "
               f"--interval {INTERVAL_S} --size {RECORD_BYTES} --per-file {PER_FILE} "
               f"--until {until_epoch:.3f} >/dev/null 2>&1 </dev/null & "
               f"echo $! > {shlex.quote(w.pidfile)}")
        if not shell.run(sh(cmd), 30).ok:
            raise RemoteError(f"{shell.target.label}: the history writer did not start")
        writers.append(w)
    return writers


def stop_writers(run: FaultRun, writers: list[RemoteWriter]) -> None:
    for w in writers:
        q = shlex.quote(w.pidfile)
        with contextlib.suppress(Exception):  # it stops by itself at --until anyway
            run.shells[w.host].run(
                sh(f"[ -s {q} ] && kill -TERM $(cat {q}) 2>/dev/null; rm -f {q}"), 30)


def _data_bricks(run: FaultRun, volume: str) -> list[tuple[Shell, str]]:
    sc_vol = run.sc.volume(volume)
    info = run.volumes[volume]
    data_hosts = {b.host for b in sc_vol.data_bricks}
    by_uuid = {u: h for h, u in run.uuids.items()}
    out = []
    for b in info.bricks:
        host = by_uuid.get(b.host_uuid)
        if host in data_hosts and not b.is_arbiter and host is not None:
            out.append((run.shells[host], b.path))
    return out


def _fetch_segments(shell: Shell, root: str, relname: str, segments: int, dest: Path) -> None:
    dest.joinpath(relname).parent.mkdir(parents=True, exist_ok=True)
    for seg in range(segments):
        data = fetch_file(shell, f"{root}/{relname}.{seg}")
        if data is not None:
            dest.joinpath(f"{relname}.{seg}").write_bytes(data)


def collect(run: FaultRun, writers: list[RemoteWriter],
            offsets: dict[str, float]) -> list[CheckResult]:
    """Fetch logs and record files, judge them, and add writes and vm_io rows."""
    results = []
    with tempfile.TemporaryDirectory(prefix="hcisim-accept-") as tmp:
        for i, w in enumerate(writers):
            shell = run.shells[w.host]
            raw = fetch_file(shell, w.log) or b""
            hist = parse_history(raw.decode(errors="replace"), w.vm)
            shift = run.t0 + offsets.get(w.host, 0.0)  # server epoch -> run time
            if not hist.attempts:
                continue
            segments = max(a.seq for a in hist.attempts) // PER_FILE + 1
            bricks = []
            for j, (bshell, root) in enumerate(_data_bricks(run, w.volume)):
                d = Path(tmp) / f"w{i}-b{j}"
                _fetch_segments(bshell, root, w.relname, segments, d)
                bricks.append(d)
            mount_copy = Path(tmp) / f"w{i}-m"
            _fetch_segments(shell, w.mount, w.relname, segments, mount_copy)
            res = check(hist, w.relname, RECORD_BYTES, PER_FILE, bricks, mount_copy)
            results.append(res)
            _record(run, w, hist, res, shift)
    return results


def _record(run: FaultRun, w: RemoteWriter, hist: History, res: CheckResult,
            shift: float) -> None:
    attempts = hist.attempts
    t_start = attempts[0].t_issue - shift
    t_end = max((a.t_end or a.t_issue) for a in attempts) - shift
    for a0, a1, acked, copies, lost, quorum in per_second(
            res, shift + math.floor(t_start), t_end - math.floor(t_start) + 1):
        t = math.floor(t_start)
        run.recorder.add("writes", w.vm, w.volume, t + a0, t + a1, acked, int(copies),
                         quorum, lost)
    bad = [(iv.start - shift, iv.end - shift, iv.status)
           for iv in bad_intervals(hist, STALL_S, t_end + shift)]
    cuts = sorted({t_start, t_end, *(b[0] for b in bad), *(b[1] for b in bad)})
    for lo, hi in itertools.pairwise(cuts):
        if hi <= lo:
            continue
        status = next((s for s0, s1, s in bad if s0 <= lo < s1), "ok")
        done = [a for a in attempts if a.ok and a.t_end is not None
                and lo <= a.t_end - shift < hi]
        lat = np.array([(a.t_end or 0.0) - a.t_issue for a in done]) * 1000.0
        mean = float(lat.mean()) if lat.size else math.nan
        p99 = float(np.quantile(lat, 0.99)) if lat.size else math.nan
        iops = len(done) / (hi - lo)
        run.recorder.add("vm_io", w.vm, w.volume, lo, hi, iops * RECORD_BYTES / 1e6, 0.0,
                         iops * RECORD_BYTES / 1e6, 0.0, iops, mean, p99, status)


def cleanup(run: FaultRun, writers: list[RemoteWriter]) -> None:
    """Remove the record files and logs this run left on the servers."""
    for w in writers:
        shell = run.shells[w.host]
        top = f"{shlex.quote(w.mount)}/.hcisim-accept"
        with contextlib.suppress(Exception):  # best effort: docs say what a run writes
            shell.run(sh(f"rm -rf {top}/{run.run_id} {shlex.quote(w.log)} "
                         f"/tmp/hcisim-accept-{run.run_id}-{w.host}-writer.py; "
                         f"rmdir {top} 2>/dev/null; true"), 60)
