"""Like for like: the netns lab imposes the scenario's hardware (``lab: {impose: true}``).

Without it the lab's veth links run as fast as the CPU copies and its loop-device bricks as
fast as the page cache, so an I/O claim would compare the model's 10 GbE and 1 GB/s disks
with whatever this machine does. Imposed:

- NIC speeds: tbf at the NIC's ``gbps`` on both ends of each host's storage and management
  links (the host's egress and the switch port toward it), with a NIC-like 10 ms queue.
  The rates go into the state file first, so a ``link_slowdown`` fault, a migration's shaping
  and their repairs return to the imposed rate, not to an unshaped link
  (:func:`hcisim.lab.netns.network.unshape`).
- Brick disks' bandwidth and IOPS: a block-I/O cgroup per lab host holding its glusterd
  (bricks it forks inherit it) and its brick processes, with the limits on the brick's loop
  device: cgroup v2 ``io.max`` where the unified hierarchy has the io controller, else cgroup
  v1 blkio ``throttle.*_device``. v1 throttles only I/O the process submits itself: O_DIRECT
  (the virt group's strict-o-direct with remote-dio off passes the VMs' O_DIRECT down to
  the brick) and what an fsync writes back; buffered writeback by the kernel's flusher is not
  attributed to the cgroup and runs unthrottled. Glusterd restarts bricks after faults (new
  PIDs, and a new loop device after a disk replacement): :func:`reapply_disks` after every
  repair.

Both scale with the lab's I/O factor (``LabScale.io``: the VMs' demand is scaled by it, so
the hardware is too, keeping the model's utilisations). What could not be imposed is said
in ``meta['imposed']['not_imposed']`` with the kernel's reason; the links always are (tc is
a prerequisite).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from hcisim.lab.netns import gluster, network
from hcisim.lab.netns.layout import HostLayout, LabLayout
from hcisim.lab.netns.state import LabState
from hcisim.lab.process import read_pid
from hcisim.lab.scale import LabScale
from hcisim.scenario import Scenario
from hcisim.scenario.cluster import NetworkRole

# The links whose NIC rate is imposed; a dedicated migration link is shaped only while a
# guest run migrates over it (hcisim.lab.guests.links), at the guests' scale.
IMPOSED: tuple[NetworkRole, ...] = ("storage", "management")
CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX = "hcisim-"
V1_FILES = {"read_bps": "blkio.throttle.read_bps_device",
            "write_bps": "blkio.throttle.write_bps_device",
            "read_iops": "blkio.throttle.read_iops_device",
            "write_iops": "blkio.throttle.write_iops_device"}
V2_KEYS = {"read_bps": "rbps", "write_bps": "wbps", "read_iops": "riops", "write_iops": "wiops"}


def link_plan(sc: Scenario, scale: LabScale) -> dict[str, dict[str, float]]:
    """Host -> lab network (storage, management) -> Mbit/s: its NIC's rate times the I/O
    scale. A NIC carrying both networks gives each lab link its full rate (two veths cannot
    share one tbf): said in the notes."""
    plan: dict[str, dict[str, float]] = {}
    for h in sc.hosts:
        for net in IMPOSED:
            nic = h.nic_for(net)
            if nic is not None:
                plan.setdefault(h.name, {})[net] = nic.gbps * 1000.0 * scale.io
    return plan


def disk_plan(sc: Scenario, scale: LabScale) -> dict[str, dict[str, dict[str, int]]]:
    """Host -> brick disk -> limit (read/write bytes per second and IOPS), scaled by I/O."""
    plan: dict[str, dict[str, dict[str, int]]] = {}
    for v in sc.volumes:
        for b in v.bricks:
            d = sc.host(b.host).disk(b.disk)
            bps, iops = int(d.bandwidth_mb_s * 1e6 * scale.io), max(int(d.iops * scale.io), 1)
            plan.setdefault(b.host, {})[d.name] = {"read_bps": bps, "write_bps": bps,
                                                   "read_iops": iops, "write_iops": iops}
    return plan


def cgroup_flavour(root: Path = CGROUP_ROOT) -> tuple[str | None, str]:
    """("v2", why) / ("v1", why) / (None, why not): which block-I/O controller can limit."""
    controllers = root / "cgroup.controllers"
    if controllers.is_file():
        if "io" in controllers.read_text().split():
            return "v2", "cgroup v2 io.max"
        return None, "cgroup v2 without the io controller"
    unified = root / "unified" / "cgroup.controllers"
    if unified.is_file() and "io" in unified.read_text().split():
        return "v2", "cgroup v2 io.max (hybrid hierarchy)"
    if (root / "blkio" / V1_FILES["write_bps"]).is_file():
        return "v1", ("cgroup v1 blkio throttle (direct and fsync'd I/O only: buffered "
                      "writeback is not attributed to the cgroup)")
    return None, "no blkio (v1) or io (v2) controller mounted"


def lab_cgroup(lab_name: str, flavour: str, root: Path = CGROUP_ROOT) -> Path:
    base = root / "blkio" if flavour == "v1" else (
        root if (root / "cgroup.controllers").is_file() else root / "unified")
    return base / f"{PREFIX}{lab_name}"


def loop_device(mountpoint: Path) -> str | None:
    """The block device mounted at ``mountpoint`` now (a replaced disk is a new loop)."""
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 1 and parts[1] == str(mountpoint) and parts[0].startswith("/dev/"):
                return parts[0]
    return None


def dev_number(dev: str) -> str:
    rdev = os.stat(dev).st_rdev
    return f"{os.major(rdev)}:{os.minor(rdev)}"


def write_limits(cg: Path, flavour: str, devno: str, limit: dict[str, int]) -> None:
    if flavour == "v1":
        for key, fname in V1_FILES.items():
            (cg / fname).write_text(f"{devno} {limit[key]}\n")
    else:
        pairs = " ".join(f"{V2_KEYS[k]}={limit[k]}" for k in V2_KEYS)
        (cg / "io.max").write_text(f"{devno} {pairs}\n")


def make_cgroup(lab_dir_cg: Path, host: str, flavour: str) -> Path:
    lab_dir_cg.mkdir(exist_ok=True)
    if flavour == "v2":  # children get the io controller only if the parent hands it down
        (lab_dir_cg.parent / "cgroup.subtree_control").write_text("+io\n")
        (lab_dir_cg / "cgroup.subtree_control").write_text("+io\n")
    cg = lab_dir_cg / host
    cg.mkdir(exist_ok=True)
    return cg


def brick_host_pids(h: HostLayout) -> list[int]:
    """glusterd first (bricks it starts later are born in its cgroup), then its bricks."""
    pids = [read_pid(h.pidfile), *gluster.brick_pids(h)]
    return [p for p in pids if p]


def move_pids(cg: Path, pids: list[int]) -> list[int]:
    """Put each PID (all its threads) in ``cg``; the ones that are gone are skipped."""
    moved = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            (cg / "cgroup.procs").write_text(f"{pid}\n")
            moved.append(pid)
    return moved


def apply_disks(lab: LabLayout, sc: Scenario, scale: LabScale,
                root: Path = CGROUP_ROOT) -> dict[str, Any]:
    """Limit every brick disk of the lab; what was done, or why not (never raises for
    what the kernel refuses: the run goes on, and meta says the disks were not imposed)."""
    flavour, why = cgroup_flavour(root)
    report: dict[str, Any] = {"mechanism": why, "disks": {}, "not_imposed": []}
    if flavour is None:
        report["not_imposed"].append(f"disk limits: {why}")
        return report
    cg_lab = lab_cgroup(lab.name, flavour, root)
    for host, disks in disk_plan(sc, scale).items():
        h = lab.host(host)
        try:
            cg = make_cgroup(cg_lab, host, flavour)
            for disk, limit in disks.items():
                dev = loop_device(h.disk_mount(disk))
                if dev is None:
                    report["not_imposed"].append(f"{host}/{disk}: brick filesystem not mounted")
                    continue
                devno = dev_number(dev)
                write_limits(cg, flavour, devno, limit)
                report["disks"].setdefault(host, {})[disk] = {
                    "device": dev, "devno": devno, **limit, "cgroup": str(cg)}
            report.setdefault("pids", {})[host] = move_pids(cg, brick_host_pids(h))
        except OSError as exc:
            report["not_imposed"].append(f"{host} disk limits: {exc.strerror or exc} "
                                         f"({getattr(exc, 'filename', '')})")
    return report


def impose(lab: LabLayout, sc: Scenario, scale: LabScale, state: LabState) -> dict[str, Any]:
    """Impose the NIC rates and disk limits on a deployed lab; ``meta['imposed']``."""
    links = link_plan(sc, scale)
    state.set("imposed_links", links)  # before the qdiscs: every unshape returns to these
    for host, rates in links.items():
        network.impose_links(lab, lab.host(host), rates)
    disks = apply_disks(lab, sc, scale)
    notes = ["disk and NIC limits are the scenario's times the lab's I/O scale "
             f"({scale.io:g})"]
    for h in sc.hosts:
        shared = [n.name for n in h.nics if {"storage", "management"} <= set(n.networks)]
        if shared:
            notes.append(f"{h.name}: NIC {shared[0]} carries storage and management; each "
                         "lab link gets its full rate (not shared)")
    from hcisim.lab.guests.links import QUEUE_MS

    report = {"links_mbit": links, "queue_ms": QUEUE_MS, "disk_mechanism": disks["mechanism"],
              "disks": disks["disks"], "not_imposed": disks["not_imposed"], "notes": notes}
    state.set("imposed", report)
    return report


def reapply_disks(lab: LabLayout, sc: Scenario, scale: LabScale,
                  imposed: dict[str, Any] | None) -> None:
    """After a repair: the restarted glusterd and bricks (new PIDs) back in their cgroup, the
    limits on the current loop devices; ``imposed`` (``meta['imposed']``) updated: the
    disks' devices now, and what could not be done."""
    report = apply_disks(lab, sc, scale)
    if imposed is not None:
        imposed["disks"] = report["disks"]
        imposed["not_imposed"] = sorted({*imposed["not_imposed"], *(
            f"after a repair: {r}" for r in report["not_imposed"])})


def lab_cgroups(lab_name: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """Every cgroup directory of the lab (hosts first, then the lab's), v1 or v2."""
    found: list[Path] = []
    for base in (root / "blkio", root / "unified", root):
        d = base / f"{PREFIX}{lab_name}"
        if d.is_dir():
            found += [*sorted(p for p in d.iterdir() if p.is_dir()), d]
    return found


def remove_cgroups(lab_name: str, root: Path = CGROUP_ROOT) -> list[str]:
    """Remove the lab's cgroups (its processes are gone by now; a straggler is moved to the
    hierarchy's root first); the ones that could not be removed."""
    left = []
    for cg in lab_cgroups(lab_name, root):
        top = cg.parent if cg.name.startswith(PREFIX) else cg.parent.parent
        procs = cg / "cgroup.procs"
        if procs.is_file():
            for pid in procs.read_text().split():
                with contextlib.suppress(OSError):
                    (top / "cgroup.procs").write_text(f"{pid}\n")
        try:
            cg.rmdir()
        except OSError:
            left.append(str(cg))
    return left
