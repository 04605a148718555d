"""Nodes the harness reaches only over SSH: libvirt node VMs and existing servers.

What the namespace lab does with local paths, these backends do on the nodes: fio and the
history writers run there, their logs stream back as they are written (a node that loses
power keeps its acknowledgements on the harness), one poll is ``node_probe.py`` on each
node (new client log lines, brick processes alive, heal index entries), and the paths the
harness hands out (``mount_path``, ``data_brick_paths``) are local mirrors filled over SSH
when the history checker reads them. A backend says where things are on its nodes (the
``node_*`` methods) and which hosts it cannot reach now; everything else is here, once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from hcisim.lab.backend import Sample, Workload
from hcisim.lab.errors import LabError
from hcisim.lab.fio import job_file
from hcisim.lab.node import SshShell, checked, put_file, sh
from hcisim.lab.probe import BrickSlot, conn_events, pending_and_connected
from hcisim.scenario import Fault, Scenario

HERE = Path(__file__).resolve().parent
NODE_TOOLS = {"history_writer.py": HERE / "history_writer.py",
              "healinfo.py": HERE / "healinfo.py",
              "node_probe.py": HERE / "node_probe.py"}
_GLOB = re.compile(r"^[A-Za-z0-9._*-]+$")
T = TypeVar("T")
R = TypeVar("R")


def parallel(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``fn`` over ``items`` in threads (one per item), results in order."""
    todo = list(items)
    with ThreadPoolExecutor(max(1, len(todo))) as pool:
        return [f.result() for f in [pool.submit(fn, i) for i in todo]]


