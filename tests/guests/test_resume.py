"""vdsm's resume behaviours, on a stand-in guest (the lab test runs auto_resume for real)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from hcisim.lab.guests.qemu import Guest
from hcisim.lab.guests.qmp import QmpEvent
from hcisim.lab.guests.resume import AutoResume, ResumeBehavior, mount_writable


@dataclass
class FakeQmp:
    paused_at: float
    commands: list[str] = field(default_factory=list)
    recorded: list[QmpEvent] = field(default_factory=list)

    def events_named(self, *names: str) -> list[QmpEvent]:
        return [QmpEvent(self.paused_at, "STOP")] if "STOP" in names else []

    def execute(self, cmd: str, args: Any = None, timeout: float = 30.0) -> Any:
        self.commands.append(cmd)
        return {}


@dataclass
class FakeGuest:
    """Paused with an I/O error since ``paused_for`` seconds; ``cont`` resumes it."""

    paused_for: float
    spec: Any = field(default_factory=lambda: type("Spec", (), {"name": "vm1"})())
    state: str = "io-error"
    killed: bool = False
    polls: int = 0
    qmp: FakeQmp = field(init=False)
    events: list[QmpEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.qmp = FakeQmp(time.time() - self.paused_for)

    def running(self) -> bool:
        return not self.killed

    def status(self) -> str:
        self.polls += 1
        return "running" if "cont" in self.qmp.commands else self.state

    def kill(self) -> None:
        self.killed = True

    def add_event(self, ev: QmpEvent) -> None:
        self.events.append(ev)


def watch(guest: FakeGuest, behavior: ResumeBehavior, usable: bool) -> AutoResume:
    with AutoResume(cast(Guest, guest), behavior, lambda: usable, poll_s=0.01,
                    kill_after_s=80) as ar:
        time.sleep(0.2)
    return ar


def test_auto_resume_continues_only_when_storage_is_usable() -> None:
    waiting = FakeGuest(paused_for=5)
    assert watch(waiting, ResumeBehavior.AUTO_RESUME, usable=False).actions == []
    assert waiting.qmp.commands == [] and waiting.polls > 3  # it looked, and waited
    back = FakeGuest(paused_for=5)
    actions = watch(back, ResumeBehavior.AUTO_RESUME, usable=True).actions
    assert [a.action for a in actions] == ["resumed"] and back.qmp.commands == ["cont"]
    assert actions[0].paused_s == pytest.approx(5, abs=1)


def test_leave_paused_does_nothing_but_say_so_once() -> None:
    g = FakeGuest(paused_for=5)
    actions = watch(g, ResumeBehavior.LEAVE_PAUSED, usable=True).actions
    assert [a.action for a in actions] == ["left_paused"] and g.qmp.commands == []


def test_kill_after_vdsm_time_else_resume() -> None:
    long_paused = FakeGuest(paused_for=81)
    actions = watch(long_paused, ResumeBehavior.KILL, usable=False).actions
    assert [a.action for a in actions] == ["killed"] and long_paused.killed
    assert [e.name for e in long_paused.events] == ["SHUTDOWN"]
    short = FakeGuest(paused_for=5)
    assert [a.action for a in watch(short, ResumeBehavior.KILL, usable=True).actions] == \
        ["resumed"]
    assert not short.killed


def test_mount_probe_fails_on_a_missing_mount(tmp_path: Path) -> None:
    assert mount_writable(tmp_path, "host1")
    assert not mount_writable(tmp_path / "gone", "host1")
