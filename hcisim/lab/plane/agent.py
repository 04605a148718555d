"""The per-host agent (vdsm's role): one process in each host's namespace.

It listens on the host's MANAGEMENT address only (vdsm's port 54321), so a host whose
management link is cut stops answering the engine although its storage and its VMs go
on. One JSON request per connection, one JSON answer:

- ``{"op": "getStats"}``: the host and its VMs with their states (qemu's run state over
  QMP: running, paused, io-error...; ``down`` with exit time and code once qemu is gone);
- ``{"op": "create", "vm", "volume", "lease", "options"}``: start and boot a guest
  (:mod:`hcisim.lab.guests`), holding its VM lease through the host's sanlock daemon when
  ``lease`` is true; the answer comes when the guest's agent is ready;
- ``{"op": "destroy", "vm"}``: stop the guest.

Like vdsm, a restarted agent (soft fencing) does not touch running VMs: it finds them
again from their pid files and reconnects to their QMP sockets. Every QMP event and every
start and exit goes to ``<host>/plane/events.jsonl`` (epoch times), which the harness reads
for ``vm_state`` even when the host has lost power since.

Run as ``python -m hcisim.lab.plane.agent LAB_DIR HOST [--io-timeout S] [--leased VM...]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcisim.lab.errors import LabError
from hcisim.lab.guests.agentlink import AgentLink
from hcisim.lab.guests.image import ensure_image
from hcisim.lab.guests.qemu import Guest, guest_pids
from hcisim.lab.guests.qmp import QmpEvent, QmpSession
from hcisim.lab.guests.resume import mount_writable
from hcisim.lab.netns.layout import LabLayout, read_state
from hcisim.lab.plane import sanlock as sl
from hcisim.lab.plane.leased import launch_guest
from hcisim.lab.plane.sanlock import LeaseStore, SanlockHost
from hcisim.lab.process import alive, read_pid

PORT = 54321  # vdsm


def layout_of(lab_dir: Path) -> LabLayout:
    st = read_state(lab_dir) or {}
    index, hosts = st.get("index"), st.get("hosts")
    if not isinstance(index, int) or not isinstance(hosts, list):
        raise LabError("find the lab", f"no lab state in {lab_dir}")
    return LabLayout.make(lab_dir.name, index, [str(h) for h in hosts], lab_dir.parent)


class LabView:
    """What a guest needs of the lab, built from the lab's state file (no backend object)."""

    def __init__(self, lab: LabLayout) -> None:
        self.lab_ = lab

    def mount_path(self, host: str, volume: str) -> Path:
        return self.lab_.mount(host, volume)


def reattach_agent_link(run_dir: Path) -> AgentLink | None:
    """The guest's agent port again after this agent restarted (soft fencing): its history
    goes on in the same ``history.log`` under the boot its first line names. Needed, not
    only for the history: while nobody reads the port, qemu takes no more of the guest's
    lines and the guest's agent blocks on its next one, writes included (measured: a
    guest's records stopped for the 3 s its port was unread, and went on when read)."""
    log = run_dir / "history.log"
    boot = ""
    with contextlib.suppress(OSError), log.open() as f:
        first = f.readline().split()
        if len(first) == 3 and first[0] == "B" and first[1] != "-":
            boot = first[1]
    link = AgentLink(run_dir / "agent.sock", log, boot)
    try:
        link.connect(timeout=5.0)
    except OSError:
        return None
    return link


def events_file(host_dir: Path) -> Path:
    return host_dir / "plane" / "events.jsonl"


@dataclass
class VmRecord:
    volume: str
    guest: Guest | None  # None: found again after an agent restart
    pid: int | None
    qmp: QmpSession | None = None
    exit_at: float | None = None
    exit_code: int | None = None
    ready_at: float | None = None  # the guest's agent answered (booted)
    link: AgentLink | None = None  # the guest's port again, after an agent restart


