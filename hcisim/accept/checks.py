"""Read-only acceptance checks: each one a row (check, host, expected, actual, verdict).

Nothing here changes a server. Checks run per scenario host through its :class:`Shell`;
cluster-wide facts (volume layout, options, heal) are read from the first host that
answers. A check that cannot be read is a ``fail`` row saying why, never a crash: the
acceptance report must show every gap at once.

Namespace-lab nodes share one filesystem and process table with each other; checks are
therefore scoped by what belongs to the node's own glusterd (its working directory, its
socket, its UUID) rather than by "whatever runs on this machine".
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from hcisim.accept.remote import mount_answers
from hcisim.accept.rows import CheckRow, row
from hcisim.accept.ssh import Shell, gluster_of
from hcisim.accept.storage import brick_rows, storage_mtu_rows
from hcisim.accept.virt import expected_options, same_value
from hcisim.lab.gluster import GlusterError, VolumeInfo, parse_group_file
from hcisim.lab.hosts import own_addresses
from hcisim.scenario import Scenario, Volume


@dataclass
class ClusterView:
    """What the checks learnt so far: each host's glusterd UUID and the volumes' layout."""

    sc: Scenario
    shells: dict[str, Shell]
    uuids: dict[str, str]
    volumes: dict[str, VolumeInfo]

    def host_of_uuid(self, uuid: str) -> str | None:
        for host, u in self.uuids.items():
            if u == uuid:
                return host
        return None

    @property
    def first(self) -> tuple[str, Shell]:
        name = next(iter(self.shells))
        return name, self.shells[name]


def glusterd_process_rows(host: str, shell: Shell) -> list[CheckRow]:
    """This server's glusterd, told apart by its working directory (shared process tables)."""
    res = shell.run(["ps", "-eo", "pid=,comm=,args="], 30)
    workdir = shell.target.glusterd_workdir
    mine = [line for line in res.stdout.splitlines()
            if _comm(line) == "glusterd" and _uses_workdir(line, workdir)]
    pids = ", ".join(line.split()[0] for line in mine) or "none"
    return [row("glusterd running", host, f"1 process (workdir {workdir})",
                f"pid {pids}" if mine else "not running", len(mine) == 1)]


def _comm(ps_line: str) -> str:
    parts = ps_line.split(None, 2)
    return parts[1] if len(parts) > 1 else ""


def _uses_workdir(ps_line: str, workdir: str) -> bool:
    m = re.search(r"working-directory=(\S+)", ps_line)
    if m is None:
        return workdir.rstrip("/") == "/var/lib/glusterd"
    return m.group(1).rstrip("/") == workdir.rstrip("/")


def peer_rows(view: ClusterView) -> list[CheckRow]:
    want = len(view.sc.hosts) - 1
    rows = []
    for host, shell in view.shells.items():
        try:
            peers = gluster_of(shell).peers()
        except GlusterError as exc:
            rows.append(row("peers connected", host, f"{want} peers in cluster", str(exc), False))
            continue
        good = [p for p in peers if p.connected and p.state == "Peer in Cluster"]
        bad = [f"{p.hostname} ({p.state}, {'connected' if p.connected else 'disconnected'})"
               for p in peers if p not in good]
        actual = f"{len(good)} connected" + (f"; not: {', '.join(bad)}" if bad else "")
        rows.append(row("peers connected", host, f"{want} peers in cluster, connected",
                        actual, len(good) == want and not bad))
    return rows


