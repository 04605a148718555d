"""The node checks of a deployed libvirt lab: the acceptance's read-only checks, over the
lab's SSH (for ``pytest validators --target lab:libvirt``).

One set of checks serves both: a libvirt lab is judged like existing servers (glusterd,
peers, volume layout and options, self-heal daemons, pending heal, FUSE mounts, brick
filesystems, storage MTU, clocks), each node reached as ``ssh://HOST`` through the lab's
ssh_config. The brick size checks are left out: a lab's disks are scaled down
(:class:`hcisim.lab.scale.LabScale`), so they would fail by design.
"""

from __future__ import annotations

from pathlib import Path

from hcisim.scenario import load_scenario

SCALED = frozenset({"brick space", "brick inodes", "brick free space"})
MAX_CLOCK_OFFSET_S = 1.0


def check_lab(directory: Path) -> dict[str, dict[str, list[str]]]:
    """Every check on every node of the lab in ``directory``: host (or ``cluster``) ->
    check -> problems (empty: as intended)."""
    from hcisim.accept.checks import run_checks
    from hcisim.accept.ssh import HostShell
    from hcisim.accept.targets import HostTarget

    sc = load_scenario(directory / "scenario.yaml")
    config = directory / "ssh_config"
    shells = {h: HostShell(HostTarget(h, name=h), config) for h in sc.host_names}
    found: dict[str, dict[str, list[str]]] = {}
    for r in run_checks(sc, dict(shells), MAX_CLOCK_OFFSET_S).rows:
        if r.check in SCALED:
            continue
        problems = found.setdefault(r.host, {}).setdefault(r.check, [])
        if r.verdict == "fail":
            subject = f"{r.subject}: " if r.subject else ""
            problems.append(f"{subject}{r.actual}, want {r.expected}")
    return found
