"""How the engine talks to the agents: JSON over TCP from the engine's namespace.

The calls run in worker threads that have entered the engine's network namespace
(``setns(2)`` acts on the calling thread only), so every socket the engine opens lives on
the management network and nowhere else, while the rest of the harness stays where it is.
A call has oVirt's two limits: the connection timeout (vdsConnectionTimeout: a host
without power or without its management link does not answer the SYN) and the call
timeout (vdsTimeout: a connected host that does not answer).
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
from concurrent.futures import CancelledError, ThreadPoolExecutor
from typing import Any

from hcisim.lab.errors import LabError

CLONE_NEWNET = 0x40000000


class AgentUnreachable(Exception):
    """The call failed: ``kind`` is ``connect`` (no answer to the SYN, or refused) or
    ``call`` (connected, no answer within the call timeout)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def enter_netns(netns: str) -> None:
    """Move the calling thread into ``netns`` (``/run/netns/<netns>``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise LabError(f"enter namespace {netns}", os.strerror(err))
    finally:
        os.close(fd)


def call(addr: str, port: int, request: dict[str, Any], connect_timeout_s: float,
         timeout_s: float) -> dict[str, Any]:
    """One request, one answer (raises :class:`AgentUnreachable`)."""
    try:
        sock = socket.create_connection((addr, port), timeout=connect_timeout_s)
    except ConnectionRefusedError as exc:
        raise AgentUnreachable("refused", str(exc)) from None
    except OSError as exc:
        raise AgentUnreachable("connect", str(exc) or type(exc).__name__) from None
    with sock:
        sock.settimeout(timeout_s)
        try:
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            raise AgentUnreachable("call", str(exc) or type(exc).__name__) from None
    try:
        answer = json.loads(data)
    except ValueError:
        raise AgentUnreachable("call", f"no answer ({len(data)} bytes)") from None
    if not isinstance(answer, dict):
        raise AgentUnreachable("call", "answer is not an object")
    return answer


class EngineNet:
    """A pool of threads inside the engine's namespace that make the calls."""

    def __init__(self, netns: str, workers: int = 8) -> None:
        self.netns = netns
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine-net",
                                       initializer=enter_netns, initargs=(netns,))

    def call(self, addr: str, port: int, request: dict[str, Any], connect_timeout_s: float,
             timeout_s: float) -> dict[str, Any]:
        try:
            fut = self.pool.submit(call, addr, port, request, connect_timeout_s, timeout_s)
        except RuntimeError:  # closed: the engine is stopping, its threads end on this
            raise AgentUnreachable("call", "the engine's network is closed") from None
        try:
            return fut.result()
        except CancelledError:
            raise AgentUnreachable("call", "the engine's network is closed") from None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
