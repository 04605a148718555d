"""Which servers an acceptance run talks to: ``ssh://[user@]host[:port][?key=value&...]``.

A target string names one existing server and, in its query, what differs per server:

- ``name``: the scenario host it stands for (default: the scenario's hosts in order);
- ``glusterd_sock``: glusterd's CLI socket (default: the one the ``gluster`` CLI knows).
  Real servers need nothing; nodes of the namespace lab run several glusterd on one
  machine, each with its own socket, and the CLI must be told which one is "this" host's;
- ``glusterd_workdir``: glusterd's working directory (default ``/var/lib/glusterd``), which
  also tells this server's glusterd apart in a process table shared with others;
- ``storage_if``: the storage network interface (default: found from the brick address).

Passwords are refused here, before anything connects: only keys and the agent are used,
and a password given by mistake is never echoed back.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from hcisim.scenario import Scenario

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")
_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")
_PATH = re.compile(r"^/[^\s;&|`$<>'\"\\]*$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
QUERY_KEYS = ("name", "glusterd_sock", "glusterd_workdir", "storage_if")
DEFAULT_WORKDIR = "/var/lib/glusterd"


class TargetError(ValueError):
    """A host string that cannot be used; the message names it (without any password)."""


@dataclass(frozen=True)
class HostTarget:
    """One server reached over SSH, and how to talk to its glusterd."""

    address: str
    user: str | None = None
    port: int = 22
    name: str | None = None
    glusterd_sock: str | None = None
    glusterd_workdir: str = DEFAULT_WORKDIR
    storage_if: str | None = None

    @property
    def url(self) -> str:
        """The target as the user wrote it, minus the query (safe to print and to record)."""
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.address}]" if ":" in self.address else self.address
        port = f":{self.port}" if self.port != 22 else ""
        return f"ssh://{user}{host}{port}"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.url})" if self.name else self.url


def parse_target(text: str) -> HostTarget:
    """One ``ssh://[user@]host[:port][?query]`` string, or TargetError saying what is wrong."""
    raw = text.strip()
    if not raw:
        raise TargetError("empty host: expected ssh://[user@]host[:port]")
    if "://" not in raw:
        raise TargetError(f"{raw!r}: expected ssh://[user@]host[:port] (no scheme given)")
    try:
        url = urllib.parse.urlsplit(raw)
        port_value = url.port
    except ValueError:
        raise TargetError(f"{_redact(raw)!r}: bad port (expected 1-65535)") from None
    shown = _redact(raw)
    if url.scheme != "ssh":
        raise TargetError(f"{shown!r}: scheme {url.scheme!r} not supported, use ssh://")
    if url.password is not None:
        raise TargetError(
            f"{shown!r}: passwords are not accepted; use an SSH key (--identity) or the agent")
    if url.path not in ("", "/") or url.fragment:
        raise TargetError(f"{shown!r}: unexpected path after the host")
    host = url.hostname or ""
    if not host:
        raise TargetError(f"{shown!r}: no host name")
    if ":" not in host and not _HOSTNAME.match(host):
        raise TargetError(f"{shown!r}: {host!r} is not a valid host name or address")
    user = url.username
    if user is not None and not _USER.match(user):
        raise TargetError(f"{shown!r}: {user!r} is not a valid user name")
    port = 22 if port_value is None else port_value
    if not 1 <= port <= 65535:
        raise TargetError(f"{shown!r}: bad port {port} (expected 1-65535)")
    query = urllib.parse.parse_qs(url.query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(query) - set(QUERY_KEYS))
    if unknown:
        raise TargetError(
            f"{shown!r}: unknown option {unknown[0]!r} (known: {', '.join(QUERY_KEYS)})")
    opts = {k: v[-1] for k, v in query.items()}
    for key in ("glusterd_sock", "glusterd_workdir"):
        if key in opts and not _PATH.match(opts[key]):
            raise TargetError(f"{shown!r}: {key} must be an absolute path without shell "
                              f"characters, got {opts[key]!r}")
    if "storage_if" in opts and not _IFNAME.match(opts["storage_if"]):
        raise TargetError(f"{shown!r}: {opts['storage_if']!r} is not an interface name")
    if "name" in opts and not re.match(r"^[a-z][a-z0-9-]{0,30}$", opts["name"]):
        raise TargetError(f"{shown!r}: {opts['name']!r} is not a scenario host name")
    return HostTarget(
        address=host, user=user, port=port, name=opts.get("name"),
        glusterd_sock=opts.get("glusterd_sock"),
        glusterd_workdir=opts.get("glusterd_workdir", DEFAULT_WORKDIR),
        storage_if=opts.get("storage_if"),
    )


def parse_targets(text: str) -> list[HostTarget]:
    """A comma-separated list of targets (``--hosts``)."""
    parts = [p for p in (s.strip() for s in text.split(",")) if p]
    if not parts:
        raise TargetError("--hosts: no host given (expected ssh://[user@]host[:port],...)")
    targets = [parse_target(p) for p in parts]
    seen: set[tuple[str, int]] = set()
    for t in targets:
        if (t.address, t.port) in seen:
            raise TargetError(f"{t.url}: given twice")
        seen.add((t.address, t.port))
    return targets


def bind_targets(sc: Scenario, targets: list[HostTarget]) -> dict[str, HostTarget]:
    """Scenario host name -> its server: by ``name=`` where given, else in scenario order."""
    if len(targets) != len(sc.hosts):
        raise TargetError(f"scenario {sc.name!r} has {len(sc.hosts)} hosts "
                          f"({', '.join(sc.host_names)}) but {len(targets)} were given")
    named = {t.name for t in targets if t.name}
    for t in targets:
        if t.name and t.name not in sc.host_names:
            raise TargetError(f"{t.url}: name={t.name} is not a host of scenario {sc.name!r} "
                              f"({', '.join(sc.host_names)})")
    free = iter(n for n in sc.host_names if n not in named)
    bound: dict[str, HostTarget] = {}
    for t in targets:
        name = t.name or next(free)
        if name in bound:
            raise TargetError(f"{t.url}: scenario host {name} is already {bound[name].url}")
        bound[name] = HostTarget(t.address, t.user, t.port, name, t.glusterd_sock,
                                 t.glusterd_workdir, t.storage_if)
    return bound


def _redact(raw: str) -> str:
    """``raw`` with any password replaced, so that error messages never carry one."""
    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", raw)
