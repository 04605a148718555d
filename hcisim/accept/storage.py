"""Checks of what lies under the bricks: XFS as HCI deployments make it, room for the
volume and its file count, and one MTU on the storage network.

HCI deployments (gluster-ansible, oVirt) format bricks ``mkfs.xfs -f -K -i size=512 -n
size=8192`` and mount them ``inode64,noatime,nodiratime``; an arbiter brick needs about
4 KiB per file (reference/semantics.md). Several volumes' bricks may share one filesystem
(as in the labs), so space and inodes are summed per filesystem.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field

from hcisim.accept.rows import CheckRow, row
from hcisim.accept.ssh import Shell
from hcisim.lab.gluster import GlusterError, VolumeInfo
from hcisim.lab.hosts import own_addresses
from hcisim.lab.node import sh
from hcisim.scenario import Scenario

MOUNT_OPTIONS = ("inode64", "noatime", "nodiratime")
XFS_ISIZE = 512
XFS_NAMING_BSIZE = 8192
ARBITER_BYTES_PER_FILE = 4096
MIN_FREE_PCT = 10.0  # cluster.min-free-disk default


@dataclass(frozen=True)
class XfsInfo:
    isize: int
    naming_bsize: int
    bsize: int
    imaxpct: int


def parse_xfs_info(text: str) -> XfsInfo:
    def num(pattern: str) -> int:
        m = re.search(pattern, text, re.S)
        if not m:
            raise GlusterError(f"xfs_info: no {pattern!r} in {text.strip()[:200]!r}")
        return int(m.group(1))

    return XfsInfo(isize=num(r"isize=(\d+)"), naming_bsize=num(r"naming\s+=.*?bsize=(\d+)"),
                   bsize=num(r"\ndata\s+=.*?bsize=(\d+)"), imaxpct=num(r"imaxpct=(\d+)"))


@dataclass
class BrickFs:
    """One filesystem holding bricks of this host, and what the scenario asks of it."""

    target: str
    fstype: str
    options: tuple[str, ...]
    bricks: list[str] = field(default_factory=list)
    need_bytes: float = 0.0
    need_files: int = 0
    why: list[str] = field(default_factory=list)


def parse_findmnt(text: str) -> tuple[str, tuple[str, ...], str]:
    """``findmnt -n -o FSTYPE,OPTIONS,TARGET -T PATH``: (fstype, options, mount point)."""
    parts = text.strip().split(None, 2)
    if len(parts) < 3:
        raise GlusterError(f"findmnt: unexpected output {text.strip()[:100]!r}")
    return parts[0], tuple(parts[1].split(",")), parts[2]


def parse_df(text: str) -> tuple[int, int, int, int]:
    """``df -B1 --output=size,avail,itotal,iavail PATH``: the numbers of its last line."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    nums = lines[-1].split() if lines else []
    if len(nums) != 4 or not all(n.isdigit() for n in nums):
        raise GlusterError(f"df: unexpected output {text.strip()[-100:]!r}")
    size, avail, itotal, iavail = (int(n) for n in nums)
    return size, avail, itotal, iavail


def local_filesystems(sc: Scenario, shell: Shell, uuid: str,
                      volumes: dict[str, VolumeInfo]) -> dict[str, BrickFs]:
    """This host's brick filesystems (bricks owned by its glusterd UUID), with their needs."""
    found: dict[str, BrickFs] = {}
    for vol in sc.volumes:
        info = volumes.get(vol.name)
        if info is None:
            continue
        for b in info.bricks:
            if b.host_uuid != uuid:
                continue
            res = shell.run(["findmnt", "-n", "-o", "FSTYPE,OPTIONS,TARGET", "-T", b.path],
                            30)
            fstype, options, target = parse_findmnt(res.stdout)
            fs = found.setdefault(target, BrickFs(target, fstype, options))
            fs.bricks.append(f"{vol.name}:{b.path}")
            fs.need_files += vol.files
            if b.is_arbiter:
                need = float(vol.files * ARBITER_BYTES_PER_FILE)
                fs.why.append(f"{vol.name} arbiter {need / 1e9:.3g} GB")
            else:
                need = vol.size_gb * 1e9
                fs.why.append(f"{vol.name} {vol.size_gb:g} GB")
            fs.need_bytes += need
    return found