def volume_layout_rows(view: ClusterView, vol: Volume) -> list[CheckRow]:
    info = view.volumes.get(vol.name)
    if info is None:
        return [row("volume exists", "cluster", "present", "missing", False, vol.name)]
    rows = [row("volume started", "cluster", "Started", info.status, info.status == "Started",
                vol.name)]
    want_arb = 1 if vol.type == "arbiter" else 0
    want = "Replicate, replica 3" + (" arbiter 1" if want_arb else "")
    actual = f"{info.type_str}, replica {info.replica_count}" + (
        f" arbiter {info.arbiter_count}" if info.arbiter_count else "")
    rows.append(row("volume type", "cluster", want, actual,
                    info.type_str == "Replicate" and info.replica_count == 3
                    and info.arbiter_count == want_arb and len(info.bricks) == 3, vol.name))
    want_hosts = [b.host for b in vol.bricks]
    got_hosts = [view.host_of_uuid(b.host_uuid) or f"? ({b.host})" for b in info.bricks]
    layout_ok = got_hosts == want_hosts
    if vol.type == "arbiter" and len(info.bricks) == 3:
        layout_ok = layout_ok and info.bricks[2].is_arbiter
    rows.append(row("brick layout", "cluster",
                    " ".join(want_hosts) + (" (last is arbiter)" if want_arb else ""),
                    " ".join(got_hosts) + (" (last is arbiter)" if info.bricks
                                           and info.bricks[-1].is_arbiter else ""),
                    layout_ok, vol.name))
    return rows


def option_rows(view: ClusterView, vol: Volume) -> list[CheckRow]:
    if vol.name not in view.volumes:
        return []
    _, shell = view.first
    group_text = shell.run(
        ["cat", f"{shell.target.glusterd_workdir}/groups/virt"], 30)
    group = parse_group_file(group_text.stdout) if group_text.ok else None
    try:
        actual = gluster_of(shell).volume_options(vol.name)
    except GlusterError as exc:
        return [row("volume options", "cluster", "readable", str(exc), False, vol.name)]
    # ``volume get all`` leaves out user.* options (user.cifs is in the virt group); the
    # options set on the volume, as ``volume info`` lists them, fill the gap.
    actual = {**actual, **view.volumes[vol.name].options}
    rows = []
    for name, value in expected_options(vol, group).items():
        got = actual.get(name)
        rows.append(row(f"option {name}", "cluster", value, "unset" if got is None else got,
                        same_value(name, value, got), vol.name))
    return rows


def shd_rows(view: ClusterView, vol: Volume) -> list[CheckRow]:
    """Self-heal daemons online on every host (glusterd's view, scoped by host UUID)."""
    if vol.name not in view.volumes:
        return []
    _, shell = view.first
    try:
        procs = gluster_of(shell).volume_status(vol.name)
    except GlusterError as exc:
        return [row("self-heal daemon", "cluster", "online", str(exc), False, vol.name)]
    rows = []
    for host, uuid in view.uuids.items():
        shd = [p for p in procs if p.kind == "shd" and p.peer_id == uuid]
        online = [p for p in shd if p.online]
        rows.append(row("self-heal daemon", host, "online",
                        f"online, pid {online[0].pid}" if online else "offline",
                        bool(online), vol.name))
        bricks = [p for p in procs if p.kind == "brick" and p.peer_id == uuid]
        for b in bricks:
            rows.append(row("brick process", host, "online",
                            f"online, pid {b.pid}" if b.online else "offline", b.online,
                            f"{vol.name}:{b.path}"))
    return rows


def heal_rows(view: ClusterView, vol: Volume) -> list[CheckRow]:
    if vol.name not in view.volumes:
        return []
    _, shell = view.first
    try:
        bricks = gluster_of(shell).heal_summary(vol.name)
    except GlusterError as exc:
        return [row("pending heal", "cluster", "0 entries", str(exc), False, vol.name)]
    unreadable = [b.brick for b in bricks if not b.connected or b.pending is None]
    pending = sum(b.pending or 0 for b in bricks)
    split = sum(b.split_brain or 0 for b in bricks)
    extra = f"; bricks not answering: {', '.join(unreadable)}" if unreadable else ""
    return [
        row("pending heal", "cluster", "0 entries", f"{pending} entries{extra}",
            pending == 0 and not unreadable, vol.name),
        row("split-brain", "cluster", "0 entries", f"{split} entries{extra}",
            split == 0 and not unreadable, vol.name),
    ]


