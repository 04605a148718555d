"""Namespaces, bridges and veth pairs of a netns lab, and cutting or slowing its links.

Topology: a switch namespace holds three bridges (``brs`` storage, ``brm`` management,
``brg`` migration); each host namespace has ``sto0``, ``mgmt0`` and ``mig0``, veth pairs
whose other ends (``s<i>``/``m<i>``/``g<i>``) are ports of those bridges. Each network of
a host can be cut alone. ``mig0`` carries a live migration only when the scenario gives
the host a dedicated migration NIC; a migration network that shares a NIC rides on that
NIC's link (:func:`hcisim.lab.guests.links.migration_lab_network`), and a fault naming it
is bound to every network of that NIC (``Fault.networks``), so the right link goes down.
"""

from __future__ import annotations

from hcisim.lab.netns.layout import HostLayout, LabLayout, read_state
from hcisim.lab.netns.state import LabState
from hcisim.lab.process import run
from hcisim.scenario.cluster import NetworkRole

BRIDGES = {"storage": "brs", "management": "brm", "migration": "brg"}
ROLES: tuple[NetworkRole, ...] = ("storage", "management", "migration")  # every link


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
                ("management", h.MGMT_IF, h.switch_mgmt_if, h.mgmt_addr),
                ("migration", h.MIG_IF, h.switch_mig_if, h.mig_addr)):
            run(step, ["ip", "-n", sw, "link", "add", outer, "type", "veth",
                       "peer", "name", inner, "netns", h.netns])
            run(step, ["ip", "-n", sw, "link", "set", outer, "master", BRIDGES[net], "up"])
            run(step, ["ip", "-n", h.netns, "addr", "add", f"{addr}/{lab.prefix_len}",
                       "dev", inner])
            run(step, ["ip", "-n", h.netns, "link", "set", inner, "up"])


def interfaces(host: HostLayout, roles: tuple[NetworkRole, ...]) -> list[str]:
    """The host-side interfaces of ``roles``: each network its own link. A fault on a
    migration network sharing a NIC names that NIC's networks too (``Fault.networks``),
    so the shared link goes down with it."""
    return [i for i, on in ((host.STORAGE_IF, "storage" in roles),
                            (host.MGMT_IF, "management" in roles),
                            (host.MIG_IF, "migration" in roles)) if on]


def set_links(host: HostLayout, roles: tuple[NetworkRole, ...], up: bool) -> None:
    """Link down inside the host's namespace: the far end loses carrier, frames are dropped
    silently, so peers see no FIN or RST (like a pulled cable)."""
    for ifname in interfaces(host, roles):
        run(f"set {ifname} {'up' if up else 'down'} on {host.name}",
            ["ip", "-n", host.netns, "link", "set", ifname, "up" if up else "down"])


def imposed_mbit(lab: LabLayout, host: HostLayout) -> dict[str, float]:
    """The NIC rates the lab imposes on ``host``'s links (lab network -> Mbit/s; empty when
    the scenario imposes nothing), from the state file, so that every process shaping a link
    (a fault, a migration, ``hcisim lab restore``) sees them (:mod:`.impose`)."""
    st = read_state(lab.dir) or {}
    links = st.get("imposed_links")
    rates = links.get(host.name) if isinstance(links, dict) else None
    return {k: float(v) for k, v in rates.items()} if isinstance(rates, dict) else {}


def _ends(lab: LabLayout, host: HostLayout,
          roles: tuple[NetworkRole, ...]) -> list[tuple[str, str, str]]:
    """(netns, interface, lab network) of both ends of the host's links of ``roles``."""
    net = {host.STORAGE_IF: "storage", host.MGMT_IF: "management", host.MIG_IF: "migration"}
    sw_if = {host.STORAGE_IF: host.switch_storage_if, host.MGMT_IF: host.switch_mgmt_if,
             host.MIG_IF: host.switch_mig_if}
    out = []
    for i in interfaces(host, roles):
        out += [(host.netns, i, net[i]), (lab.switch_netns, sw_if[i], net[i])]
    return out


def _tbf(step: str, ns: str, ifname: str, rate_mbit: float, latency_ms: float) -> None:
    rate = f"{max(rate_mbit, 0.01):.3f}mbit"
    # burst must hold at least one MTU-size frame and ~1 ms at the rate
    burst = f"{max(int(rate_mbit * 1e6 / 8 / 1000), 16 * 1024)}"
    run(step, ["tc", "qdisc", "replace", "dev", ifname, "root", "tbf", "rate", rate,
               "burst", burst, "latency", f"{latency_ms:g}ms"], netns=ns)


def shape(lab: LabLayout, host: HostLayout, roles: tuple[NetworkRole, ...],
          rate_mbit: float, latency_ms: float = 200.0) -> None:
    """tbf on both ends of the host's links: its egress, and the switch port toward it.

    (netem is not in this kernel, so only the rate can be degraded, not delay or loss.)
    ``latency_ms``: the longest a packet may wait in the tbf queue, i.e. its size in time
    (a migration link uses a NIC-like 10 ms: hcisim/lab/guests/links.py). A link whose NIC
    rate the lab imposes is never made faster than that rate.
    """
    imposed = imposed_mbit(lab, host)
    for ns, ifname, net in _ends(lab, host, roles):
        cap = imposed.get(net)
        _tbf(f"slow down {host.name}", ns, ifname,
             rate_mbit if cap is None else min(rate_mbit, cap), latency_ms)


def unshape(lab: LabLayout, host: HostLayout, roles: tuple[NetworkRole, ...]) -> None:
    """Undo :func:`shape`: back to the imposed NIC rate if the lab imposes one, else no
    qdisc at all."""
    imposed = imposed_mbit(lab, host)
    for ns, ifname, net in _ends(lab, host, roles):
        cap = imposed.get(net)
        if cap is not None:
            impose_rate(host, ns, ifname, cap)
        else:
            run(f"remove slowdown of {host.name}", ["tc", "qdisc", "del", "dev", ifname, "root"],
                netns=ns, check=False)


def impose_rate(host: HostLayout, ns: str, ifname: str, rate_mbit: float) -> None:
    """A NIC's speed on one end of a link: tbf with a NIC-like short queue (the migration
    link's, :data:`hcisim.lab.guests.links.QUEUE_MS`), not a slowdown's 200 ms."""
    from hcisim.lab.guests.links import QUEUE_MS

    _tbf(f"impose the NIC rate on {host.name}", ns, ifname, rate_mbit, QUEUE_MS)


def impose_links(lab: LabLayout, host: HostLayout, rates: dict[str, float]) -> None:
    """Shape both ends of each of ``host``'s lab networks to its rate (lab network ->
    Mbit/s); the rates must already be in the state file (:func:`imposed_mbit`)."""
    for ns, ifname, net in _ends(lab, host, ROLES):
        if net in rates:
            impose_rate(host, ns, ifname, rates[net])
