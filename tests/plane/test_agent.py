"""The agent's event log and the engine's namespace naming, without a lab."""

from __future__ import annotations

from pathlib import Path


def test_agent_events_survive_restarts_and_bad_lines(tmp_path: Path) -> None:
    from hcisim.lab.plane.agent import events_file, qmp_events, read_events

    log = events_file(tmp_path)
    log.parent.mkdir(parents=True)
    log.write_text('{"t": 1.5, "host": "h1", "vm": "db1", "event": "STOP", "data": {}}\n'
                   "not json\n"
                   '{"t": 2.5, "host": "h1", "vm": "app1", "event": "RESUME", "data": {}}\n')
    assert [e["vm"] for e in read_events(tmp_path)] == ["db1", "app1"]
    [ev] = qmp_events(tmp_path, "db1")
    assert (ev.t, ev.name) == (1.5, "STOP")


def test_engine_namespace_is_the_labs_and_on_the_management_subnet() -> None:
    from hcisim.lab.netns.layout import LabLayout
    from hcisim.lab.plane.hosts import engine_addr, engine_netns, host_id

    lab = LabLayout.make("x", 3, ["host1", "host2"], Path("/nonexistent"))
    assert engine_netns(lab) == "hcl-x-eng"  # the lab's prefix: `lab down` removes it
    assert engine_addr(lab) == "10.213.7.2" and lab.hosts[0].mgmt_addr == "10.213.7.11"
    assert [host_id(lab, "host1"), host_id(lab, "host2")] == [1, 2]


def test_lifecycle_rows_from_the_agents_logs(tmp_path: Path) -> None:
    import json
    from types import SimpleNamespace

    from hcisim.lab.plane.agent import events_file
    from hcisim.lab.plane.run import Plane

    def log(host: str, *events: tuple[float, str, str]) -> None:
        f = events_file(tmp_path / host)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("".join(json.dumps({"t": t, "host": host, "vm": vm, "event": ev,
                                         "data": {}}) + "\n" for t, vm, ev in events))

    log("host3", (100, "db1", "LAUNCHED"), (110, "db1", "UP"))  # dies with its host's power
    log("host1", (130, "db1", "START_FAILED"), (131, "db1", "LAUNCHED"), (140, "db1", "UP"))
    hosts = [SimpleNamespace(name=h, dir=tmp_path / h) for h in ("host1", "host3")]
    plane = Plane(SimpleNamespace(lab_=SimpleNamespace(hosts=hosts)), None, None)  # type: ignore[arg-type]
    rows = [(r.host, r.t_start_s, r.t_end_s, r.state)
            for r in plane.lifecycle_rows(100.0, 200.0, {"host3": 120.0})]
    assert rows == [("host3", 0, 10, "restarting"), ("host3", 10, 20, "running"),
                    ("", 20, 31, "down"), ("host1", 31, 40, "restarting"),
                    ("host1", 40, 100, "running")]
