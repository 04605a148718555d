"""Bring the management plane's per-host services up and down, and the engine's namespace.

A host "boots" its plane services as a real host starts sanlock and vdsm: the sanlock
daemon, the lockspace join on its own mount of the lease volume, then the agent. Their
pid files live in ``<lab>/h/<host>/pids/`` (``sanlock.pid``, ``agent.pid``), where the
netns lab's power cut and ``hcisim lab down`` already look, so a host that loses power
loses its agent and its sanlock daemon, and a SIGKILLed harness leaves nothing behind.

The engine gets its own namespace (``hcl-<lab>-eng``) with one port on the management
bridge (address ``.2`` of the management subnet): it reaches the agents exactly as
ovirt-engine reaches vdsm, over the management network, and nothing else.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hcisim.lab.errors import LabError
from hcisim.lab.netns.layout import NS_PREFIX, HostLayout, LabLayout
from hcisim.lab.netns.network import BRIDGES
from hcisim.lab.plane import sanlock as sl
from hcisim.lab.plane.agent import PORT
from hcisim.lab.process import alive, cmdline, kill_and_wait, read_pid, run, spawn
from hcisim.lab.wait import wait_until

AGENT_MODULE = "hcisim.lab.plane.agent"
HA_AGENT_MODULE = "hcisim.lab.plane.ha_agent"


@dataclass(frozen=True)
class PlaneConfig:
    """What every host's services share: the lease volume, the leased VMs, io_timeout."""

    lease_volume: str
    leased_vms: tuple[str, ...]
    io_timeout_s: int = 10
    engine_vm: str = ""  # the hosted engine VM: its lease in its own lockspace
    engine_volume: str = ""

    @property
    def store(self) -> sl.LeaseStore:
        return sl.LeaseStore(self.leased_vms, self.io_timeout_s)

    @property
    def engine_store(self) -> sl.LeaseStore | None:
        if not self.engine_vm:
            return None
        return sl.LeaseStore((self.engine_vm,), self.io_timeout_s, sl.ENGINE_LOCKSPACE)


def sanlock_host(h: HostLayout) -> sl.SanlockHost:
    return sl.SanlockHost(h.name, h.netns, h.dir)


def host_id(lab: LabLayout, host: str) -> int:
    """sanlock host ids 1..n in the lab's host order (oVirt gives each host its own)."""
    return [h.name for h in lab.hosts].index(host) + 1


def agent_pidfile(h: HostLayout) -> Path:
    return h.piddir / "agent.pid"


def _is_agent(pid: int, lab_dir: Path, module: str = AGENT_MODULE) -> bool:
    args = cmdline(pid)
    return module in args and str(lab_dir) in args


def ha_agent_pidfile(h: HostLayout) -> Path:
    return h.piddir / "ha-agent.pid"


def start_ha_agents(lab: LabLayout, hosts: Sequence[HostLayout], config: Path) -> None:
    """Start the hosted-engine HA agents on ``hosts`` together (each in its namespace) and
    return after every one's first loop: started one after the other, the first would
    have its history (HOST_ALIVE_TIMEOUT) before the last had published anything, and
    could take the engine for down."""
    procs: list[tuple[HostLayout, subprocess.Popen[bytes]]] = []
    for h in hosts:
        ready = h.dir / "plane" / "ha-agent.ready"
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-m", HA_AGENT_MODULE, str(lab.dir), h.name,
                "--config", str(config)]
        proc = spawn(argv, h.netns, h.logdir / "ha-agent.log")
        ha_agent_pidfile(h).write_text(f"{proc.pid}\n")
        procs.append((h, proc))
    for h, proc in procs:
        ready = h.dir / "plane" / "ha-agent.ready"
        if not wait_until(lambda r=ready, p=proc: r.exists() or p.poll() is not None,  # type: ignore[misc]
                          60.0, 0.05) or proc.poll() is not None:
            tail = (h.logdir / "ha-agent.log").read_text(errors="replace").strip().splitlines()
            raise LabError(f"start the HA agent on {h.name}",
                           f"exit {proc.poll()}: {' '.join(tail[-1:])}")


def agent_running(lab: LabLayout, h: HostLayout) -> bool:
    pid = read_pid(agent_pidfile(h))
    return pid is not None and alive(pid) and _is_agent(pid, lab.dir)


def start_agent(lab: LabLayout, h: HostLayout, cfg: PlaneConfig) -> subprocess.Popen[bytes]:
    """Start ``h``'s agent in its namespace; return once it listens (its ``ready`` file)."""
    ready = h.dir / "plane" / "agent.ready"
    ready.unlink(missing_ok=True)
    argv = [sys.executable, "-m", AGENT_MODULE, str(lab.dir), h.name,
            "--io-timeout", str(cfg.io_timeout_s), "--lease-volume", cfg.lease_volume,
            "--engine-vm", cfg.engine_vm, "--leased", *cfg.leased_vms]
    proc = spawn(argv, h.netns, h.logdir / "agent.log")
    agent_pidfile(h).write_text(f"{proc.pid}\n")
    if not wait_until(lambda: ready.exists() or proc.poll() is not None, 30.0, 0.05) or \
            proc.poll() is not None:
        tail = (h.logdir / "agent.log").read_text(errors="replace").strip().splitlines()[-1:]
        raise LabError(f"start the agent on {h.name}", f"exit {proc.poll()}: {' '.join(tail)}")
    return proc