class HostAgent:
    """The agent's state: the VMs it runs and how to reach them."""

    def __init__(self, view: LabView, host: str, store: LeaseStore | None,
                 lease_volume: str = "", engine_store: LeaseStore | None = None) -> None:
        self.view = view
        self.host = view.lab_.host(host)
        self.host_id = [h.name for h in view.lab_.hosts].index(host) + 1
        self.store = store
        self.engine_store = engine_store  # the hosted engine VM's lease (its own lockspace)
        self.lease_volume = lease_volume
        self.vms: dict[str, VmRecord] = {}
        self.lock = threading.Lock()
        self.log = events_file(self.host.dir)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.started_at = time.time()

    def emit(self, t: float, vm: str, event: str, data: dict[str, Any] | None = None) -> None:
        line = json.dumps({"t": t, "host": self.host.name, "vm": vm, "event": event,
                           "data": data or {}})
        with self.lock, self.log.open("a") as f:
            f.write(line + "\n")

    def _on_event(self, vm: str) -> Callable[[QmpEvent], None]:
        def on_event(ev: QmpEvent) -> None:
            self.emit(ev.t, vm, ev.name, dict(ev.data))
        return on_event

    def recover(self) -> None:
        """VMs that run on this host from before an agent restart (their pid files)."""
        for pf in sorted(self.host.piddir.glob("guest-*.pid")):
            vm = pf.stem.removeprefix("guest-")
            if not guest_pids([pf]):
                continue
            qmp = QmpSession(vm, self._on_event(vm))
            with contextlib.suppress(LabError):
                qmp.connect(self.host.dir / "guests" / vm / "qmp.sock", timeout=5)
            link = reattach_agent_link(self.host.dir / "guests" / vm)
            self.vms[vm] = VmRecord("", None, read_pid(pf), qmp, ready_at=time.time(),
                                    link=link)
            self.emit(time.time(), vm, "RECOVERED", {"pid": read_pid(pf),
                                                     "agent_port": link is not None})

    def status(self, vm: str, rec: VmRecord) -> str:
        if rec.exit_at is not None:
            return "down"
        qmp = rec.guest.qmp if rec.guest is not None else rec.qmp
        if qmp is not None:
            with contextlib.suppress(LabError, Exception):
                return str(qmp.execute("query-status", timeout=2)["status"])
        return "running" if rec.pid is not None and alive(rec.pid) else "down"

    def stats(self) -> dict[str, Any]:
        vms = {vm: {"status": self.status(vm, rec), "pid": rec.pid, "exit_at": rec.exit_at,
                    "exit_code": rec.exit_code, "ready": rec.ready_at is not None}
               for vm, rec in list(self.vms.items())}
        return {"host": self.host.name, "agent_started_at": self.started_at, "vms": vms}

    def create(self, vm: str, volume: str, lease: bool, options: dict[str, Any]) -> dict[str, Any]:
        rec = self.vms.get(vm)
        if rec is not None and rec.exit_at is None:
            return {"ok": False, "error": f"{vm} runs on {self.host.name} already"}
        store = self.lease_store(vm) if lease else None
        if lease and store is None:
            return {"ok": False, "error": f"{self.host.name} has no lockspace for {vm}'s lease"}
        t = time.time()
        try:
            guest = launch_guest(self.view, vm, self.host.name, volume,
                                 store, ensure_image(),
                                 on_event=self._on_event(vm),
                                 **options)
        except LabError as exc:
            self.emit(time.time(), vm, "START_FAILED", {"error": exc.reason})
            return {"ok": False, "error": exc.reason}
        self.vms[vm] = VmRecord(volume, guest, guest.pid)
        # t: the engine's request; qemu runs from running_at (a leased guest's launch first
        # waits for sanlock to grant the lease)
        self.emit(t, vm, "LAUNCHED", {"pid": guest.pid, "lease": lease,
                                      "running_at": time.time(), "boot": guest.spec.boot})
        try:
            boot_s = guest.boot()
        except LabError as exc:
            return {"ok": False, "error": exc.reason}
        self.vms[vm].ready_at = time.time()
        self.emit(self.vms[vm].ready_at or 0.0, vm, "UP", {"boot_s": boot_s})
        return {"ok": True, "boot_s": boot_s, "pid": guest.pid}

    def lease_store(self, vm: str) -> LeaseStore | None:
        """The lockspace holding ``vm``'s lease: the hosted engine's or the VM leases'."""
        for store in (self.engine_store, self.store):
            if store is not None and vm in store.vms:
                return store
        return None

    def destroy(self, vm: str) -> dict[str, Any]:
        rec = self.vms.get(vm)
        if rec is None or rec.guest is None:
            return {"ok": False, "error": f"{vm} is not run by this agent on {self.host.name}"}
        rec.guest.stop()
        return {"ok": True}

    def watch(self, every_s: float = 0.1) -> None:
        """Notice qemu exits (sanlock killing a lease holder, a crash, a destroy)."""
        while True:
            for vm, rec in list(self.vms.items()):
                if rec.exit_at is not None:
                    continue
                if rec.guest is not None:
                    done = rec.guest.proc is not None and rec.guest.proc.poll() is not None
                    code = rec.guest.proc.returncode if rec.guest.proc is not None else None
                else:
                    done = rec.pid is None or not alive(rec.pid)
                    code = None
                if done:
                    rec.exit_at, rec.exit_code = time.time(), code
                    self.emit(rec.exit_at, vm, "PROCESS_EXIT", {"returncode": code})
            time.sleep(every_s)

    def keep_lockspace(self, every_s: float = 5.0) -> None:
        """Rejoin the lockspace when sanlock dropped it (renewals failed while the storage
        was cut) and the storage works again, as vdsm's domain monitor re-acquires its host
        id. Joining blocks for a few io_timeouts; starts meanwhile are refused."""
        if self.store is None or not self.lease_volume:
            return
        sh = SanlockHost(self.host.name, self.host.netns, self.host.dir)
        mount = self.view.mount_path(self.host.name, self.lease_volume)
        while True:
            time.sleep(every_s)
            with contextlib.suppress(LabError):
                if not sl.lockspaces(sh) and mount_writable(mount, self.host.name):
                    sl.add_lockspace(sh, self.store, mount, self.host_id)
                    self.emit(time.time(), "", "LOCKSPACE_JOINED", {})

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "getStats":
            return self.stats()
        if op == "create":
            return self.create(str(req["vm"]), str(req["volume"]), bool(req.get("lease")),
                               dict(req.get("options") or {}))
        if op == "destroy":
            return self.destroy(str(req["vm"]))
        return {"ok": False, "error": f"unknown op {op!r}"}