def brick_rows(sc: Scenario, host: str, shell: Shell, uuid: str | None,
               volumes: dict[str, VolumeInfo]) -> list[CheckRow]:
    if uuid is None:
        return []
    try:
        filesystems = local_filesystems(sc, shell, uuid, volumes)
    except GlusterError as exc:
        return [row("brick filesystem", host, "readable", str(exc), False)]
    rows = []
    for fs in filesystems.values():
        subject = fs.target
        rows.append(row("brick filesystem", host, "xfs", fs.fstype, fs.fstype == "xfs", subject))
        missing = [o for o in MOUNT_OPTIONS if o not in fs.options]
        rows.append(row("brick mount options", host, ",".join(MOUNT_OPTIONS),
                        ",".join(o for o in fs.options if o in MOUNT_OPTIONS)
                        + (f" (missing {','.join(missing)})" if missing else ""),
                        not missing, subject))
        if fs.fstype == "xfs":
            rows += _xfs_rows(host, shell, fs.target, subject)
        rows += _space_rows(host, shell, fs, subject)
    return rows


def _xfs_rows(host: str, shell: Shell, target: str, subject: str) -> list[CheckRow]:
    res = shell.run(["xfs_info", target], 30)
    try:
        xfs = parse_xfs_info(res.stdout)
    except GlusterError as exc:
        return [row("xfs inode size", host, f"isize={XFS_ISIZE}", str(exc), False, subject)]
    return [
        row("xfs inode size", host, f"isize={XFS_ISIZE}", f"isize={xfs.isize}",
            xfs.isize == XFS_ISIZE, subject),
        row("xfs naming size", host, f"naming bsize={XFS_NAMING_BSIZE}",
            f"naming bsize={xfs.naming_bsize}", xfs.naming_bsize == XFS_NAMING_BSIZE, subject),
    ]


def _space_rows(host: str, shell: Shell, fs: BrickFs, subject: str) -> list[CheckRow]:
    res = shell.run(["df", "-B1", "--output=size,avail,itotal,iavail", fs.target], 30)
    try:
        size, avail, itotal, iavail = parse_df(res.stdout)
    except GlusterError as exc:
        return [row("brick space", host, "readable", str(exc), False, subject)]
    free_pct = 100.0 * avail / size if size else 0.0
    return [
        row("brick space", host, f">= {fs.need_bytes / 1e9:.3g} GB ({'; '.join(fs.why)})",
            f"{size / 1e9:.3g} GB", size >= fs.need_bytes, subject),
        row("brick free space", host, f">= {MIN_FREE_PCT:g}% free (cluster.min-free-disk)",
            f"{free_pct:.1f}% free ({avail / 1e9:.3g} GB)", free_pct >= MIN_FREE_PCT, subject,
            warn=True),
        row("brick inodes", host, f">= {fs.need_files} inodes (scenario file count)",
            f"{itotal} total, {iavail} free", itotal >= fs.need_files, subject),
    ]


def storage_interface(shell: Shell, address: str) -> str | None:
    """The interface that holds ``address`` (a brick's host name or IP) on this server."""
    ip = address
    try:
        ipaddress.ip_address(address)
    except ValueError:
        res = shell.run(sh(f"getent ahosts {shlex.quote(address)} | awk 'NR==1{{print $1}}'"),
                        30)
        ip = res.stdout.strip()
        if not ip:
            return None
    res = shell.run(["ip", "-o", "addr", "show"], 30)
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[2] in ("inet", "inet6") and parts[3].split("/")[0] == ip:
            return parts[1].split("@")[0]
    return None


def link_mtu(shell: Shell, ifname: str) -> int | None:
    # netlink (ip), not /sys/class/net: sysfs shows the namespace it was mounted in.
    res = shell.run(["ip", "-o", "link", "show", "dev", ifname], 30)
    m = re.search(r"\bmtu (\d+)", res.stdout)
    return int(m.group(1)) if m else None


def storage_mtu_rows(sc: Scenario, shells: dict[str, Shell], uuids: dict[str, str],
                     volumes: dict[str, VolumeInfo]) -> list[CheckRow]:
    """The storage NIC's MTU on each host: all equal, and the scenario's value."""
    want = sc.network("storage").mtu
    mtus: dict[str, tuple[str | None, int | None]] = {}
    for host, shell in shells.items():
        ifname = shell.target.storage_if
        if ifname is None:
            addrs = own_addresses(volumes, uuids.get(host))
            ifname = storage_interface(shell, addrs[0]) if addrs else None
        mtus[host] = (ifname, link_mtu(shell, ifname) if ifname else None)
    seen = {m for _, m in mtus.values() if m is not None}
    rows = []
    for host, (ifname, mtu) in mtus.items():
        if mtu is None:
            rows.append(row("storage MTU", host, f"{want} on every host",
                            f"interface not found ({ifname or 'no brick address'})", False))
            continue
        equal = len(seen) == 1 and all(m is not None for _, m in mtus.values())
        note = "" if equal else f" (hosts differ: {sorted(seen)})"
        rows.append(row("storage MTU", host, f"{want} on every host",
                        f"{mtu} on {ifname}{note}", equal and mtu == want, ifname or "",
                        warn=equal))
    return rows
