"""The hosted engine: ovirt-ha-agent scores and the engine VM's restart timeline.

Checked against ovirt-hosted-engine-ha:
- ``agent/agent.conf`` [score]: base-score 3400, gateway-score-penalty 1600,
  mgmt-bridge-score-penalty 600, free-memory-score-penalty 400, cpu-load-score-penalty 1000,
  engine-retry-score-penalty 50, cpu-load-penalty-min 0.4, cpu-load-penalty-max 0.9.
- ``agent/states.py`` ``EngineState.score``: the CPU penalty rises linearly from 0 at load 0.4
  to 1000 at 0.9; the free-memory penalty (``_penalize_memory``) applies when the host's
  ``mem-free`` < the engine VM's ``memSize`` (``min_memory_threshold``), not in EngineUp
  (the VM runs on that host) nor in GlobalMaintenance; ``mem-free`` is the broker's
  ``mem_free`` submonitor, vdsm's ``Host.getStats()['memFree']`` (:func:`agent_free_ram_gib`);
  more than ENGINE_RETRY_MAX_ATTEMPTS (3) failed starts set the score to 0; the score never
  goes below 0.
- ``states.py`` ``EngineDown.consume``: nobody starts the engine until the agent's history
  spans HOST_ALIVE_TIMEOUT_SECS (60 s, ``constants.py.in``); then every host with the best
  score tries, and the sanlock lease on the engine VM lets exactly one start win.
- ``states.py`` ``EngineUp.consume``: a host whose score is >= the running host's + 800
  (MIGRATION_THRESHOLD_SCORE) makes the running host stop the engine VM so that it moves.

The agents loop every ``agent_loop_s`` (10 s). We put every agent's ticks on the same grid
(multiples of the loop from t = 0), which makes the model deterministic; a real start may be
up to one loop later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hcisim.scenario.compute import HostedEngine

GATEWAY_PENALTY = 1600
BRIDGE_PENALTY = 600
FREE_MEMORY_PENALTY = 400
CPU_LOAD_PENALTY = 1000
CPU_LOAD_MIN = 0.4
CPU_LOAD_MAX = 0.9
RETRY_PENALTY = 50
RETRY_MAX_ATTEMPTS = 3


def agent_free_ram_gib(host_ram_gib: float, vm_ram_gib: Mapping[str, float],
                       engine_vm: str | None) -> float:
    """The free memory the agent weighs against the engine VM's (vdsm's ``memFree``).

    ``vm_ram_gib``: the VMs on the host (running, paused, booting, or arriving by
    migration) and their RAM. vdsm reports what the host's kernel has free; the guests are
    taken to use all their RAM, so it is the host's physical RAM less theirs (not the
    scheduler's overcommitted capacity). The engine VM is not counted: where it runs the
    agent is in EngineUp and skips the penalty, elsewhere it is not there. One definition
    for the model (:mod:`hcisim.model.compute`, the scheduler, the outage plan) and the
    lab's HA agent (:mod:`hcisim.lab.plane.ha_agent`).
    """
    return host_ram_gib - sum(r for vm, r in vm_ram_gib.items() if vm != engine_vm)


def agent_cpu_load(vcpu_capacity: float, vm_vcpus: Mapping[str, int],
                   engine_vm: str | None) -> float:
    """The CPU load the agent weighs (the broker's ``cpu-load-no-engine``): the host's busy
    share less the engine VM's own (``calculate_load``: ``load - engine_load``, from
    /proc/stat and the engine qemu's utime + stime), so the engine never counts against
    the host it runs on. The model has no CPU utilisation: the other VMs' committed vCPUs
    over the host's vCPU capacity stand for it, at most 1."""
    return min(1.0, sum(n for vm, n in vm_vcpus.items() if vm != engine_vm) / vcpu_capacity)


@dataclass(frozen=True)
class HostHealth:
    """What one agent measures about its own host."""

    cpu_load: float = 0.0  # :func:`agent_cpu_load`: not counting the engine VM
    free_ram_gib: float = math.inf  # :func:`agent_free_ram_gib` (inf: not measured)
    gateway_ok: bool = True
    bridge_ok: bool = True
    start_retries: int = 0
    engine_here: bool = False


def agent_score(he: HostedEngine, health: HostHealth, engine_ram_gib: float) -> int:
    """ovirt-ha-agent's score of one host (``EngineState.score``)."""
    score = he.base_score
    if not health.gateway_ok:
        score -= GATEWAY_PENALTY
    if not health.bridge_ok:
        score -= BRIDGE_PENALTY
    penalty = int((health.cpu_load - CPU_LOAD_MIN) / (CPU_LOAD_MAX - CPU_LOAD_MIN)
                  * CPU_LOAD_PENALTY)
    score -= max(0, min(CPU_LOAD_PENALTY, penalty))
    if not health.engine_here and health.free_ram_gib < engine_ram_gib:
        score -= FREE_MEMORY_PENALTY
    if health.start_retries > RETRY_MAX_ATTEMPTS:
        return 0
    score -= RETRY_PENALTY * health.start_retries
    return max(0, score)


def best_host(scores: Mapping[str, int], order: Sequence[str]) -> str | None:
    """The host that wins the start: best score; among equals the sanlock race, which we
    resolve as scenario order (deterministic). Hosts with score 0 never start the engine."""
    best: str | None = None
    for name in order:
        s = scores.get(name)
        if s is None or s <= 0:
            continue
        if best is None or s > scores[best]:
            best = name
    return best


def takeover_host(scores: Mapping[str, int], running_on: str, order: Sequence[str],
                  margin: int) -> str | None:
    """The host the engine moves to because it scores ``margin`` more than the running host
    (None: the engine stays)."""
    best = best_host({h: s for h, s in scores.items() if h != running_on}, order)
    if best is not None and scores[best] >= scores.get(running_on, 0) + margin:
        return best
    return None


def next_tick(t: float, loop_s: float) -> float:
    """First agent loop tick at or after ``t``."""
    return math.ceil(t / loop_s - 1e-9) * loop_s


@dataclass(frozen=True)
class EngineRestart:
    """When and where the agents bring the engine back after it went down at ``down_at_s``."""

    down_at_s: float
    noticed_at_s: float  # agents know the engine is down and have their 60 s of host data
    start_at_s: float  # the winning host starts the engine VM (sanlock lease acquired)
    up_at_s: float  # the engine answers (start + boot)
    host: str | None  # None: no host can start it (all scores 0)


def engine_start_time(he: HostedEngine, down_at_s: float, *, host_died: bool,
                      lease_expiry_s: float, storage_ok_from_s: float = 0.0,
                      agents_since_s: float = 0.0) -> tuple[float, float]:
    """(when the agents know the engine is down, when the winner starts it); see
    :func:`engine_restart`."""
    if host_died:
        noticed = max(down_at_s, agents_since_s) + he.host_data_wait_s
        lease_free = down_at_s + lease_expiry_s
    else:
        noticed = max(down_at_s, agents_since_s + he.host_data_wait_s)
        lease_free = down_at_s
    return noticed, next_tick(max(noticed, lease_free, storage_ok_from_s), he.agent_loop_s)


def engine_restart(he: HostedEngine, down_at_s: float, *, host_died: bool,
                   lease_expiry_s: float, scores: Mapping[str, int], order: Sequence[str],
                   storage_ok_from_s: float = 0.0, agents_since_s: float = 0.0
                   ) -> EngineRestart:
    """The engine VM's way back.

    ``host_died``: its host stopped (power loss, hang), so the other agents see its metadata
    go stale only after HOST_ALIVE_TIMEOUT (``host_data_wait_s``), and the engine VM's
    sanlock lease must expire (``lease_expiry_s``) before another host can acquire it. When the
    VM alone died (its host lives), the local agent sees it at its next loop and the lease is
    free at once. ``agents_since_s``: when the agents started collecting (they need
    ``host_data_wait_s`` of history either way). ``storage_ok_from_s``: the engine volume
    must be usable to start the VM.
    """
    noticed, start = engine_start_time(he, down_at_s, host_died=host_died,
                                       lease_expiry_s=lease_expiry_s,
                                       storage_ok_from_s=storage_ok_from_s,
                                       agents_since_s=agents_since_s)
    host = best_host(scores, order)
    if host is None:
        return EngineRestart(down_at_s, noticed, math.inf, math.inf, None)
    return EngineRestart(down_at_s, noticed, start, start + he.boot_s, host)