def fetch_tar(shell: SshShell, directory: str, names: list[str], dest: Path,
              timeout: float = 120.0) -> None:
    """Copy files ``names`` (globs) under ``directory`` on the node into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    bad = [n for n in names if not _GLOB.match(n)]
    if bad:
        raise ValueError(f"unsafe file patterns {bad}")
    res = shell.run(sh(f"cd {shlex.quote(directory)} 2>/dev/null && "
                       f"tar cf - $(ls -d {' '.join(names)} 2>/dev/null) 2>/dev/null || true"),
                    timeout)
    subprocess.run(["tar", "xf", "-", "-C", str(dest)], input=res.data, capture_output=True,
                   timeout=timeout, check=False)


class RemoteNodes:
    """Workloads, polls and the checker's views for a backend whose nodes are over SSH.

    The backend sets ``scenario``, ``view_dir`` (local) and ``node_dir``/``node_run`` (on
    the nodes) and implements the ``node_*`` methods and ``active_faults``."""

    scenario: Scenario
    node_dir: str  # where the node tools are copied
    node_run: str  # per-workload run directories

    _lock: threading.Lock

    def _remote_init(self) -> None:
        self._streams: list[subprocess.Popen[bytes]] = []
        self._workloads: list[Workload] = []
        self._fetched: set[str] = set()
        self._clock_offsets: dict[str, float] = {}

    # --- what each backend says ----------------------------------------------------------
    @property
    def active_faults(self) -> list[Fault]:
        raise NotImplementedError

    @property
    def view_dir(self) -> Path:
        """Local mirrors of the nodes' mounts and bricks, for the history checker."""
        raise NotImplementedError

    def node(self, host: str) -> SshShell:
        raise NotImplementedError

    def node_mount(self, host: str, volume: str) -> str:
        raise NotImplementedError

    def node_brick(self, host: str, volume: str) -> str:
        """The brick directory of ``volume`` on ``host``."""
        raise NotImplementedError

    def node_client_log(self, host: str, volume: str) -> str:
        raise NotImplementedError

    def node_brick_pidfile(self, host: str, volume: str) -> str:
        """The pid file glusterd keeps for the brick of ``volume`` on ``host``."""
        raise NotImplementedError

    def node_hosts(self) -> list[str]:
        return list(self.scenario.host_names)

    def put_tools(self, host: str) -> None:
        for name, src in NODE_TOOLS.items():
            put_file(self.node(host), f"{self.node_dir}/{name}", src.read_bytes())

    # --- workloads -----------------------------------------------------------------------
    def _node_path(self, w: Workload, local: Path) -> str:
        """A path under mount_path(host, vol) as the node sees it."""
        rel = local.relative_to(self.mount_path(w.host, w.volume))
        return f"{self.node_mount(w.host, w.volume)}/{rel}"

    def start_workloads(self, workloads: list[Workload]) -> None:
        self._workloads = list(workloads)
        self._fetched.clear()
        for w in workloads:
            run = f"{self.node_run}/{w.key}"
            script = [f"mkdir -p {run}"]
            if w.fio.phases:
                node_fio = dataclasses.replace(w.fio, path=Path(self._node_path(w, w.fio.path)),
                                               log_dir=Path(run))
                put_file(self.node(w.host), f"{run}/job.fio", job_file(node_fio).encode())
                script += [f"truncate -s {w.fio.size_bytes} {shlex.quote(str(node_fio.path))}",
                           f"setsid nohup fio --output-format=json --output={run}/fio.json "
                           f"{run}/job.fio > {run}/fio.out 2>&1 < /dev/null & "
                           f"echo $! > {run}/fio.pid"]
            args = w.writer_args(f"{self.node_mount(w.host, w.volume)}/{w.history_relname}",
                                 f"{run}/history.log")
            writer = (f"echo $$ > {run}/writer.pid; exec python3 {self.node_dir}/"
                      f"history_writer.py {' '.join(shlex.quote(a) for a in args)}")
            script.append(f"setsid nohup sh -c {shlex.quote(writer)} > {run}/writer.out 2>&1 "
                          "< /dev/null &")
            checked(self.node(w.host), sh("set -e\n" + "\n".join(script) + "\n"),
                    f"start workload {w.key}")
            # Stream the writer's log back as it grows: a node that loses power loses the
            # lines still in its page cache, the harness keeps them. Best effort: the node's
            # own copy is fetched at the end and the longer of the two wins.
            w.history_log.parent.mkdir(parents=True, exist_ok=True)
            with open(w.history_log, "ab") as out:
                self._streams.append(subprocess.Popen(
                    [*self.node(w.host).ssh_argv(),
                     f"tail -n +1 -F {run}/history.log 2>/dev/null"],
                    stdout=out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                    start_new_session=True))

    def stop_workloads(self, grace_s: float = 15.0) -> None:
        """TERM fio and the writers on the nodes, then fetch fio logs and whole histories."""
        def stop(host: str) -> None:
            keys = [w.key for w in self._workloads if w.host == host]
            pids = " ".join(f"{self.node_run}/{k}/fio.pid {self.node_run}/{k}/writer.pid"
                            for k in keys)
            with contextlib.suppress(LabError):
                self.node(host).run(sh(
                    f"for f in {pids}; do [ -s $f ] && kill -TERM $(cat $f) 2>/dev/null; "
                    f"done; sleep 2; for f in {pids}; do [ -s $f ] && kill -KILL $(cat $f) "
                    "2>/dev/null; done; true"), 60)

        parallel(stop, sorted({w.host for w in self._workloads} - self.unreachable()))
        time.sleep(min(grace_s, 2.0))  # the streams deliver the writers' last lines
        self._stop_streams()
        for w in self._workloads:
            if w.host in self.unreachable():
                continue
            fetch_tar(self.node(w.host), f"{self.node_run}/{w.key}", ["*"], w.fio.log_dir)
            node_log = w.fio.log_dir / "history.log"
            if node_log.exists() and node_log.stat().st_size > w.history_log.stat().st_size:
                w.history_log.write_bytes(node_log.read_bytes())  # the stream was cut

    def _stop_streams(self) -> None:
        for p in self._streams:
            if p.poll() is None:
                p.kill()
            p.wait()
        self._streams.clear()

    def unreachable(self) -> set[str]:
        """Hosts the harness cannot reach over SSH now (a fault holds them)."""
        return {f.target for f in self.active_faults if f.traits.scope == "host" or (
            f.traits.scope == "nic" and not f.traits.slows and "management" in f.networks)}

    # --- observe -------------------------------------------------------------------------
    def brick_slots(self) -> list[BrickSlot]:
        return [BrickSlot(v.name, i, b.host, v.is_arbiter(b.host))
                for v in self.scenario.volumes for i, b in enumerate(v.bricks)]

    def _probe_argv(self, host: str) -> str:
        logs = [f"{v.name}={self.node_client_log(host, v.name)}" for v in self.scenario.volumes]
        bricks = [f"{v.name}:{i}:{len(v.bricks)}:{self.node_brick(host, v.name)}:"
                  f"{self.node_brick_pidfile(host, v.name)}"
                  for v in self.scenario.volumes for i, b in enumerate(v.bricks)
                  if b.host == host]
        return (f"python3 {self.node_dir}/node_probe.py {self.node_dir}/probe-{host}.json "
                f"{shlex.join(logs)} -- {shlex.join(bricks)}")

    def _probe(self, host: str) -> tuple[str, dict[str, Any] | None]:
        t_send = time.time()
        try:
            proc = self.node(host).run(sh(self._probe_argv(host)), 15)
            ans = json.loads(proc.stdout) if proc.ok else None
        except (LabError, ValueError):
            return host, None
        if ans is not None:
            # A synced clock reads between send and receive; only time outside that window
            # is clock error (emulated Python start-up makes the window wide, not biased).
            node_t, t_recv = float(ans["t"]), time.time()
            excess = max(0.0, t_send - node_t, node_t - t_recv)
            with self._lock:
                self._clock_offsets[host] = max(self._clock_offsets.get(host, 0.0), excess)
        return host, ans

    def observe(self) -> Sample:
        hosts = [h for h in self.node_hosts() if h not in self.unreachable()]
        answers = {h: a for h, a in parallel(self._probe, hosts) if a is not None}
        pending, connected = pending_and_connected(answers, self.brick_slots())
        return Sample(time.time(), conn_events(answers), pending, connected)

    def clock_errors(self) -> dict[str, float]:
        """The most a node's clock was seen off the harness's (s), per host."""
        with self._lock:
            return {h: round(o, 4) for h, o in self._clock_offsets.items()}

    # --- what the checker reads ----------------------------------------------------------
    def mount_path(self, host: str, volume: str) -> Path:
        return self.view_dir / "mounts" / host / volume

    def _brick_view(self, host: str, volume: str) -> Path:
        return self.view_dir / "bricks" / host / volume

    def _fetch_volume(self, volume: str) -> None:
        """Copy the history segments of ``volume`` from every brick and every client mount
        that answers into the local views (once per run)."""
        if volume in self._fetched:
            return
        names = [f"{rel}.*" for rel in self.history_names(volume)]
        if not names:
            return
        down = self.unreachable()
        for b in self.scenario.volume(volume).bricks:
            if b.host not in down:
                fetch_tar(self.node(b.host), self.node_brick(b.host, volume), names,
                          self._brick_view(b.host, volume))
        for h in self.node_hosts():
            if h not in down:
                fetch_tar(self.node(h), self.node_mount(h, volume), names,
                          self.mount_path(h, volume))
        self._fetched.add(volume)

    def history_names(self, volume: str) -> list[str]:
        """The write histories on ``volume`` (``relname``: files ``relname.N``)."""
        return [w.history_relname for w in self._workloads if w.volume == volume]

    def data_brick_paths(self, volume: str) -> list[Path]:
        self._fetch_volume(volume)
        return [self._brick_view(b.host, volume)
                for b in self.scenario.volume(volume).data_bricks]
