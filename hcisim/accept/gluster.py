"""What a server's glusterd says, read through its CLI (``--xml`` where it has one).

Parsers are pure functions of the CLI's text so that they are tested on outputs captured
from a real Gluster 10.3 cluster (tests/accept/fixtures); the query functions only add the
command line, which differs per server (see :meth:`HostTarget.gluster_cli`).
"""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from hcisim.accept.ssh import Shell


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
class BrickHeal:
    """One brick's line of ``heal info summary``; None where the brick did not answer."""

    brick: str
    connected: bool
    pending: int | None
    split_brain: int | None
    healing: int | None


@dataclass(frozen=True)
class XfsInfo:
    isize: int
    naming_bsize: int
    bsize: int
    imaxpct: int


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


def parse_xfs_info(text: str) -> XfsInfo:
    def num(pattern: str) -> int:
        m = re.search(pattern, text, re.S)
        if not m:
            raise GlusterError(f"xfs_info: no {pattern!r} in {_first_line(text)!r}")
        return int(m.group(1))

    return XfsInfo(isize=num(r"isize=(\d+)"), naming_bsize=num(r"naming\s+=.*?bsize=(\d+)"),
                   bsize=num(r"\ndata\s+=.*?bsize=(\d+)"), imaxpct=num(r"imaxpct=(\d+)"))


def parse_uuid(text: str) -> str:
    m = re.search(r"UUID[:=]\s*([0-9a-f-]{36})", text)
    if not m:
        raise GlusterError(f"uuid get: {_first_line(text)!r}")
    return m.group(1)


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["empty output"])[0][:200]


# --- queries -------------------------------------------------------------------------


def gluster(shell: Shell, args: str, timeout_s: float = 60.0) -> str:
    """Run the server's gluster CLI; GlusterError with its message when it fails."""
    res = shell.run(f"{shell.target.gluster_cli()} {args}", timeout_s=timeout_s)
    if not res.ok and "<cliOutput>" not in res.stdout:
        msg = _first_line(res.stderr or res.stdout)
        raise GlusterError(f"gluster {args.split()[0] if args else ''}: {msg} (rc {res.rc})")
    return res.stdout


def host_uuid(shell: Shell) -> str:
    return parse_uuid(gluster(shell, "system:: uuid get"))


def peers(shell: Shell) -> list[Peer]:
    return parse_peers(gluster(shell, "--xml peer status"))


def volume_info(shell: Shell, volume: str) -> VolumeInfo | None:
    res = shell.run(f"{shell.target.gluster_cli()} --xml volume info {shlex.quote(volume)}")
    if "does not exist" in res.stdout + res.stderr:
        return None
    vols = parse_volume_info(res.stdout)
    return vols[0] if vols else None


def volume_status(shell: Shell, volume: str) -> list[ProcessStatus]:
    return parse_volume_status(gluster(shell, f"--xml volume status {shlex.quote(volume)}"))


def volume_options(shell: Shell, volume: str) -> dict[str, str]:
    return parse_volume_get(gluster(shell, f"--xml volume get {shlex.quote(volume)} all"))


def heal_summary_command(shell: Shell, volume: str) -> str:
    """``volume heal VOL info summary``; with a custom glusterd socket the CLI's helper
    (glfsheal) would look for the default socket, so call it directly with the socket."""
    t = shell.target
    if t.glusterd_sock is None:
        return f"{t.gluster_cli()} volume heal {shlex.quote(volume)} info summary"
    finder = ("h=$(command -v glfsheal || ls /usr/lib/*/glusterfs/glfsheal "
              "/usr/libexec/glusterfs/glfsheal /usr/sbin/glfsheal 2>/dev/null | head -n1)")
    return (f'{finder}; "$h" {shlex.quote(volume)} info-summary '
            f"glusterd-sock {shlex.quote(t.glusterd_sock)}")


def heal_summary(shell: Shell, volume: str, timeout_s: float = 90.0) -> list[BrickHeal]:
    res = shell.run(heal_summary_command(shell, volume), timeout_s=timeout_s)
    bricks = parse_heal_summary(res.stdout)
    if not bricks:
        raise GlusterError(f"heal info summary of {volume}: "
                           f"{_first_line(res.stderr or res.stdout)} (rc {res.rc})")
    return bricks


def start_heal(shell: Shell, volume: str) -> bool:
    """Ask the self-heal daemons to heal now (right after a brick returns it may refuse)."""
    res = shell.run(f"{shell.target.gluster_cli()} volume heal {shlex.quote(volume)}",
                    timeout_s=60)
    return res.ok


def start_volume_force(shell: Shell, volume: str) -> bool:
    """``volume start VOL force``: restarts any brick process of the volume that is down."""
    res = shell.run(f"{shell.target.gluster_cli()} volume start {shlex.quote(volume)} force",
                    timeout_s=90)
    return res.ok
