"""ovirt-ha-agent's role in the lab: one process per host that keeps the hosted engine up.

``python -m hcisim.lab.plane.ha_agent LAB_DIR HOST`` runs in the host's namespace, reads the
harness's configuration (:func:`hcisim.lab.plane.hosted_engine.config_path`) and loops every
``agent_loop_s`` (ovirt-hosted-engine-ha: LOOP_DELAY 10 s), as ``HostedEngine._monitoring_loop``
and ``EngineStateMachine.refresh`` do:

- **collect**: every host's slot of the metadata file on the engine volume (through this
  host's own FUSE mount, O_DIRECT as the broker reads it: ``ha_agent/hosted-engine.metadata``,
  4 KiB per host id) and the local monitors: the gateway (a TCP probe of the management
  network's fixed address; a refused connection is an answer), the management interface's
  link (``IFF_UP`` and ``IFF_RUNNING``), the CPU the host's guests use (the engine VM not
  counted, ``cpu_load_no_engine``), free memory for the engine VM and the engine VM's
  state from this host's vdsm agent (``engine-health``: up/good once the guest booted);
- **alive hosts**: a host is alive when its ``host-ts`` changed since a snapshot of ours
  older than HOST_ALIVE_TIMEOUT_SECS (``host_data_wait_s``); before our history spans that
  long nobody is alive and nobody starts the engine (``EngineDown``: not enough data);
- **score**: :func:`hcisim.placement.hosted_engine.agent_score`, the model's implementation
  of ``EngineState.score`` (base 3400, network 1600, bridge 600, free memory 400, CPU load
  up to 1000, 50 per failed start, 0 after more than three);
- **decide** (``states.py``): the engine runs here: ``EngineUp`` (``EngineStop`` when an alive
  host scores ``takeover_margin`` more); it runs on an alive host elsewhere: ``EngineDown``;
  nobody runs it, we have the data and no alive host scores more: ``EngineStart``: ask the
  local vdsm agent to create the engine VM holding its sanlock lease on the engine volume
  (the engine lock: of equal hosts exactly one acquires it; sanlock's acquire waits while
  the old host's delta lease may still be alive) and count a failure as a retry;
- **publish** our slot: host id, host-ts, score, engine status, state.

The start runs in a thread (vdsm's create is asynchronous too), so the agent keeps
publishing while sanlock makes the start wait. State changes and starts go to
``<host>/plane/ha-agent.jsonl`` (epoch times).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import mmap
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hcisim.lab.errors import LabError
from hcisim.lab.guests.qemu import guest_pids
from hcisim.lab.plane.agent import PORT, layout_of
from hcisim.lab.plane.client import AgentUnreachable, call
from hcisim.lab.plane.sanlock import HA_AGENT_DIR
from hcisim.placement.hosted_engine import HostHealth, agent_free_ram_gib, agent_score
from hcisim.scenario.compute import HostedEngine

SLOT_BYTES = 4096  # constants.HOST_SEGMENT_BYTES: one block per host id, 0 is global
RETRY_MAX_ATTEMPTS = 3  # constants.ENGINE_RETRY_MAX_ATTEMPTS
RETRY_EXPIRATION_S = 600.0  # constants.ENGINE_RETRY_EXPIRATION_SECS
SIOCGIFFLAGS = 0x8913
IFF_UP, IFF_RUNNING = 0x1, 0x40


def metadata_path(mount: Path) -> Path:
    return mount / HA_AGENT_DIR / "hosted-engine.metadata"


def format_metadata(mount: Path, hosts: int) -> Path:
    """An empty metadata file: one zeroed slot per host id and the global slot 0."""
    path = metadata_path(mount)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(b"\0" * SLOT_BYTES * (hosts + 1))
    return path


def read_slots(path: Path, hosts: int) -> dict[int, dict[str, Any]]:
    """Every host's last published block (host id -> dict), read with O_DIRECT."""
    buf = mmap.mmap(-1, SLOT_BYTES * (hosts + 1))
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        os.preadv(fd, [buf], 0)
    finally:
        os.close(fd)
    out: dict[int, dict[str, Any]] = {}
    for hid in range(1, hosts + 1):
        raw = bytes(buf[hid * SLOT_BYTES:(hid + 1) * SLOT_BYTES]).rstrip(b"\0")
        with contextlib.suppress(ValueError):
            block = json.loads(raw) if raw else None
            if isinstance(block, dict):
                out[hid] = block
    return out


def write_slot(path: Path, hid: int, block: Mapping[str, Any]) -> None:
    data = json.dumps(block).encode()
    if len(data) >= SLOT_BYTES:
        raise LabError("publish the HA metadata", f"block of {len(data)} bytes too long")
    buf = mmap.mmap(-1, SLOT_BYTES)
    buf.write(data)
    fd = os.open(path, os.O_WRONLY | os.O_DIRECT | os.O_DSYNC)
    try:
        os.pwritev(fd, [buf], hid * SLOT_BYTES)
    finally:
        os.close(fd)


