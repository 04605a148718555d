"""A scripted stand-in for the storage model, for unit tests of the compute model's SimPy
layer only: it implements StoragePort from a script and records every call it receives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import simpy


class ScriptedFlow:
    """A migration flow whose rate follows ``steps`` [(absolute time, MB/s)], capped."""

    def __init__(self, env: simpy.Environment, steps: Sequence[tuple[float, float]],
                 cap: float) -> None:
        self.env, self.steps, self.cap = env, list(steps), cap
        self.closed = False

    def rate_mb_s(self) -> float:
        rate = self.steps[0][1]
        for t, r in self.steps:
            if t <= self.env.now + 1e-9:
                rate = r
        return min(rate, self.cap)

    def changed(self) -> Any:
        later = [t for t, _ in self.steps if t > self.env.now + 1e-9]
        return self.env.timeout(later[0] - self.env.now) if later else self.env.event()

    def close(self) -> None:
        self.closed = True


class ScriptedStorage:
    def __init__(self, env: simpy.Environment,
                 rate_steps: Sequence[tuple[float, float]] = ((0.0, 1e9),)) -> None:
        self.env = env
        self.rate_steps = rate_steps
        self.broken: dict[str, float] = {}  # vm -> storage unusable until this time
        self.calls: list[tuple[float, str, tuple[Any, ...]]] = []
        self.flows: list[ScriptedFlow] = []
        self.bricks: dict[str, list[tuple[str, bool]]] = {}  # as gluster_bricks() answers
        self.unsynced: dict[str, list[tuple[str, int]]] = {}  # as unsynced_entries() answers

    def vm_storage_ok(self, vm: str, host: str) -> bool:
        return self.env.now >= self.broken.get(vm, -1.0)

    def vm_placed(self, vm: str, host: str | None) -> None:
        self.calls.append((self.env.now, "vm_placed", (vm, host)))

    def vm_io_paused(self, vm: str, paused: bool) -> None:
        self.calls.append((self.env.now, "vm_io_paused", (vm, paused)))

    def open_migration_flow(self, vm: str, src: str, dst: str, cap_mb_s: float) -> ScriptedFlow:
        self.calls.append((self.env.now, "open_migration_flow", (vm, src, dst)))
        flow = ScriptedFlow(self.env, self.rate_steps, cap_mb_s)
        self.flows.append(flow)
        return flow

    def host_maintenance(self, host: str, entering: bool) -> None:
        self.calls.append((self.env.now, "host_maintenance", (host, entering)))

    def gluster_bricks(self) -> dict[str, list[tuple[str, bool]]]:
        return self.bricks

    def unsynced_entries(self) -> dict[str, list[tuple[str, int]]]:
        return self.unsynced
