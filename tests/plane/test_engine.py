"""The engine's rules without a lab: a fake network of agents (our own code's seams only).

Timeouts are scaled down to fractions of a second; what is asserted is the order of the
engine's steps and its decisions, which must follow the model's rules.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from hcisim.lab.plane.client import AgentUnreachable, call
from hcisim.lab.plane.engine import Engine
from hcisim.lab.plane.hosts import PlaneConfig
from hcisim.scenario import Scenario, parse_scenario

SCENARIO = """
name: plane-unit
duration_s: 100
hosts:
  - &host
    name: host1
    cores: 4
    ram_gib: 8
    power_management: {pm}
    nics: [{{name: n0, gbps: 10, networks: [management, storage]}}]
  - {{<<: *host, name: host2}}
  - {{<<: *host, name: host3}}
volumes:
  - {{name: data, type: replica3, bricks: [{{host: host1}}, {{host: host2}}, {{host: host3}}]}}
vms:
  - {{name: db1, host: host3, ram_gib: 1, ha: true, priority: high, lease: {lease},
     disks: [{{volume: data}}]}}
  - {{name: app1, host: host3, ram_gib: 1, ha: true, priority: medium, lease: {lease},
     disks: [{{volume: data}}]}}
  - {{name: scratch, host: host3, ram_gib: 1, disks: [{{volume: data}}]}}
compute:
  fencing: {{vds_connection_timeout_s: 0.05, vds_timeout_s: 0.2, vds_refresh_rate_s: 0.05,
             soft_fencing_s: 0.05, reset_vds_timeout_s: 0.2, per_vm_delay_s: 0,
             spm_delay_s: 0, disable_fence_at_startup_s: 0}}
  ha_restart: {{retry_short_s: 0.1, priority_block_max_s: 5}}
