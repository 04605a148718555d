"""The one Gluster client: a node's glusterd through its CLI (``--xml`` where it has one).

Used by every backend over its :class:`hcisim.lab.node.NodeShell` (nsenter, SSH) and by
the acceptance checks. Parsers are pure functions of the CLI's output so that they are
tested on outputs captured from a real Gluster 10.3 cluster (tests/accept/fixtures).

A node whose glusterd listens on its own socket (several glusterd on one machine, as in
the netns lab) is named with ``sock``; heal info then goes through ``glfsheal`` with that
socket (the CLI's helper would look for the default one).
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from hcisim.lab.errors import LabError
from hcisim.lab.node import Completed, NodeShell, sh
from hcisim.lab.wait import wait_until
from hcisim.scenario import Volume

GLFSHEAL_FINDER = ("h=$(command -v glfsheal || ls /usr/lib/*/glusterfs/glfsheal "
                   "/usr/libexec/glusterfs/glfsheal /usr/sbin/glfsheal 2>/dev/null | head -n1)")


class GlusterError(Exception):
    """The gluster CLI failed or said something we cannot read."""


@dataclass(frozen=True)
class Peer:
    uuid: str
    hostname: str
    connected: bool
    state: str


@dataclass(frozen=True)
class BrickInfo:
    """A brick as ``volume info`` lists it: ``host:path`` and the glusterd that owns it."""

    host: str
    path: str
    host_uuid: str
    is_arbiter: bool

    @property
    def name(self) -> str:
        return f"{self.host}:{self.path}"


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    status: str
    type_str: str
    replica_count: int
    arbiter_count: int
    bricks: tuple[BrickInfo, ...]
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProcessStatus:
    """A brick or self-heal daemon in ``volume status``: online or not, and its PID."""

    kind: str  # brick | shd
    host: str
    path: str
    peer_id: str
    online: bool
    pid: int | None


@dataclass(frozen=True)
class HostProcesses:
    """One host's Gluster processes as ``volume status`` reports them, per volume: its
    bricks (online or not), the volumes whose self-heal daemon on it is online (one
    multiplexed glustershd serves them all, but glusterd attaches each volume's graph to it
    on its own), and the volumes whose status glusterd could not give."""

    bricks: dict[str, tuple[ProcessStatus, ...]]
    shd_online: frozenset[str]
    unanswered: frozenset[str]

    def bricks_online(self) -> bool:
        """Every brick of every volume asked for is online (and there is one)."""
        states = [p.online for ps in self.bricks.values() for p in ps]
        return bool(states) and all(states) and not self.unanswered


@dataclass(frozen=True)
class BrickHeal:
    """One brick's line of ``heal info summary``; None where the brick did not answer."""

    brick: str
    connected: bool
    pending: int | None
    split_brain: int | None
    healing: int | None


# --- parsers -------------------------------------------------------------------------


def parse_cli_xml(text: str, what: str) -> ET.Element:
    """The ``<cliOutput>`` root, or GlusterError with the CLI's own error string."""
    start = text.find("<?xml")
    if start < 0:
        start = text.find("<cliOutput")
    if start < 0:
        raise GlusterError(f"{what}: no XML in the output ({_first_line(text)})")
    try:
        root = ET.fromstring(text[start:])
    except ET.ParseError as exc:
        raise GlusterError(f"{what}: unreadable XML ({exc})") from None
    if (root.findtext("opRet") or "0").strip() != "0":
        msg = (root.findtext("opErrstr") or "").strip() or "failed"
        raise GlusterError(f"{what}: {msg}")
    return root


def parse_peers(text: str) -> list[Peer]:
    root = parse_cli_xml(text, "peer status")
    return [Peer(uuid=(p.findtext("uuid") or "").strip(),
                 hostname=(p.findtext("hostname") or "").strip(),
                 connected=(p.findtext("connected") or "0").strip() == "1",
                 state=(p.findtext("stateStr") or "").strip())
            for p in root.iter("peer")]


