"""Open-loop VM disks (``catch_up: true``) make up after a stall the I/O they could not do.

fio's ``rate_iops`` (rate_process=linear) computes each I/O's issue time from the bytes the
job has issued since it started (io_u.c ``usec_for_io``: next issue = bytes issued / rate),
so after a stall it is behind schedule and issues as fast as its queue depth and the path
allow until it has caught up, then returns to the rate. Requests that arrive at a rate
whatever the storage does (a web tier's queue) behave alike. A closed-loop guest
(``catch_up: false``, the default) just resumes at its rate.

The model keeps, per open-loop disk, its backlog: MB demanded since its section started and
not done, the integral of (demand - delivered), never below zero. It is fluid like the
rest: between two changes every rate is constant, so the backlog moves linearly, and the
instant it reaches zero is a milestone (one SimPy event per catch-up, whatever the IOPS).
While a disk is behind, its flow asks for what its path allows (its queue-depth cap and
the capacities on its path alone; the fluid solver shares what the others leave), and its
backlog drains at (delivered - demand).

What moves the backlog, by the disk's status, and why:

- ``ok``: demand - delivered (it grows when contention holds the disk below its rate,
  drains while it catches up);
- ``stalled``: demand (the I/Os in flight hang on a brick that does not answer; the
  schedule runs on). This is the lab's case: survivors of a power loss;
- ``error``: zero. fio's I/Os fail at once (ENOTCONN) and, with continue_on_error, count
  as issued, so a job behind schedule pays its backlog with failed I/Os in no time and then
  stays on schedule (the lab: the target host's own writer after a NIC loss moves far less
  than a kept backlog would give). A qemu guest would instead be paused on the error
  (werror=stop) with its request kept; catch_up describes fio's kind of workload;
- ``stopped`` while the VM is paused: nothing, kept (a paused guest's clock stands);
- the VM not running (down, being restarted): zero. A restarted VM is a new process with a
  new schedule; a power-lost fio VM on the lab stays down.

A section ends where the VM's load changes (a workload phase with another load: the lab
runs one fio job section per such segment, ``hcisim.lab.run.phase_rates``, and each has
its own clock), so the backlog restarts from zero there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

from hcisim.model.elaborate import VmDiskModel, VolumeModel
from hcisim.model.fluid import FlowNetwork
from hcisim.model.io import DiskPlan, LatencyModel

# A backlog the disk would clear in at most this long at what it can ask is none: so every
# catch-up lasts longer than this, an instant the clock can tell from now (one step of the
# float is ~5e-10 s at a month, ~1e-7 s at 30 years; a backlog of 1e-300 MB behind a load of
# 1e-301 would otherwise schedule its end at now + 1e-302 s = now, for ever), and the
# backlog a milestone leaves by float rounding (far below this) is zero, not a second event.
ON_SCHEDULE_S = 1e-6
# A rate this close below the demand (relative) meets it: the solver freezes a flow within
# 1e-9 of its demand, and that slack must not build a backlog (and a catch-up event) at
# every change of every open-loop disk.
RATE_SLACK = 1e-7


def path_cap(usage: Mapping[str, float], net: FlowNetwork) -> float:
    """Most MB/s a flow with ``usage`` could get alone: its tightest resource."""
    return min((net.capacity(r) / a for r, a in usage.items()), default=0.0)


class Backlogs:
    """The backlogs of a run's open-loop VM disks (build only when there is one: the engine
    then pays nothing per change for a run without)."""

    def __init__(self, disks: Iterable[VmDiskModel]) -> None:
        self.disks = tuple(d for d in disks if d.profile is not None and d.profile.catch_up)
        self.mb: dict[str, float] = {d.key: 0.0 for d in self.disks}
        self._by_vm: dict[str, list[str]] = {}
        for d in self.disks:
            self._by_vm.setdefault(d.vm, []).append(d.key)
        # until the next change: (disk key, MB/s its backlog grows by), the nonzero ones
        self._slopes: list[tuple[str, float]] = []
        self.catch_up_in = math.inf  # seconds until the next disk is back on schedule

    def __bool__(self) -> bool:
        return bool(self.disks)

    def advance(self, dt: float) -> None:
        """Move every backlog over ``dt`` seconds at its constant slope. A draining one that
        lands within :data:`ON_SCHEDULE_S` of zero is zero (its milestone is now)."""
        mb = self.mb
        for key, slope in self._slopes:
            b = mb[key] + slope * dt
            if slope < 0 and b <= -slope * ON_SCHEDULE_S:
                b = 0.0
            mb[key] = b if b > 0.0 else 0.0

    def new_section(self, vms: Iterable[str]) -> None:
        """The VMs' load changed: their disks' schedules start again, on time."""
        for vm in vms:
            for key in self._by_vm.get(vm, ()):
                self.mb[key] = 0.0

    def raise_flows(self, plans: Mapping[str, DiskPlan], net: FlowNetwork,
                    latency: LatencyModel, volumes: Mapping[str, VolumeModel]) -> None:
        """Before a resolve: each ``ok`` open-loop disk's flow asks for its demand (capped by
        its queue depth, as every disk's), or while it is behind for what its path allows.
        Only a flow whose ask changed is set again (``DiskPlan.catch_up_mb_s`` says what it
        was set with; the engine zeroes it whenever it sets a flow from a plan)."""
        for d in self.disks:
            p = plans[d.key]
            if p.status != "ok" or not p.usage:
                continue
            qd_cap = latency.queue_depth_cap(volumes[d.volume], p)
            base = min(p.demand, qd_cap)
            want = max(base, min(qd_cap, path_cap(p.usage, net)))
            if self.mb[d.key] <= want * ON_SCHEDULE_S:  # on schedule (see ON_SCHEDULE_S)
                want = base
            extra = want - base
            if extra != p.catch_up_mb_s:
                net.add_flow(d.flow, want, p.usage)
                p.catch_up_mb_s = extra

    def rates_set(self, plans: Mapping[str, DiskPlan], net: FlowNetwork,
                  running: Callable[[str], bool]) -> float:
        """After a resolve: each backlog's slope until the next change (see the module
        docstring), a VM that does not run loses its backlog; returns the seconds until the
        first draining backlog reaches zero (inf: none), also kept in ``catch_up_in``."""
        slopes: list[tuple[str, float]] = []
        best = math.inf
        mb, rate = self.mb, net.rates.get
        for d in self.disks:
            key = d.key
            if not running(d.vm):
                mb[key] = 0.0
                continue
            p = plans[key]
            if p.status == "ok":
                slope = p.demand - rate(d.flow, 0.0)
                if 0.0 < slope <= RATE_SLACK * p.demand:
                    slope = 0.0
            elif p.status == "stalled":
                slope = p.demand
            else:
                if p.status == "error":  # paid with failed I/Os (module docstring)
                    mb[key] = 0.0
                continue
            if slope == 0.0:
                continue
            slopes.append((key, slope))
            if slope < 0.0 and mb[key] > 0.0:
                best = min(best, mb[key] / -slope)
        self._slopes = slopes
        self.catch_up_in = best
        return best