"""


def scenario(pm: bool, lease: bool) -> Scenario:
    return parse_scenario(SCENARIO.format(pm=str(pm).lower(), lease=str(lease).lower()), "u")


@dataclass
class FakeHost:
    name: str
    mgmt_addr: str


@dataclass
class FakeLab:
    hosts: tuple[FakeHost, ...]

    def host(self, name: str) -> FakeHost:
        return next(h for h in self.hosts if h.name == name)


@dataclass
class FakeMachine:
    powered_off: list[str] = field(default_factory=list)

    def power(self, host: str, on: bool) -> None:
        assert not on
        self.powered_off.append(host)


class FakeBackend:
    def __init__(self) -> None:
        self.lab_ = FakeLab(tuple(FakeHost(h, h) for h in ("host1", "host2", "host3")))
        self.faults = type("F", (), {"machine": FakeMachine()})()


class FakeNet:
    """Agents that run what they are asked; a host in ``silent`` does not answer at all;
    ``refuse_lease`` makes leased starts fail as sanlock does while the owner is alive."""

    def __init__(self) -> None:
        self.vms: dict[str, dict[str, str]] = {h: {} for h in ("host1", "host2", "host3")}
        self.silent: set[str] = set()
        self.refuse_lease = False
        self.creates: list[tuple[float, str, str]] = []
        self.lock = threading.Lock()

    def call(self, addr: str, port: int, request: dict[str, Any], connect_timeout_s: float,
             timeout_s: float) -> dict[str, Any]:
        if addr in self.silent:
            time.sleep(connect_timeout_s)
            raise AgentUnreachable("connect", "timed out")
        if request["op"] == "getStats":
            return {"host": addr, "vms": {v: {"status": s} for v, s in self.vms[addr].items()}}
        assert request["op"] == "create"
        if request["lease"] and self.refuse_lease:
            return {"ok": False, "error": "acquire done -243"}
        time.sleep(0.05)  # boot
        with self.lock:
            self.vms[addr][request["vm"]] = "running"
            self.creates.append((time.time(), request["vm"], addr))
        return {"ok": True}


def run_engine(sc: Scenario, net: FakeNet, be: FakeBackend, until: Any,
               timeout: float = 10.0, refuse_lease: bool = False) -> Engine:
    engine = Engine(be, sc, PlaneConfig("data", ("db1", "app1"), 2), net)  # type: ignore[arg-type]
    engine.start_vms({"db1": "host3", "app1": "host3", "scratch": "host3"})
    net.creates.clear()
    engine.start()
    time.sleep(0.2)
    net.silent.add("host3")
    net.refuse_lease = refuse_lease
    deadline = time.monotonic() + timeout
    try:
        while not until(engine):
            assert time.monotonic() < deadline, [(e.kind, e.target, e.detail)
                                                 for e in engine.events]
            time.sleep(0.02)
    finally:
        engine.stop()
    return engine


def kinds(engine: Engine, target: str) -> list[str]:
    return [e.kind for e in engine.events if e.target == target]


def test_power_management_fences_then_restarts_by_priority() -> None:
    net, be = FakeNet(), FakeBackend()
    engine = run_engine(scenario(pm=True, lease=False), net, be,
                        lambda e: {"db1", "app1"} <= {v for _, v, _ in net.creates})
    assert kinds(engine, "host3") == ["host_non_responsive", "host_fenced"]
    assert be.faults.machine.powered_off == ["host3"]
    assert [v for _, v, _ in net.creates] == ["db1", "app1"]  # high before medium
    assert all(h in ("host1", "host2") for _, _, h in net.creates)
    assert "vm_started" not in kinds(engine, "scratch")[1:]  # not HA: stays down
    fenced = next(e.t for e in engine.events if e.kind == "host_fenced")
    assert all(t >= fenced for t, _, _ in net.creates)


def test_without_power_management_leased_vms_wait_for_the_lease() -> None:
    net, be = FakeNet(), FakeBackend()

    def release_later(engine: Engine) -> bool:
        if any(e.kind == "vm_down" and "restart failed" in e.detail for e in engine.events):
            net.refuse_lease = False  # the lease has expired
        return {"db1", "app1"} <= {v for _, v, _ in net.creates}

    engine = run_engine(scenario(pm=False, lease=True), net, be, release_later,
                        refuse_lease=True)
    assert kinds(engine, "host3") == ["host_non_responsive"]  # no fencing without PM
    assert be.faults.machine.powered_off == []
    refused = [e for e in engine.events if e.target == "db1" and "restart failed" in e.detail]
    assert refused and "-243" in refused[0].detail
    assert refused[0].t < next(t for t, v, _ in net.creates if v == "db1")


def test_without_power_management_or_lease_ha_vms_stay_down() -> None:
    net, be = FakeNet(), FakeBackend()
    engine = run_engine(scenario(pm=False, lease=False), net, be,
                        lambda e: "vm_down" in kinds(e, "app1"))
    time.sleep(0.3)
    assert net.creates == []
    assert all("stays down" in e.detail for e in engine.events if e.kind == "vm_down")


def test_engine_down_means_nothing_happens() -> None:
    net, be = FakeNet(), FakeBackend()
    sc = scenario(pm=True, lease=False)
    up = threading.Event()
    engine = Engine(be, sc, PlaneConfig("data", (), 2), net,  # type: ignore[arg-type]
                    engine_up=up.is_set)
    engine.placement = {"db1": "host3"}
    net.silent.add("host3")
    engine.start()
    time.sleep(1.0)
    assert engine.events == [] and be.faults.machine.powered_off == []
    up.set()
    deadline = time.monotonic() + 5
    while "host_fenced" not in kinds(engine, "host3"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    engine.stop()


def test_call_tells_a_refused_connection_from_silence() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(AgentUnreachable) as refused:
            call("127.0.0.1", port, {"op": "getStats"}, 0.5, 0.5)
        assert refused.value.kind == "refused"
        s.listen()  # accepts, never answers
        with pytest.raises(AgentUnreachable) as silent:
            call("127.0.0.1", port, {"op": "getStats"}, 0.5, 0.2)
        assert silent.value.kind == "call"


def test_engine_events_go_to_the_observation_vocabulary() -> None:
    from hcisim.observations import Recorder

    net, be = FakeNet(), FakeBackend()
    engine = run_engine(scenario(pm=True, lease=False), net, be,
                        lambda e: {"db1", "app1"} <= {v for _, v, _ in net.creates})
    rec = Recorder()
    t0 = engine.started_at
    engine.record(rec, t0)
    assert rec.count("events") == len(engine.events) > 0
    events = rec.build("lab", "plane-unit", 0, 100.0).tables["events"]  # vocabulary checked
    assert list(events.kind[events.target == "host3"]) == ["host_non_responsive",
                                                           "host_fenced"]
