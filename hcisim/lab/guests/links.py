"""The migration link's speed on the lab: a tbf at the scenario NIC's rate, scaled like
the guests' RAM.

The netns lab has a link per network and host (storage, management, migration) that runs
as fast as the CPU copies. The migration stream crosses the link of the NIC the scenario
puts migration on (:func:`migration_lab_network`): the lab's migration link for a dedicated
migration NIC, the management link when it shares the management NIC (oVirt's default:
ovirtmgmt carries migration) or when no NIC carries migration. That link is then shaped to
the NIC's ``gbps`` times the guests' scale (guest RAM / scenario VM RAM, ``fleet.scale``),
with the same tbf a ``link_slowdown`` fault uses (both ends: the host's egress and the
switch port toward it). A 1 GiB VM at 1 Gb/s and its 160 MiB guest at 156 Mbit/s then
take the same time to copy, as the bandwidth cap is scaled alike. The model puts the flow
on the same NIC at its full rate (``hcisim.model.storage_port``).

A migration network that shares the storage NIC is not shaped (the storage traffic would
be throttled too, and it is not scaled).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from hcisim.scenario import Scenario
from hcisim.scenario.cluster import NetworkRole


def migration_lab_network(sc: Scenario, host: str) -> NetworkRole:
    """The lab network ``host``'s migration stream crosses: that of the NIC carrying
    migration (storage or management when it shares one, its own link when dedicated),
    management when no NIC carries it (oVirt migrates over ovirtmgmt then)."""
    for nic in sc.host(host).nics:
        if "migration" in nic.networks:
            for shared in ("storage", "management"):
                if shared in nic.networks:
                    return shared
            return "migration"
    return "management"


def migration_nic_gbps(sc: Scenario, host: str) -> float | None:
    """The rate of ``host``'s NIC that carries migration when it is not the storage NIC
    (None: migration shares the storage NIC, or the host has neither a migration nor a
    management NIC)."""
    nics = sc.host(host).nics
    mig = [n for n in nics if "migration" in n.networks]
    if any("storage" in n.networks for n in mig):
        return None
    chosen = mig or [n for n in nics if "management" in n.networks]
    return max((n.gbps for n in chosen), default=None)


def migration_link_mbit(sc: Scenario, scale: float) -> dict[str, float]:
    """Host -> the tbf rate (Mbit/s) of its migration link on the lab."""
    out = {}
    for h in sc.host_names:
        gbps = migration_nic_gbps(sc, h)
        if gbps is not None:
            out[h] = gbps * 1000.0 * scale
    return out


# The tbf queue of a migration link, in time: a NIC's queue (fq_codel's 5 ms target, a
# 1000-packet pfifo at 1 Gb/s: 12 ms), not the 200 ms of a slowdown fault's tbf. The last
# pages of a migration wait behind what is queued; the guest's rate is scaled down, so a
# queue sized in bytes would stretch the switch-over (200 ms: 205 ms seen, 14 ms counted).
QUEUE_MS = 10.0


def scaled_send_buffer(layout: Any, host: str, scale: float) -> tuple[str, str]:
    """Scale the largest TCP send buffer of ``host``'s namespace (``net.ipv4.tcp_wmem``,
    per namespace) like the guests' RAM; returns (netns, the old value) to put back.

    When the link is slower than qemu's cap the stream's send buffer fills up; the pages
    in it when the VM stops must cross the link before the destination runs. Linux grows
    it up to 4 MiB: 34 ms at 1 Gb/s for the real VM, but 215 ms at the 156 Mbit/s of its
    0.156-scale guest. Scaled, the wait is the real one."""
    from hcisim.lab.process import run  # the netns lab's tools

    ns = layout.host(host).netns
    old = run(f"read tcp_wmem of {host}", ["sysctl", "-n", "net.ipv4.tcp_wmem"],
              netns=ns).stdout.split()
    low, default, high = (int(x) for x in old)
    new = max(default * 4, int(high * scale))
    run(f"scale tcp_wmem of {host}",
        ["sysctl", "-q", "-w", f"net.ipv4.tcp_wmem={low} {default} {new}"], netns=ns)
    return ns, " ".join(old)


@contextlib.contextmanager
def shaped_migration_links(sc: Scenario, be: Any, scale: float) -> Iterator[dict[str, float]]:
    """Shape every host's migration link (:func:`migration_lab_network`) for the run;
    the shaping is removed on the way out, whatever happened. Only on the netns lab
    (another backend: nothing shaped, an empty mapping)."""
    from hcisim.lab.netns import network  # the netns lab's tc; not needed elsewhere

    rates = migration_link_mbit(sc, scale)
    layout = getattr(be, "lab_", None)
    if layout is None or not rates or not hasattr(layout, "switch_netns"):
        yield {}
        return
    from hcisim.lab.process import run

    done: list[str] = []
    buffers: list[tuple[str, str]] = []
    try:
        for host, mbit in rates.items():
            done.append(host)
            net = migration_lab_network(sc, host)
            network.shape(layout, layout.host(host), (net,), mbit, QUEUE_MS)
            buffers.append(scaled_send_buffer(layout, host, scale))
        yield rates
    finally:
        for host in done:
            with contextlib.suppress(Exception):  # the lab may be gone with its namespaces
                network.unshape(layout, layout.host(host), (migration_lab_network(sc, host),))
        for ns, old in buffers:
            with contextlib.suppress(Exception):
                run("restore tcp_wmem", ["sysctl", "-q", "-w", f"net.ipv4.tcp_wmem={old}"],
                    netns=ns)