def parse_volume_info(text: str) -> list[VolumeInfo]:
    root = parse_cli_xml(text, "volume info")
    vols = []
    for v in root.iter("volume"):
        bricks = []
        for b in v.iter("brick"):
            name = (b.findtext("name") or b.text or "").strip()
            host, _, path = name.rpartition(":")
            bricks.append(BrickInfo(host=host, path=path,
                                    host_uuid=(b.findtext("hostUuid") or "").strip(),
                                    is_arbiter=(b.findtext("isArbiter") or "0").strip() == "1"))
        options = {(o.findtext("name") or "").strip(): (o.findtext("value") or "").strip()
                   for o in v.iter("option")}
        vols.append(VolumeInfo(
            name=(v.findtext("name") or "").strip(), status=(v.findtext("statusStr") or ""),
            type_str=(v.findtext("typeStr") or ""),
            replica_count=int(v.findtext("replicaCount") or 0),
            arbiter_count=int(v.findtext("arbiterCount") or 0),
            bricks=tuple(bricks), options=options))
    return vols


def parse_volume_status(text: str) -> list[ProcessStatus]:
    root = parse_cli_xml(text, "volume status")
    procs = []
    for n in root.iter("node"):
        hostname = (n.findtext("hostname") or "").strip()
        pid_text = (n.findtext("pid") or "").strip()
        pid = int(pid_text) if pid_text.isdigit() and int(pid_text) > 0 else None
        online = (n.findtext("status") or "0").strip() == "1"
        path = (n.findtext("path") or "").strip()
        peer = (n.findtext("peerid") or "").strip()
        if hostname == "Self-heal Daemon":
            procs.append(ProcessStatus("shd", path, "", peer, online, pid))
        elif path.startswith("/"):
            procs.append(ProcessStatus("brick", hostname, path, peer, online, pid))
    return procs


def parse_volume_get(text: str) -> dict[str, str]:
    """Option -> value as ``volume get VOL all`` shows it (" (DEFAULT)" stripped)."""
    root = parse_cli_xml(text, "volume get")
    opts = {}
    for o in root.iter("Opt"):
        name = (o.findtext("Option") or "").strip()
        value = (o.findtext("Value") or "").strip()
        opts[name] = re.sub(r"\s*\(DEFAULT\)$", "", value)
    return opts


def parse_heal_summary(text: str) -> list[BrickHeal]:
    """``heal info summary`` text (the CLI's and glfsheal's output are the same)."""
    out = []
    for block in re.split(r"\n(?=Brick )", text.strip()):
        m = re.match(r"Brick (\S+)", block)
        if not m:
            continue
        status = re.search(r"^Status: (.*)$", block, re.M)
        connected = bool(status) and status is not None and status.group(1).strip() == "Connected"

        def count(label: str, block: str = block) -> int | None:
            found = re.search(rf"^{label}: (\S+)", block, re.M)
            return int(found.group(1)) if found and found.group(1).isdigit() else None

        out.append(BrickHeal(m.group(1), connected, count("Number of entries in heal pending"),
                             count("Number of entries in split-brain"),
                             count("Number of entries possibly healing")))
    return out


def parse_uuid(text: str) -> str:
    m = re.search(r"UUID[:=]\s*([0-9a-f-]{36})", text)
    if not m:
        raise GlusterError(f"uuid get: {_first_line(text)!r}")
    return m.group(1)


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["empty output"])[0][:200]


