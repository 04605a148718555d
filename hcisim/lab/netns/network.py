"""Namespaces, bridges and veth pairs of a netns lab, and cutting or slowing its links.

Topology: a switch namespace holds two bridges (``brs`` storage, ``brm`` management);
each host namespace has ``sto0`` and ``mgmt0``, veth pairs whose other ends
(``s<i>``/``m<i>``) are ports of those bridges. Either network of a host can be cut alone.
"""

from __future__ import annotations

from hcisim.lab.netns.layout import HostLayout, LabLayout
from hcisim.lab.netns.state import LabState
from hcisim.lab.process import run
from hcisim.scenario.cluster import NetworkRole

BRIDGES = {"storage": "brs", "management": "brm"}
ROLES: tuple[NetworkRole, ...] = ("storage", "management")


def build_network(lab: LabLayout, state: LabState) -> None:
    step = "create network namespaces"
    sw = lab.switch_netns
    for ns in lab.netns_names:
        state.add("netns", ns)
        run(step, ["ip", "netns", "add", ns])
        run(step, ["ip", "-n", ns, "link", "set", "lo", "up"])
    step = "create bridges and veth pairs"
    for br in BRIDGES.values():
        run(step, ["ip", "-n", sw, "link", "add", br, "type", "bridge"])
        run(step, ["ip", "-n", sw, "link", "set", br, "up"])
    for h in lab.hosts:
        for net, inner, outer, addr in (
                ("storage", h.STORAGE_IF, h.switch_storage_if, h.storage_addr),
                ("management", h.MGMT_IF, h.switch_mgmt_if, h.mgmt_addr)):
            run(step, ["ip", "-n", sw, "link", "add", outer, "type", "veth",
                       "peer", "name", inner, "netns", h.netns])
            run(step, ["ip", "-n", sw, "link", "set", outer, "master", BRIDGES[net], "up"])
            run(step, ["ip", "-n", h.netns, "addr", "add", f"{addr}/{lab.prefix_len}",
                       "dev", inner])
            run(step, ["ip", "-n", h.netns, "link", "set", inner, "up"])


def interfaces(host: HostLayout, roles: tuple[NetworkRole, ...]) -> list[str]:
    """The host-side interfaces of ``roles`` (migration rides on storage here)."""
    return [i for i, on in ((host.STORAGE_IF, "storage" in roles or "migration" in roles),
                            (host.MGMT_IF, "management" in roles)) if on]


def set_links(host: HostLayout, roles: tuple[NetworkRole, ...], up: bool) -> None:
    """Link down inside the host's namespace: the far end loses carrier, frames are dropped
    silently, so peers see no FIN or RST (like a pulled cable)."""
    for ifname in interfaces(host, roles):
        run(f"set {ifname} {'up' if up else 'down'} on {host.name}",
            ["ip", "-n", host.netns, "link", "set", ifname, "up" if up else "down"])


def shape(lab: LabLayout, host: HostLayout, roles: tuple[NetworkRole, ...],
          rate_mbit: float, latency_ms: float = 200.0) -> None:
    """tbf on both ends of the host's links: its egress, and the switch port toward it.

    (netem is not in this kernel, so only the rate can be degraded, not delay or loss.)
    ``latency_ms``: the longest a packet may wait in the tbf queue, i.e. its size in time
    (a migration link uses a NIC-like 10 ms: hcisim/lab/guests/links.py).
    """
    step = f"slow down {host.name}"
    rate = f"{max(rate_mbit, 0.01):.3f}mbit"
    # burst must hold at least one MTU-size frame and ~1 ms at the rate
    burst = f"{max(int(rate_mbit * 1e6 / 8 / 1000), 16 * 1024)}"
    ends = [(host.netns, i) for i in interfaces(host, roles)]
    sw_if = {host.STORAGE_IF: host.switch_storage_if, host.MGMT_IF: host.switch_mgmt_if}
    ends += [(lab.switch_netns, sw_if[i]) for i in interfaces(host, roles)]
    for ns, ifname in ends:
        run(step, ["tc", "qdisc", "replace", "dev", ifname, "root", "tbf", "rate", rate,
                   "burst", burst, "latency", f"{latency_ms:g}ms"], netns=ns)


def unshape(lab: LabLayout, host: HostLayout, roles: tuple[NetworkRole, ...]) -> None:
    sw_if = {host.STORAGE_IF: host.switch_storage_if, host.MGMT_IF: host.switch_mgmt_if}
    for i in interfaces(host, roles):
        for ns, ifname in ((host.netns, i), (lab.switch_netns, sw_if[i])):
            run(f"remove slowdown of {host.name}", ["tc", "qdisc", "del", "dev", ifname, "root"],
                netns=ns, check=False)