def read_events(host_dir: Path) -> list[dict[str, Any]]:
    """Every event an agent of this host wrote (across restarts), in file order."""
    path = events_file(host_dir)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def qmp_events(host_dir: Path, vm: str) -> list[QmpEvent]:
    """The QMP-style events of ``vm`` on this host (for :func:`vm_state_rows`)."""
    return [QmpEvent(float(e["t"]), str(e["event"]), e.get("data") or {})
            for e in read_events(host_dir) if e.get("vm") == vm]


def serve(agent: HostAgent, addr: str, port: int = PORT) -> None:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            try:
                req = json.loads(self.rfile.readline() or b"{}")
                answer = agent.handle(req if isinstance(req, dict) else {})
            except (ValueError, KeyError) as exc:
                answer = {"ok": False, "error": f"bad request: {exc}"}
            self.wfile.write(json.dumps(answer).encode() + b"\n")

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    threading.Thread(target=agent.watch, daemon=True).start()
    threading.Thread(target=agent.keep_lockspace, daemon=True).start()
    with Server((addr, port), Handler) as server:
        ready = agent.host.dir / "plane" / "agent.ready"
        ready.write_text(f"{addr}:{port}\n")  # the harness waits for this file
        server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hcisim.lab.plane.agent")
    p.add_argument("lab_dir", type=Path)
    p.add_argument("host")
    p.add_argument("--io-timeout", type=int, default=10)
    p.add_argument("--leased", nargs="*", default=[])
    p.add_argument("--lease-volume", default="")
    p.add_argument("--engine-vm", default="", help="the hosted engine VM (its own lease)")
    p.add_argument("--port", type=int, default=PORT)
    args = p.parse_args(argv)
    try:
        view = LabView(layout_of(args.lab_dir))
        store = LeaseStore(tuple(args.leased), args.io_timeout) if args.leased else None
        engine_store = LeaseStore((args.engine_vm,), args.io_timeout, sl.ENGINE_LOCKSPACE) \
            if args.engine_vm else None
        agent = HostAgent(view, args.host, store, args.lease_volume, engine_store)
        agent.recover()
        serve(agent, agent.host.mgmt_addr, args.port)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except KeyError as exc:
        print(f"error: no host {exc} in the lab", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
