"""testinfra checks of a deployed libvirt lab, for ``pytest validators --target lab:libvirt``.

Each check takes a testinfra host (``ssh://HOST`` through the lab's ssh_config) and the
lab's scenario, and returns a list of problems (empty: the node is as intended). The
validators parametrize a test over :func:`node_checks` x the lab's hosts::

    from hcisim.lab.libvirt.checks import LabTarget, node_checks
    lab = LabTarget.load(Path(be.meta()["lab_dir"]))   # or LabTarget.from_backend(be)
    for host in lab.hosts:
        for name, check in node_checks():
            assert check(lab.host(host), lab) == [], f"{name} on {host}"

pytest-testinfra drives the ``ssh`` binary with the lab's ssh_config, the same way the
harness does (keys only, shared connections).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcisim.lab.gluster import parse_group_file, parse_volume_get, scenario_options
from hcisim.lab.libvirt import deploy
from hcisim.scenario import Scenario, load_scenario

MAX_CLOCK_OFFSET_S = 1.0


@dataclass(frozen=True)
class LabTarget:
    """A running libvirt lab as the checks see it: its scenario, hosts and ssh_config."""

    directory: Path
    scenario: Scenario

    @classmethod
    def load(cls, directory: Path) -> LabTarget:
        return cls(directory, load_scenario(directory / "scenario.yaml"))

    @property
    def hosts(self) -> list[str]:
        return [h.name for h in self.scenario.hosts]

    def host(self, name: str) -> Any:
        try:
            import testinfra
        except ImportError:
            raise ImportError("the node checks need pytest-testinfra: "
                              "pip install 'hcisim[accept]'") from None

        return testinfra.get_host(f"ssh://{name}", ssh_config=str(self.directory / "ssh_config"))


def services_running(host: Any, lab: LabTarget) -> list[str]:
    """glusterd, one glusterfsd per local brick, the FUSE clients and shd, sshd, chronyd."""
    problems = []
    name = host.check_output("hostname")
    bricks = sum(1 for v in lab.scenario.volumes if v.brick_on(name) is not None)
    for proc, want in (("glusterd", 1), ("glusterfsd", bricks), ("sshd", 1), ("chronyd", 1),
                       ("glusterfs", len(lab.scenario.volumes) + (1 if bricks else 0))):
        got = len(host.process.filter(comm=proc))
        if got < want:
            problems.append(f"{proc}: {got} running, want {want}")
    return problems


def volume_options(host: Any, lab: LabTarget) -> list[str]:
    """Every option of the virt group and of the scenario reads back as set."""
    problems = []
    group = parse_group_file(host.file("/var/lib/glusterd/groups/virt").content_string)
    for v in lab.scenario.volumes:
        got = parse_volume_get(host.check_output(f"{deploy.GLUSTER} --xml volume get {v.name} all"))
        want = {**group, **scenario_options(v)}
        for key, value in want.items():
            if key in got and not _same(got[key], value):
                problems.append(f"{v.name} {key}: {got[key]!r}, want {value!r}")
            elif key not in got and key.startswith(("cluster.", "network.", "features.")):
                problems.append(f"{v.name} {key}: not set")
    return problems


def _same(got: str, want: str) -> bool:
    norm = {"on": "on", "enable": "on", "true": "on", "yes": "on",
            "off": "off", "disable": "off", "false": "off", "no": "off"}
    g, w = got.split()[0].lower(), want.lower()
    return norm.get(g, g) == norm.get(w, w) or g.rstrip("b") == w.rstrip("b")


def brick_filesystems(host: Any, lab: LabTarget) -> list[str]:
    """Each brick disk: XFS, mounted inode64,noatime, 512-byte inodes, 8 KiB directory blocks."""
    problems = []
    name = host.check_output("hostname")
    disks = {lab.scenario.host(name).disk(b.disk).name
             for v in lab.scenario.volumes for b in v.bricks if b.host == name}
    for disk in sorted(disks):
        mp = host.mount_point(deploy.brick_dir(disk))
        if not mp.exists:
            problems.append(f"{deploy.brick_dir(disk)}: not mounted")
            continue
        if mp.filesystem != "xfs":
            problems.append(f"{deploy.brick_dir(disk)}: {mp.filesystem}, want xfs")
        for opt in ("inode64", "noatime"):
            if opt not in mp.options:
                problems.append(f"{deploy.brick_dir(disk)}: mounted without {opt}")
        info = host.check_output(f"xfs_info {deploy.brick_dir(disk)}")
        if "isize=512" not in info or "bsize=8192" not in info.split("naming", 1)[-1]:
            problems.append(f"{deploy.brick_dir(disk)}: not formatted -i size=512 -n size=8192")
    for v in lab.scenario.volumes:
        mp = host.mount_point(deploy.mount_point(v.name))
        if not mp.exists or mp.filesystem != "fuse.glusterfs":
            problems.append(f"{deploy.mount_point(v.name)}: no glusterfs FUSE mount")
    return problems


def time_in_sync(host: Any, lab: LabTarget) -> list[str]:
    """The node's clock is within MAX_CLOCK_OFFSET_S of the harness's (the lab's clock)."""
    t0 = time.time()
    node = float(host.check_output("date +%s.%N"))
    t1 = time.time()
    offset = node - (t0 + t1) / 2
    if abs(offset) > MAX_CLOCK_OFFSET_S + (t1 - t0) / 2:
        return [f"clock offset {offset:+.3f} s (round trip {t1 - t0:.3f} s)"]
    return []


Check = Callable[[Any, LabTarget], list[str]]


def node_checks() -> list[tuple[str, Check]]:
    return [("services running", services_running), ("volume options", volume_options),
            ("brick filesystems", brick_filesystems), ("time in sync", time_in_sync)]


def check_lab(lab: LabTarget) -> dict[str, dict[str, list[str]]]:
    """Every check on every node: host -> check name -> problems."""
    return {h: {name: fn(lab.host(h), lab) for name, fn in node_checks()} for h in lab.hosts}