def clock_offsets(shells: dict[str, Shell],
                  clock: Callable[[], float] = time.time) -> dict[str, tuple[float, float] | str]:
    """Each server's clock minus ours, from the midpoint of the round trip: (offset, ±slack),
    or the unreadable output."""
    out: dict[str, tuple[float, float] | str] = {}
    for host, shell in shells.items():
        t0 = clock()
        res = shell.run(["date", "+%s.%N"], 30)
        t1 = clock()
        try:
            out[host] = (float(res.stdout.strip()) - (t0 + t1) / 2, (t1 - t0) / 2)
        except ValueError:
            out[host] = res.stdout.strip()[:40]
    return out


def mount_rows(view: ClusterView) -> list[CheckRow]:
    """Each scenario volume mounted (FUSE, as oVirt mounts it) on each host, and answering:
    a host that cannot reach a volume cannot run that volume's VMs."""
    rows = []
    want = "FUSE mount that answers"
    for host, shell in view.shells.items():
        own = own_addresses(view.volumes, view.uuids.get(host))
        for vol in [v for v in view.sc.volumes if v.name in view.volumes]:  # else: missing
            point, wrong = mount_answers(shell, vol.name, own)
            rows.append(row("volume mounted", host, want,
                            f"{point}: {wrong}" if point and wrong else wrong or str(point),
                            not wrong, vol.name))
    return rows


def clock_rows(offsets: dict[str, tuple[float, float] | str],
               tolerance_s: float) -> list[CheckRow]:
    rows = []
    for host, got in offsets.items():
        want = f"|offset| <= {tolerance_s} s"
        if isinstance(got, str):
            rows.append(row("clock in sync", host, want, f"unreadable date: {got!r}", False))
            continue
        offset, slack = got
        rows.append(row("clock in sync", host, want, f"{offset:+.3f} s (±{slack:.3f})",
                        abs(offset) - slack <= tolerance_s))
    return rows


def gather_view(sc: Scenario, shells: dict[str, Shell]) -> tuple[ClusterView, list[CheckRow]]:
    """Each host's glusterd UUID (and whether it answers), and the scenario's volumes."""
    rows: list[CheckRow] = []
    uuids: dict[str, str] = {}
    for host, shell in shells.items():
        rows += glusterd_process_rows(host, shell)
        try:
            uuids[host] = gluster_of(shell).uuid()
            rows.append(row("glusterd answers", host, "CLI answers", f"uuid {uuids[host]}", True))
        except GlusterError as exc:
            rows.append(row("glusterd answers", host, "CLI answers", str(exc), False))
    view = ClusterView(sc, shells, uuids, {})
    answering = [h for h in shells if h in uuids]
    if answering:
        shell = shells[answering[0]]
        for vol in sc.volumes:
            try:
                info = gluster_of(shell).volume_info(vol.name)
            except GlusterError:
                info = None
            if info is not None:
                view.volumes[vol.name] = info
    return view, rows


@dataclass
class CheckReport:
    """The rows, and what the checks learnt that later steps reuse."""

    rows: list[CheckRow]
    view: ClusterView


def run_checks(sc: Scenario, shells: dict[str, Shell], clock_tolerance_s: float = 0.5,
               clock: Callable[[], float] = time.time) -> CheckReport:
    """Every read-only check of the acceptance, in the order the report shows them."""
    view, rows = gather_view(sc, shells)
    rows += peer_rows(view)
    for vol in sc.volumes:
        rows += volume_layout_rows(view, vol)
        rows += shd_rows(view, vol)
        rows += option_rows(view, vol)
        rows += heal_rows(view, vol)
    rows += mount_rows(view)
    for host, shell in shells.items():
        rows += brick_rows(view.sc, host, shell, view.uuids.get(host), view.volumes)
    rows += storage_mtu_rows(sc, shells, view.uuids, view.volumes)
    offsets = clock_offsets(shells, clock)
    rows += clock_rows(offsets, clock_tolerance_s)
    return CheckReport(rows, view)