def stop_agent(lab: LabLayout, h: HostLayout) -> None:
    """Kill ``h``'s agent (its VMs keep running, as when vdsm stops)."""
    pid = read_pid(agent_pidfile(h))
    if pid is not None and alive(pid) and _is_agent(pid, lab.dir):
        kill_and_wait([pid])
    agent_pidfile(h).unlink(missing_ok=True)


def boot_services(lab: LabLayout, hosts: Iterable[HostLayout], cfg: PlaneConfig) -> None:
    """sanlock daemons, lockspace joins (in parallel: each waits for its delta lease; the
    hosted engine's lockspace too), then the agents, on ``hosts``."""
    hosts = list(hosts)
    spaces = [(cfg.store, cfg.lease_volume)]
    if cfg.engine_store is not None:
        spaces.append((cfg.engine_store, cfg.engine_volume))
    for h in hosts:
        sl.start_daemon(sanlock_host(h))
    errors: list[LabError] = []

    def join(h: HostLayout, store: sl.LeaseStore, volume: str) -> None:
        try:
            sl.add_lockspace(sanlock_host(h), store, lab.mount(h.name, volume),
                             host_id(lab, h.name))
        except LabError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=join, args=(h, st, vol)) for h in hosts
               for st, vol in spaces]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    for h in hosts:
        start_agent(lab, h, cfg)


def bring_up(lab: LabLayout, cfg: PlaneConfig) -> None:
    """Format the leases on the volume (through the first host's mount), boot every host."""
    sl.format_store(cfg.store, lab.mount(lab.hosts[0].name, cfg.lease_volume))
    if cfg.engine_store is not None:
        sl.format_store(cfg.engine_store, lab.mount(lab.hosts[0].name, cfg.engine_volume))
    boot_services(lab, lab.hosts, cfg)


def stop_services(lab: LabLayout, hosts: Sequence[HostLayout]) -> None:
    for h in hosts:
        stop_agent(lab, h)
        sl.stop_daemon(sanlock_host(h))


def reclaim_plane(lab_dir: Path) -> list[int]:
    """Kill every agent and sanlock daemon of the lab at ``lab_dir`` (``hcisim lab down``).

    Only PIDs from our own pid files whose command line (agents) or environment (sanlock)
    names this lab; returns the PIDs still alive afterwards (normally none).
    """
    agents = []
    for name, module in (("agent.pid", AGENT_MODULE), ("ha-agent.pid", HA_AGENT_MODULE)):
        for pf in sorted(lab_dir.glob(f"h/*/pids/{name}")):
            pid = read_pid(pf)
            if pid is not None and pid > 1 and alive(pid) and _is_agent(pid, lab_dir, module):
                agents.append(pid)
    left = kill_and_wait(agents)
    for name in ("agent.pid", "ha-agent.pid"):
        for pf in lab_dir.glob(f"h/*/pids/{name}"):
            pf.unlink(missing_ok=True)
    return left + sl.reclaim_sanlock(lab_dir)


# --- the engine's namespace ------------------------------------------------------------
def engine_netns(lab: LabLayout) -> str:
    """Named with the lab's prefix, so ``hcisim lab down`` deletes it with the others."""
    return f"{NS_PREFIX}{lab.name}-eng"


def engine_addr(lab: LabLayout) -> str:
    return f"10.213.{2 * lab.index + 1}.2"


def agent_endpoint(h: HostLayout) -> tuple[str, int]:
    return h.mgmt_addr, PORT


def make_engine_netns(lab: LabLayout) -> str:
    """A namespace with one veth port on the management bridge; returns its name."""
    ns = engine_netns(lab)
    step = "create the engine's namespace"
    if Path("/run/netns", ns).exists():
        return ns
    run(step, ["ip", "netns", "add", ns])
    run(step, ["ip", "-n", ns, "link", "set", "lo", "up"])
    run(step, ["ip", "-n", lab.switch_netns, "link", "add", "meng", "type", "veth",
               "peer", "name", "mgmt0", "netns", ns])
    run(step, ["ip", "-n", lab.switch_netns, "link", "set", "meng", "master",
               BRIDGES["management"], "up"])
    run(step, ["ip", "-n", ns, "addr", "add", f"{engine_addr(lab)}/{lab.prefix_len}",
               "dev", "mgmt0"])
    run(step, ["ip", "-n", ns, "link", "set", "mgmt0", "up"])
    return ns


def remove_engine_netns(lab: LabLayout) -> None:
    ns = engine_netns(lab)
    if Path("/run/netns", ns).exists():
        run("delete the engine's namespace", ["ip", "netns", "del", ns], check=False)