def parse_group_file(text: str) -> dict[str, str]:
    """``key=value`` lines of a Gluster group file (comments and blanks ignored)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def plain_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def scenario_options(vol: Volume) -> dict[str, str]:
    """The volume options the scenario sets, as gluster keys (they win over the group's)."""
    o = vol.options
    out = {
        "network.ping-timeout": plain_number(o.ping_timeout_s),
        "server.tcp-user-timeout": plain_number(o.tcp_user_timeout_s),
        "features.shard": "on" if o.shard else "off",
        "features.shard-block-size": f"{o.shard_block_size_mib}MB",
        "cluster.shd-max-threads": str(o.shd_max_threads),
        "cluster.heal-timeout": plain_number(o.heal_timeout_s),
        "cluster.quorum-type": o.quorum_type,
        "cluster.server-quorum-type": o.server_quorum_type,
        "cluster.data-self-heal-algorithm": o.data_self_heal_algorithm,
        "cluster.choose-local": "on" if o.choose_local else "off",
        "cluster.eager-lock": "enable" if o.eager_lock else "disable",
    }
    if o.quorum_count is not None:
        out["cluster.quorum-count"] = str(o.quorum_count)
    return out


# glusterd's answers when a volume's cluster lock is held by another transaction: its own
# (glusterd-locks.c), or a peer's in the mgmt_v3 lock phase (glusterd-mgmt.c: "Locking
# failed on PEER. ..."); either way the transaction stopped before doing anything
BUSY = ("Another transaction is in progress", "Locking failed on ")
BUSY_RETRIES = 20


@dataclass(frozen=True)
class Gluster:
    """The gluster CLI of the glusterd on ``shell``'s node (``sock``: its own socket)."""

    shell: NodeShell
    sock: str | None = None
    base: tuple[str, ...] = ("gluster", "--mode=script", "--wignore")

    def argv(self, *args: str) -> list[str]:
        return [*self.base, *([f"--glusterd-sock={self.sock}"] if self.sock else []), *args]

    def run(self, *args: str, timeout_s: float = 60.0) -> Completed:
        """Run the CLI; a command refused because glusterd's cluster-wide lock is held by
        another transaction ("Another transaction is in progress ... Please try again after
        some time": nothing was done) is tried again, up to BUSY_RETRIES times, 1 s apart.
        Seen with two repairs back to back, a `volume status` during a `volume set`, a
        heal-daemon toggle right after a `volume start force`; a peer's lock ("Locking failed
        on PEER"): a `volume status` right after `volume heal` (CI, 2026-11-30)."""
        for _ in range(BUSY_RETRIES):
            res = self.shell.run(self.argv(*args), timeout_s)
            said = res.stdout + res.stderr  # --xml says it with rc 0 (opRet -1)
            if not any(b in said for b in BUSY):
                return res
            time.sleep(1.0)
        return res

    def do(self, *args: str, step: str, timeout_s: float = 60.0) -> Completed:
        """Run it; a failure is a LabError naming ``step`` and the node."""
        res = self.run(*args, timeout_s=timeout_s)
        if not res.ok:
            said = _first_line(res.stderr or res.stdout)  # gluster's first line says why
            raise LabError(step, f"{self.shell.label}: gluster {' '.join(args[:4])}: {said}")
        return res

    def text(self, *args: str, timeout_s: float = 60.0) -> str:
        """The CLI's output; GlusterError with its message when it fails."""
        res = self.run(*args, timeout_s=timeout_s)
        if not res.ok and "<cliOutput>" not in res.stdout:
            raise GlusterError(f"gluster {args[1] if len(args) > 1 else ''}: "
                               f"{_first_line(res.stderr or res.stdout)} (rc {res.rc})")
        return res.stdout

    def answers(self) -> bool:
        return self.run("peer", "status", timeout_s=10).ok

    def uuid(self) -> str:
        return parse_uuid(self.text("system::", "uuid", "get"))

    def peers(self) -> list[Peer]:
        return parse_peers(self.text("--xml", "peer", "status"))

    def volume_info(self, volume: str) -> VolumeInfo | None:
        res = self.run("--xml", "volume", "info", volume)
        if "does not exist" in res.stdout + res.stderr:
            return None
        vols = parse_volume_info(res.stdout)
        return vols[0] if vols else None

    def volume_status(self, volume: str) -> list[ProcessStatus]:
        return parse_volume_status(self.text("--xml", "volume", "status", volume))

    def host_processes(self, volumes: Iterable[str], uuid: str | None) -> HostProcesses:
        """The bricks and self-heal daemons of the host with glusterd ``uuid``, one
        ``volume status`` per volume (a volume glusterd cannot report: ``unanswered``)."""
        bricks: dict[str, tuple[ProcessStatus, ...]] = {}
        shd: set[str] = set()
        unanswered: set[str] = set()
        for v in volumes:
            try:
                mine = [p for p in self.volume_status(v) if p.peer_id == uuid]
            except GlusterError:
                unanswered.add(v)
                continue
            bricks[v] = tuple(p for p in mine if p.kind == "brick")
            if any(p.online for p in mine if p.kind == "shd"):
                shd.add(v)
        return HostProcesses(bricks, frozenset(shd), frozenset(unanswered))

    def volume_options(self, volume: str) -> dict[str, str]:
        """Every option of ``volume`` as glusterd applies it (``volume get VOL all``)."""
        return parse_volume_get(self.text("--xml", "volume", "get", volume, "all"))

    def heal_argv(self, volume: str, *mode: str) -> list[str]:
        """Heal info of ``volume``: the CLI, or glfsheal with the node's socket."""
        if self.sock is None:
            return self.argv("volume", "heal", volume, "info", *mode)
        summary = ["info-summary"] if mode == ("summary",) else []
        return [*sh(f'{GLFSHEAL_FINDER}; exec "$h" "$0" "$@"'), volume, *summary,
                "glusterd-sock", self.sock]

    def heal_summary(self, volume: str, timeout_s: float = 90.0) -> list[BrickHeal]:
        res = self.shell.run(self.heal_argv(volume, "summary"), timeout_s)
        bricks = parse_heal_summary(res.stdout)
        if not bricks:
            raise GlusterError(f"heal info summary of {volume}: "
                               f"{_first_line(res.stderr or res.stdout)} (rc {res.rc})")
        return bricks

    def heal_listing(self, volume: str, timeout_s: float = 20.0) -> str | None:
        """The full heal info listing (entries per brick); None when nothing answered."""
        res = self.shell.run(self.heal_argv(volume), timeout_s)
        return res.stdout if "Brick " in res.stdout else None

    def start_heal(self, volume: str, full: bool = False, timeout_s: float = 20.0,
                   every_s: float = 0.5) -> bool:
        """``volume heal VOL [full]``, retried: it fails while a self-heal daemon that just
        restarted is still connecting. Whether glusterd accepted it."""
        args = ("volume", "heal", volume, *(["full"] if full else []))
        return wait_until(lambda: self.run(*args, timeout_s=30).ok, timeout_s, every_s)

    def start_force(self, volume: str) -> bool:
        """``volume start VOL force``: restarts any brick process of the volume that is down."""
        return self.run("volume", "start", volume, "force", timeout_s=90).ok

    def create_volume(self, vol: Volume, bricks: Sequence[str], options: dict[str, str]) -> None:
        """Create ``vol`` on ``bricks`` (``host:path``), set ``options`` in one go, start it."""
        layout = ["replica", "3", "arbiter", "1"] if vol.type == "arbiter" else ["replica", "3"]
        self.do("volume", "create", vol.name, *layout, *bricks, "force",
                step=f"create volume {vol.name}")
        pairs = [x for kv in options.items() for x in kv]
        self.do("volume", "set", vol.name, *pairs, step=f"set options of volume {vol.name}")
        self.do("volume", "start", vol.name, step=f"start volume {vol.name}", timeout_s=90)

    def probe_peers(self, addresses: Sequence[str], timeout_s: float = 20.0) -> None:
        for a in addresses:
            self.do("peer", "probe", a, step=f"probe peer {a}", timeout_s=120)
        if not wait_until(lambda: sum(p.connected for p in self.peers()) >= len(addresses),
                          timeout_s, 0.2, ignore=(GlusterError,)):
            raise LabError("wait for peers", f"peers not all connected within {timeout_s:.0f} s")
