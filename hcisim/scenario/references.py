"""Cross-reference checks of a scenario; each error names the path of the bad field."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hcisim.scenario.scenario import Scenario


class ReferenceError_(ValueError):
    """A name in the scenario points at nothing; ``path`` says where."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _unique(names: list[str], path: str) -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            raise ReferenceError_(f"{path}[{i}].name", f"duplicate name {n!r}")
        seen.add(n)


def check_references(sc: Scenario) -> None:
    hosts = {h.name: h for h in sc.hosts}
    _unique([h.name for h in sc.hosts], "hosts")
    _unique([v.name for v in sc.volumes], "volumes")
    _unique([v.name for v in sc.vms], "vms")
    roles = [n.role for n in sc.networks]
    for i, r in enumerate(roles):
        if roles.count(r) > 1:
            raise ReferenceError_(f"networks[{i}].role", f"network {r!r} given twice")
    for i, h in enumerate(sc.hosts):
        for role in ("storage", "management"):
            if h.nic_for(role) is None:
                raise ReferenceError_(f"hosts[{i}].nics", f"no NIC carries the {role} network")
    for i, vol in enumerate(sc.volumes):
        for j, b in enumerate(vol.bricks):
            if b.host not in hosts:
                raise ReferenceError_(f"volumes[{i}].bricks[{j}].host", f"unknown host {b.host!r}")
            if hosts[b.host].compute_only:
                raise ReferenceError_(f"volumes[{i}].bricks[{j}].host",
                                      f"host {b.host!r} has no disks (compute-only): it "
                                      "cannot hold a brick")
            if b.disk is not None and b.disk not in {d.name for d in hosts[b.host].disks}:
                raise ReferenceError_(
                    f"volumes[{i}].bricks[{j}].disk", f"host {b.host!r} has no disk {b.disk!r}"
                )
    vol_names = {v.name for v in sc.volumes}
    vm_names = {v.name for v in sc.vms}
    for i, vm in enumerate(sc.vms):
        if vm.host is not None and vm.host not in hosts:
            raise ReferenceError_(f"vms[{i}].host", f"unknown host {vm.host!r}")
        for p in vm.pinned_to:
            if p not in hosts:
                raise ReferenceError_(f"vms[{i}].pinned_to", f"unknown host {p!r}")
        for j, d in enumerate(vm.disks):
            if d.volume not in vol_names:
                raise ReferenceError_(f"vms[{i}].disks[{j}].volume", f"unknown volume {d.volume!r}")
            if isinstance(d.io, str) and d.io not in sc.io_profiles:
                raise ReferenceError_(f"vms[{i}].disks[{j}].io", f"unknown io profile {d.io!r}")
    engines = [i for i, vm in enumerate(sc.vms) if vm.hosted_engine]
    if len(engines) > 1:
        raise ReferenceError_(f"vms[{engines[1]}].hosted_engine", "only one hosted engine VM")
    for i, ph in enumerate(sc.phases):
        for name in ph.vms or ():
            if name not in vm_names:
                raise ReferenceError_(f"phases[{i}].vms", f"unknown VM {name!r}")
    starts = [p.start_s for p in sc.phases]
    if starts != sorted(starts):
        raise ReferenceError_("phases", "phases must be in order of start_s")
    for i, f in enumerate(sc.faults):
        path = f"faults[{i}]"
        if f.target not in hosts:
            raise ReferenceError_(f"{path}.target", f"unknown host {f.target!r}")
        if f.at_s >= sc.duration_s:
            raise ReferenceError_(f"{path}.at_s", f"{f.at_s} is not before duration_s")
        try:
            f.bind_networks(tuple(n.networks for n in hosts[f.target].nics))
        except ValueError as exc:
            raise ReferenceError_(f"{path}.network", str(exc)) from None
        if f.traits.scope in ("brick", "disk") and not any(
                v.brick_on(f.target) is not None for v in sc.volumes):
            raise ReferenceError_(f"{path}.target",
                                  f"{f.kind} on {f.target!r}: the host holds no brick")
        volume: str | None = getattr(f, "volume", None)
        if volume is not None:
            if volume not in vol_names:
                raise ReferenceError_(f"{path}.volume", f"unknown volume {volume!r}")
            if sc.volume(volume).brick_on(f.target) is None:
                raise ReferenceError_(
                    f"{path}.volume", f"volume {volume!r} has no brick on {f.target!r}"
                )
        disk: str | None = getattr(f, "disk", None)
        if disk is not None and disk not in {d.name for d in hosts[f.target].disks}:
            raise ReferenceError_(f"{path}.disk", f"host {f.target!r} has no disk {disk!r}")
        peers: tuple[str, ...] = getattr(f, "peers", None) or ()
        for p in peers:
            if p not in hosts or p == f.target:
                raise ReferenceError_(f"{path}.peers", f"{p!r} is not another host")
    for i, op in enumerate(sc.operations):
        if op.host is not None and op.host not in hosts:
            raise ReferenceError_(f"operations[{i}].host", f"unknown host {op.host!r}")
        if op.vm is not None and op.vm not in vm_names:
            raise ReferenceError_(f"operations[{i}].vm", f"unknown VM {op.vm!r}")
    for i, g in enumerate(sc.compute.affinity_groups):
        for name in g.vms:
            if name not in vm_names:
                raise ReferenceError_(f"compute.affinity_groups[{i}].vms", f"unknown VM {name!r}")
    for i, c in enumerate(sc.claims):
        for name in c.vms or ():
            if name not in vm_names:
                raise ReferenceError_(f"claims[{i}].vms", f"unknown VM {name!r}")
        claim_volume: str | None = getattr(c, "volume", None)
        if claim_volume is not None and claim_volume not in vol_names:
            raise ReferenceError_(f"claims[{i}].volume", f"unknown volume {claim_volume!r}")
