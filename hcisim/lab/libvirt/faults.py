"""How the libvirt lab breaks a node VM: the backend half of :mod:`hcisim.lab.faults`.

- power cut: destroy the domain (qemu killed: peers get no FIN/RST); back: start it again,
  wait for sshd, glusterd and the node's mounts.
- freeze: suspend the domain (vCPUs stopped); back: resume, reset the node's clock.
- link down: link state down on the NIC; back: link up.
- slowdown: libvirt interface bandwidth (tc on the tap); back: limit removed.
- disk failure: live-detach the brick disk (the guest's XFS gets EIO); back: attach,
  remount, ``volume start force``.

Brick kills and hangs and partitions are the shared mechanisms', over the node's SSH.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hcisim.lab.errors import LabError
from hcisim.lab.gluster import Gluster
from hcisim.lab.libvirt.deploy import GLUSTER, brick_dir, device_by_serial
from hcisim.lab.libvirt.layout import LabPlan, NodePlan
from hcisim.lab.libvirt.nodes import lookup_domain, restart_domain
from hcisim.lab.libvirt.ssh import NodeShells
from hcisim.lab.node import NodeShell
from hcisim.scenario import Scenario
from hcisim.scenario.cluster import NetworkRole

AFFECT_LIVE = 1  # libvirt.VIR_DOMAIN_AFFECT_LIVE


def interface_xml(node: NodePlan, role: str, link: str) -> str:
    nic = node.nic(role)
    return (f'<interface type="network"><mac address="{nic.mac}"/>'
            f'<source network="{nic.network}"/><model type="virtio"/>'
            f'<link state="{link}"/></interface>')


def brick_disk_xml(node: NodePlan, disk: str | None) -> str:
    b = node.brick(disk)
    return (f'<disk type="file" device="disk"><driver name="qemu" type="raw" '
            f'cache="writeback"/><source file="{b.path}"/><target dev="{b.target}" '
            f'bus="virtio"/><serial>{b.serial}</serial></disk>')


# A node has a storage and a management NIC; no migration network of its own (guests in
# nodes do not migrate, hcisim.lab.libvirt.nested): a fault on a migration network that
# shares a NIC names that NIC's role too (Scenario.make_fault), one alone is refused
# before the lab is built (migration_faults).
ROLE_NIC: dict[NetworkRole, str] = {"storage": "storage", "management": "mgmt"}


def nics_of(roles: tuple[NetworkRole, ...]) -> list[str]:
    nics = sorted({ROLE_NIC[r] for r in roles if r in ROLE_NIC})
    if not nics:
        raise LabError("cut a network of a libvirt node",
                       f"networks {', '.join(roles)}: the nodes have no NIC for them")
    return nics


def migration_faults(sc: Scenario) -> list[str]:
    """The faults of ``sc`` a libvirt lab cannot play: they name the migration network
    (the nodes have no migration NIC; the netns lab has one)."""
    return [f"faults[{i}] ({f.kind} on {f.target})" for i, f in enumerate(sc.faults)
            if getattr(f, "network", None) == "migration"]  # a power loss cuts it too: fine


class LibvirtMachine:
    """See :class:`hcisim.lab.faults.Machine`; ``after_boot(host)`` runs when a node is back,
    ``set_clock(host)`` after a suspended node resumes (its clock stood still)."""

    def __init__(self, conn: Any, plan: LabPlan, shells: NodeShells,
                 after_boot: Callable[[str], None], set_clock: Callable[[str], None]) -> None:
        self.conn = conn
        self.plan = plan
        self.shells = shells
        self.after_boot = after_boot
        self.set_clock = set_clock

    def _dom(self, host: str) -> Any:
        dom = lookup_domain(self.conn, self.plan.node(host).domain)
        if dom is None:
            raise LabError(f"fault on {host}", f"domain {self.plan.node(host).domain} is gone")
        return dom

    def shell(self, host: str) -> NodeShell:
        return self.shells.node(host)

    def gluster(self, host: str) -> Gluster:
        return Gluster(self.shells.node(host), base=tuple(GLUSTER.split()))

    def address(self, host: str, role: NetworkRole) -> str:
        (nic,) = nics_of((role,))
        return self.plan.node(host).nic(nic).address

    def power(self, host: str, on: bool) -> None:
        if on:
            restart_domain(self.conn, self.plan.node(host))
            self.after_boot(host)
        else:
            self._dom(host).destroy()

    def freeze(self, host: str, frozen: bool) -> None:
        if frozen:
            self._dom(host).suspend()
        else:
            self._dom(host).resume()
            self.set_clock(host)

    def link(self, host: str, roles: tuple[NetworkRole, ...], up: bool) -> None:
        node = self.plan.node(host)
        for nic in nics_of(roles):
            self._dom(host).updateDeviceFlags(interface_xml(node, nic, "up" if up else "down"),
                                              AFFECT_LIVE)

    def shape(self, host: str, roles: tuple[NetworkRole, ...], rate_mbit: float | None) -> None:
        import xml.etree.ElementTree as ET

        kbytes = 0 if rate_mbit is None else max(1, int(rate_mbit * 1000 / 8))  # kB/s
        dom = self._dom(host)
        live = ET.fromstring(dom.XMLDesc(0))
        for nic in nics_of(roles):
            mac = self.plan.node(host).nic(nic).mac
            for iface in live.iter("interface"):
                m, tgt = iface.find("mac"), iface.find("target")
                if m is not None and m.get("address") == mac and tgt is not None:
                    params = {"inbound.average": kbytes, "outbound.average": kbytes}
                    dom.setInterfaceParameters(tgt.get("dev"), params, AFFECT_LIVE)

    def disk(self, host: str, disk: str, failed: bool) -> None:
        node = self.plan.node(host)
        if failed:
            self._dom(host).detachDeviceFlags(brick_disk_xml(node, disk), AFFECT_LIVE)
            return
        self._dom(host).attachDeviceFlags(brick_disk_xml(node, disk), AFFECT_LIVE)
        b = node.brick(disk)
        # the dead XFS off, the disk on again (by its serial), every brick restarted
        self.shells.script(host, (
            "for p in /var/run/gluster/vols/*/*.pid; do [ -s $p ] && kill -9 \"$(cat $p)\" "
            "2>/dev/null; done; true\n"
            f"umount -l {brick_dir(b.disk)} || true\n"
            f"for i in $(seq 1 60); do dev={device_by_serial(b.serial)}; "
            '[ -n "$dev" ] && break; sleep 1; done\n'
            f"mount {brick_dir(b.disk)}\n"
            f"for v in $({GLUSTER} volume list); do {GLUSTER} volume start $v force; done\n"),
            f"put a new disk in {host}", timeout=300)

    def before_brick_start(self, host: str, volumes: list[str]) -> None:
        pass