def link_up(ifname: str) -> bool:
    """The interface is up and has carrier (in the calling process's namespace)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14x", ifname.encode(), 0))
        except OSError:
            return False
    flags = int(struct.unpack("16sH14x", res)[1])
    return bool(flags & IFF_UP and flags & IFF_RUNNING)


def reachable(addr: str, port: int, timeout_s: float) -> bool:
    """A TCP probe (the network monitor's ``tcp`` mode): connected or refused is an answer."""
    try:
        with socket.create_connection((addr, port), timeout=timeout_s):
            return True
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Snapshot:
    t: float  # monotonic, when collected
    host_ts: dict[int, Any]


@dataclass
class AgentState:
    state: str = "ReinitializeFSM"
    retries: int = 0
    retry_at: float = 0.0
    history: list[Snapshot] = field(default_factory=list)  # newest first
    start_thread: threading.Thread | None = None
    start_result: bool | None = None
    cpu_mark: tuple[float, float] | None = None  # (monotonic, guest CPU seconds)


def alive_hosts(history: list[Snapshot], now_ts: dict[int, Any], alive_s: float, now: float
                ) -> set[int] | None:
    """``EngineStateMachine.refresh``: hosts whose host-ts changed since our newest snapshot
    older than ``alive_s``; None while no snapshot is that old (not enough data)."""
    historic = next((h for h in history if h.t + alive_s < now), None)
    if historic is None:
        return None
    return {hid for hid, ts in now_ts.items()
            if hid not in historic.host_ts or historic.host_ts[hid] != ts}


class HaAgent:
    def __init__(self, lab_dir: Path, host: str, cfg: Mapping[str, Any]) -> None:
        lab = layout_of(lab_dir)
        self.lab = lab
        self.h = lab.host(host)
        self.cfg = cfg
        self.hid = int(cfg["host_ids"][host])
        self.n = len(cfg["host_ids"])
        self.vm = str(cfg["vm"])
        self.md = metadata_path(lab.mount(host, str(cfg["volume"])))
        self.log = self.h.dir / "plane" / "ha-agent.jsonl"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.st = AgentState()
        self.last_score = 0

    def emit(self, event: str, **data: Any) -> None:
        line = json.dumps({"t": time.time(), "host": self.h.name, "event": event, **data})
        with self.log.open("a") as f:
            f.write(line + "\n")

    def vdsm(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        return call(self.h.mgmt_addr, PORT, request, 3.0, timeout_s)

    # --- local monitors ------------------------------------------------------------------
    def engine_health(self) -> tuple[dict[str, str], dict[str, Any]]:
        """(engine status, the vdsm agent's VMs) of this host."""
        try:
            vms: dict[str, Any] = self.vdsm({"op": "getStats"}, 10.0).get("vms") or {}
        except AgentUnreachable:
            return {"vm": "unknown", "health": "unknown", "detail": "vdsm unreachable"}, {}
        me = vms.get(self.vm)
        if self.st.start_thread is not None and self.st.start_thread.is_alive():
            return {"vm": "up", "health": "bad", "detail": "starting"}, vms
        if me is None or me.get("status") == "down":
            return {"vm": "down", "health": "bad", "detail": "down"}, vms
        good = me.get("status") == "running" and bool(me.get("ready"))
        return {"vm": "up", "health": "good" if good else "bad",
                "detail": str(me.get("status"))}, vms

    def cpu_load(self) -> float:
        """The host's guests' CPU use over the last loop, per core, without the engine VM."""
        files = [p for p in sorted(self.h.piddir.glob("guest-*.pid"))
                 if p.stem != f"guest-{self.vm}"]
        used = sum(cpu_seconds(pid) for pid in guest_pids(files))
        now = time.monotonic()
        mark, self.st.cpu_mark = self.st.cpu_mark, (now, used)
        if mark is None or now <= mark[0]:
            return 0.0
        cores = float(self.cfg["hosts"][self.h.name]["cores"])
        return max(0.0, used - mark[1]) / (now - mark[0]) / cores

    def health(self, vms: Mapping[str, Any], engine_here: bool) -> HostHealth:
        ram = self.cfg["vm_ram_gib"]
        on_host = {vm: float(ram.get(vm, 0.0)) for vm, v in vms.items()
                   if v.get("status") != "down"}
        now = time.monotonic()
        if self.st.retries and now - self.st.retry_at > RETRY_EXPIRATION_S:
            self.st.retries = 0
        gw = self.cfg["gateway"]
        return HostHealth(
            cpu_load=self.cpu_load(),
            free_ram_gib=agent_free_ram_gib(float(self.cfg["hosts"][self.h.name]["ram_gib"]),
                                            on_host, self.vm),
            gateway_ok=reachable(str(gw[0]), int(gw[1]), 1.0),
            bridge_ok=link_up(self.h.MGMT_IF),
            start_retries=self.st.retries, engine_here=engine_here)

    # --- one loop ------------------------------------------------------------------------
    def start_engine(self) -> None:
        """EngineStart: the local vdsm creates the engine VM, holding its lease."""
        def run() -> None:
            try:
                answer = self.vdsm(dict(self.cfg["create"]), 600.0)
            except AgentUnreachable as exc:
                answer = {"ok": False, "error": str(exc)}
            self.st.start_result = bool(answer.get("ok"))
            self.emit("START_DONE" if answer.get("ok") else "START_FAILED",
                      error=str(answer.get("error", ""))[-200:])

        self.st.start_result = None
        self.emit("START", score=self.last_score)
        self.st.start_thread = threading.Thread(target=run, daemon=True)
        self.st.start_thread.start()

    def step(self) -> None:
        now = time.monotonic()
        slots = read_slots(self.md, self.n)
        remote = {hid: b for hid, b in slots.items() if hid != self.hid}
        local, vms = self.engine_health()
        if self.st.start_result is False:  # a failed start: a retry, and the score drops
            self.st.retries += 1
            self.st.retry_at = now
            self.st.start_result = None
        engine_here = local["vm"] == "up"
        score = agent_score_of(self.cfg, self.health(vms, engine_here))
        self.last_score = score
        alive = alive_hosts(self.st.history, {h: b.get("host-ts") for h, b in remote.items()},
                            float(self.cfg["alive_s"]), now)
        self.st.history.insert(0, Snapshot(now, {h: b.get("host-ts") for h, b in remote.items()}))
        keep = 2 * float(self.cfg["alive_s"]) + 4 * float(self.cfg["loop_s"])
        self.st.history = [h for h in self.st.history if h.t > now - keep]
        alive_blocks = {h: remote[h] for h in (alive or set())}
        elsewhere = [b for b in alive_blocks.values()
                     if (b.get("engine-status") or {}).get("vm") == "up"]
        best_remote = max((int(b.get("score", 0)) for b in alive_blocks.values()), default=0)
        state = self.decide(local, engine_here, elsewhere, best_remote, score, alive)
        if state != self.st.state:
            self.emit("STATE", state=state, score=score, old=self.st.state,
                      alive=sorted(alive or ()))
            self.st.state = state
        write_slot(self.md, self.hid, {
            "host-id": self.hid, "hostname": self.h.name, "host-ts": round(time.time(), 3),
            "score": score, "engine-status": local, "state": state})

    def decide(self, local: Mapping[str, str], engine_here: bool,
               elsewhere: list[dict[str, Any]], best_remote: int, score: int,
               alive: set[int] | None) -> str:
        starting = self.st.start_thread is not None and self.st.start_thread.is_alive()
        if starting:
            return "EngineStarting"
        if engine_here:
            if local["health"] != "good":
                return "EngineStarting"
            if best_remote >= score + int(self.cfg["margin"]):  # EngineUp -> EngineStop
                self.emit("STOP", score=score, best_remote=best_remote)
                with contextlib.suppress(AgentUnreachable):
                    self.vdsm({"op": "destroy", "vm": self.vm}, 30.0)
                return "EngineStop"
            return "EngineUp"
        if local["vm"] == "unknown":
            return "UnknownLocalVmState"
        if elsewhere:
            return "EngineDown"  # the engine runs on an alive host
        if alive is None:
            return "EngineDown"  # not enough data to decide which hosts are alive
        if score > 0 and best_remote <= score:
            self.start_engine()
            return "EngineStart"
        return "EngineDown"

    def run(self) -> None:
        loop = float(self.cfg["loop_s"])
        ready = self.h.dir / "plane" / "ha-agent.ready"
        self.emit("AGENT_START")
        while True:
            t = time.monotonic()
            try:
                self.step()
            except (OSError, LabError) as exc:  # storage trouble: try again next loop
                self.emit("LOOP_FAILED", error=str(exc)[-200:])
            ready.touch()
            time.sleep(max(0.0, loop - (time.monotonic() - t)))


def agent_score_of(cfg: Mapping[str, Any], health: HostHealth) -> int:
    he = HostedEngine(base_score=int(cfg["base_score"]))
    return agent_score(he, health, float(cfg["vm_ram_gib"].get(cfg["vm"], 0.0)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hcisim.lab.plane.ha_agent")
    p.add_argument("lab_dir", type=Path)
    p.add_argument("host")
    p.add_argument("--config", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        cfg = json.loads(args.config.read_text())
        HaAgent(args.lab_dir, args.host, cfg).run()
    except (OSError, ValueError, LabError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except KeyError as exc:
        print(f"error: {exc} missing in {args.config} or the lab", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
