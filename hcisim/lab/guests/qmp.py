"""A synchronous face on qemu.qmp's asyncio client, with every event kept and timed.

The lab harness is threads, qemu.qmp is asyncio: each session runs its own event loop in a
daemon thread and commands cross over with ``run_coroutine_threadsafe``. Events carry
qemu's own timestamp (taken by qemu on the host when the event happened), which is what
``vm_state`` uses: exact, and independent of when this harness got round to reading it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qemu.qmp import EventListener, QMPClient, QMPError

from hcisim.lab.errors import LabError


@dataclass(frozen=True)
class QmpEvent:
    t: float  # epoch seconds, qemu's timestamp
    name: str
    data: Mapping[str, Any] = field(default_factory=dict)


def event_time(msg: Mapping[str, Any]) -> float:
    ts = msg.get("timestamp") or {}
    return float(ts.get("seconds", 0)) + float(ts.get("microseconds", 0)) / 1e6


class QmpSession:
    """One QMP connection to one qemu; ``on_event`` is called in the session's thread."""

    def __init__(self, name: str, on_event: Callable[[QmpEvent], None] | None = None) -> None:
        self.name = name
        self.events: list[QmpEvent] = []
        self._on_event = on_event
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=f"qmp {name}")
        self._client = QMPClient(name)
        self._listener = EventListener()
        self._pump: asyncio.Future[None] | None = None
        self._lock = threading.Lock()
        self._thread.start()

    def _call(self, coro: Any, what: str, timeout: float) -> Any:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except TimeoutError:
            fut.cancel()
            raise LabError(f"QMP {what} on {self.name}", f"no answer in {timeout:.0f} s") from None
        except (QMPError, OSError) as exc:
            raise LabError(f"QMP {what} on {self.name}", str(exc) or type(exc).__name__) \
                from None

    def connect(self, sock: Path, timeout: float = 15.0) -> None:
        async def go() -> None:
            deadline = self._loop.time() + timeout
            while not sock.exists():  # qemu creates it early; no failed connects logged
                if self._loop.time() > deadline:
                    raise OSError(f"{sock} never appeared")
                await asyncio.sleep(0.02)
            while True:
                try:
                    await self._client.connect(str(sock))
                    break
                except (QMPError, OSError):
                    if self._loop.time() > deadline:
                        raise
                    await asyncio.sleep(0.05)
            self._client.register_listener(self._listener)
            self._pump = asyncio.ensure_future(self._pump_events())

        self._call(go(), "connect", timeout + 5)

    async def _pump_events(self) -> None:
        async for msg in self._listener:
            data = msg.get("data")
            ev = QmpEvent(event_time(msg), str(msg["event"]),
                          dict(data) if isinstance(data, Mapping) else {})
            with self._lock:
                self.events.append(ev)
            if self._on_event is not None:
                self._on_event(ev)

    def execute(self, cmd: str, args: Mapping[str, object] | None = None,
                timeout: float = 30.0) -> Any:
        return self._call(self._client.execute(cmd, args), cmd, timeout)

    def record(self, ev: QmpEvent) -> None:
        """Keep an event the harness saw itself (the process gone) among qemu's own."""
        with self._lock:
            self.events.append(ev)

    def events_named(self, *names: str) -> list[QmpEvent]:
        with self._lock:
            return [e for e in self.events if e.name in names]

    def close(self) -> None:
        """Disconnect and stop the loop; safe to call twice and after qemu died."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            async def bye() -> None:
                with contextlib.suppress(Exception):
                    await self._client.disconnect()
                if self._pump is not None:
                    self._pump.cancel()

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(bye(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()
