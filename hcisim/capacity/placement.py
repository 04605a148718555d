"""Where the inventory runs, and whether the HA VMs of any one host fit on the other two.

This is a deliberately small bin-packing check, not the oVirt scheduler (that lives in
``hcisim.placement`` and is not imported here: sizing must not depend on a policy's
weights). VMs are placed worst-fit decreasing by RAM (each on the host with the most free
RAM, as ``evenly_distributed`` tends to), then for every failed host its HA VMs are packed
first-fit decreasing onto the survivors' free RAM and vCPU slots.

First-fit decreasing alone is not monotone with two resources: more RAM can send a big VM to
the first host, use up that host's vCPU slots, and leave a later VM nowhere to go. Sizing
must never say "fails" where a placement exists, so when FFD fails an exact search over the
two survivors decides (bounded; beyond ``SEARCH_BUDGET`` nodes the FFD answer stands).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hcisim.capacity.spec import HOSTS, Candidate, CapacitySpec, InventoryVm

SEARCH_BUDGET = 200_000
_EPS = 1e-9


@dataclass(frozen=True)
class HostRoom:
    """What VMs may use on one host: RAM (GiB) and vCPU slots."""

    ram_gib: float
    vcpus: float


def host_room(spec: CapacitySpec, cand: Candidate) -> HostRoom:
    ram = cand.ram_gib * spec.overcommit.memory_pct / 100 - spec.host_overhead.ram_gib
    cpu = (cand.cores - spec.host_overhead.cores) * spec.overcommit.cpu
    return HostRoom(max(0.0, ram), max(0.0, cpu))


@dataclass
class Placement:
    host_of: dict[str, int] = field(default_factory=dict)
    unplaced: list[str] = field(default_factory=list)

    def on(self, host: int, vms: Sequence[InventoryVm]) -> list[InventoryVm]:
        return [vm for vm in vms if self.host_of.get(vm.name) == host]


def _size_order(vm: InventoryVm) -> tuple[float, int, str]:
    return (-vm.ram_gib, -vm.vcpus, vm.name)


def place(vms: Sequence[InventoryVm], room: HostRoom) -> Placement:
    """Pinned VMs where the inventory says, the rest worst-fit decreasing by RAM."""
    ram = [0.0] * HOSTS
    cpu = [0.0] * HOSTS
    out = Placement()

    def put(vm: InventoryVm, h: int) -> None:
        out.host_of[vm.name] = h
        ram[h] += vm.ram_gib
        cpu[h] += vm.vcpus

    for vm in vms:
        if vm.host is not None:
            h = vm.host - 1
            if ram[h] + vm.ram_gib <= room.ram_gib + _EPS and cpu[h] + vm.vcpus <= room.vcpus:
                put(vm, h)
            else:
                out.unplaced.append(vm.name)
    for vm in sorted((v for v in vms if v.host is None), key=_size_order):
        # Among hosts with vCPU room, the one with most free RAM: with identical hosts this
        # choice does not depend on how much RAM they have (it only decides whether it fits).
        cands = [h for h in range(HOSTS) if cpu[h] + vm.vcpus <= room.vcpus]
        if cands:
            h = min(cands, key=lambda i: (ram[i], i))
            if ram[h] + vm.ram_gib <= room.ram_gib + _EPS:
                put(vm, h)
                continue
        out.unplaced.append(vm.name)
    return out


@dataclass(frozen=True)
class Failover:
    """The HA VMs of ``failed`` restarted on the survivors (or not)."""

    failed: int
    ha_vms: tuple[str, ...]
    fits: bool
    target_of: dict[str, int]  # VM -> survivor host (when it fits)
    unplaced: tuple[str, ...]  # what first-fit could not place (when it does not fit)
    exact: bool  # the exact search decided (FFD failed)
    ram_used_gib: float  # on the two survivors together, after the restarts (+ homeless VMs)
    vcpus_used: float


def _fits(item: InventoryVm, free: list[list[float]], b: int) -> bool:
    return item.ram_gib <= free[b][0] + _EPS and item.vcpus <= free[b][1] + _EPS


def first_fit_decreasing(items: Sequence[InventoryVm], free: list[list[float]],
                         bins: Sequence[int]) -> tuple[dict[str, int], list[str]]:
    free = [f[:] for f in free]
    target: dict[str, int] = {}
    missing: list[str] = []
    for it in sorted(items, key=_size_order):
        for b in range(len(free)):
            if _fits(it, free, b):
                free[b][0] -= it.ram_gib
                free[b][1] -= it.vcpus
                target[it.name] = bins[b]
                break
        else:
            missing.append(it.name)
    return target, missing


def exact_packing(items: Sequence[InventoryVm], free: list[list[float]],
                  bins: Sequence[int]) -> dict[str, int] | bool | None:
    """A placement of every item, None if there is none, False if the budget ran out."""
    order = sorted(items, key=_size_order)
    rem_ram = [0.0] * (len(order) + 1)
    rem_cpu = [0.0] * (len(order) + 1)
    for i in range(len(order) - 1, -1, -1):
        rem_ram[i] = rem_ram[i + 1] + order[i].ram_gib
        rem_cpu[i] = rem_cpu[i + 1] + order[i].vcpus
    chosen = [0] * len(order)
    state = [f[:] for f in free]
    nodes = 0

    def search(i: int) -> bool | None:
        nonlocal nodes
        nodes += 1
        if nodes > SEARCH_BUDGET:
            return None
        if i == len(order):
            return True
        if (rem_ram[i] > sum(s[0] for s in state) + _EPS
                or rem_cpu[i] > sum(s[1] for s in state) + _EPS):
            return False
        it = order[i]
        tried: list[tuple[float, float]] = []
        for b in range(len(state)):
            key = (state[b][0], state[b][1])
            if key in tried or not _fits(it, state, b):
                continue  # two survivors with the same free room are the same choice
            tried.append(key)
            state[b][0] -= it.ram_gib
            state[b][1] -= it.vcpus
            chosen[i] = b
            found = search(i + 1)
            state[b][0] += it.ram_gib
            state[b][1] += it.vcpus
            if found is None or found:
                return found
        return False

    result = search(0)
    if result is None:
        return False
    if not result:
        return None
    return {it.name: bins[chosen[i]] for i, it in enumerate(order)}


def failover(vms: Sequence[InventoryVm], placement: Placement, room: HostRoom,
             failed: int) -> Failover:
    survivors = [h for h in range(HOSTS) if h != failed]
    free = []
    ram_used = cpu_used = 0.0
    for h in survivors:
        on = placement.on(h, vms)
        r, c = sum(v.ram_gib for v in on), sum(v.vcpus for v in on)
        ram_used += r
        cpu_used += c
        free.append([room.ram_gib - r, room.vcpus - c])
    ha = [vm for vm in placement.on(failed, vms) if vm.ha]
    # VMs that fit nowhere even with three hosts still need their RAM and vCPUs somewhere.
    homeless = [vm for vm in vms if vm.name in placement.unplaced]
    ram_used += sum(v.ram_gib for v in (*ha, *homeless))
    cpu_used += sum(v.vcpus for v in (*ha, *homeless))
    names = tuple(v.name for v in ha)
    target, missing = first_fit_decreasing(ha, free, survivors)
    if not missing:
        return Failover(failed, names, True, target, (), False, ram_used, cpu_used)
    exact = exact_packing(ha, free, survivors)
    if isinstance(exact, dict):
        return Failover(failed, names, True, exact, (), True, ram_used, cpu_used)
    return Failover(failed, names, False, target, tuple(missing), exact is None,
                    ram_used, cpu_used)
