"""The storage stack inside the node VMs, over SSH: bricks, glusterd, peers, volumes, mounts.

What a gluster-ansible HCI deployment does, reduced to the steps the lab needs: XFS bricks
formatted and mounted the HCI way, peers probed by name over the storage network, each
volume created with ``group virt`` and then the scenario's own options (the same mapping as
the namespace lab), FUSE mounts with backup volfile servers. Mounts and bricks go to
/etc/fstab, so a node that loses power comes back with them (the node's init mounts them).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hcisim.lab.errors import LabError
from hcisim.lab.gluster import Gluster, scenario_options
from hcisim.lab.libvirt.layout import LabPlan, NodePlan
from hcisim.lab.libvirt.ssh import NodeShells
from hcisim.lab.wait import require
from hcisim.scenario import Scenario, Volume

BRICK_ROOT = "/bricks"
MOUNT_ROOT = "/mnt"
# The CLI gives up after 120 s by default; under emulation on a busy machine a volume
# create or set (with its hook scripts on every node) can take longer.
GLUSTER = "gluster --mode=script --timeout=900"
XFS_MKFS = "mkfs.xfs -f -q -K -i size=512 -n size=8192"  # gluster-ansible's HCI bricks
XFS_MOUNT = "inode64,noatime,nodiratime,nofail"


def brick_dir(disk: str) -> str:
    return f"{BRICK_ROOT}/{disk}"


def brick_path(vol: Volume, disk: str) -> str:
    return f"{brick_dir(disk)}/{vol.name}"


def mount_point(volume: str) -> str:
    return f"{MOUNT_ROOT}/{volume}"


def client_log(volume: str) -> str:
    """The FUSE client's log for a mount at /mnt/VOL (glusterfs names it after the path)."""
    return f"/var/log/glusterfs/mnt-{volume}.log"


def device_by_serial(serial: str) -> str:
    """Shell snippet: the /dev node of the virtio disk with this serial (no udev in nodes)."""
    return (f'$(for d in /sys/block/vd*; do [ "$(cat $d/serial 2>/dev/null)" = "{serial}" ] '
            f'&& echo /dev/${{d##*/}}; done; true)')


def format_bricks_script(node: NodePlan) -> str:
    lines = []
    for b in node.bricks:
        mp = brick_dir(b.disk)
        lines += [
            f'dev={device_by_serial(b.serial)}',
            f'[ -n "$dev" ] || {{ echo "no disk with serial {b.serial}" >&2; exit 1; }}',
            f"{XFS_MKFS} $dev",
            'uuid=$(blkid -s UUID -o value "$dev")',
            f"mkdir -p {mp}",
            f'echo "UUID=$uuid {mp} xfs {XFS_MOUNT} 0 0" >> /etc/fstab',
            f"mount {mp}",
        ]
    return "\n".join(lines) + "\n"


def wait_glusterd(shell: NodeShells, host: str, timeout: float) -> None:
    require(lambda: shell.run(host, f"{GLUSTER} peer status", "wait for glusterd", check=False,
                              timeout=120).ok, timeout, f"start glusterd on {host}",
            f"glusterd did not answer within {timeout:.0f} s", every_s=2.0, ignore=(LabError,))


def probe_peers(shell: NodeShells, plan: LabPlan, timeout: float) -> None:
    """Probe every peer from the first node, then wait until *every* node sees all of them
    connected: a volume create stages on each peer and fails on one that has not yet
    connected to another ("Staging failed on host2. Error: Host host3 not connected",
    seen on a loaded machine when only the first node's view was awaited)."""
    first = plan.nodes[0].host
    for n in plan.nodes[1:]:
        shell.run(first, f"{GLUSTER} peer probe {n.host}", f"probe peer {n.host}", timeout=120)

    def all_connected() -> bool:
        return all(shell.run(n.host, f"{GLUSTER} pool list", "wait for peers").stdout.count(
            "Connected") >= len(plan.nodes) for n in plan.nodes)

    require(all_connected, timeout, "wait for peers", "peers not all connected", every_s=2.0)


def create_volume(shell: NodeShells, plan: LabPlan, vol: Volume, sc: Scenario) -> None:
    first = plan.nodes[0].host
    bricks = " ".join(
        f"{b.host}:{brick_path(vol, sc.host(b.host).disk(b.disk).name)}" for b in vol.bricks)
    layout = "replica 3 arbiter 1" if vol.type == "arbiter" else "replica 3"
    opts = " ".join(f"{k} {v}" for k, v in scenario_options(vol).items())
    shell.script(first, f"""
{GLUSTER} volume create {vol.name} {layout} {bricks}
{GLUSTER} volume set {vol.name} group virt
{GLUSTER} volume set {vol.name} {opts}
{GLUSTER} volume start {vol.name}
""", f"create volume {vol.name}", timeout=3600)


def mount_script(plan: LabPlan, node: NodePlan, volumes: list[str]) -> str:
    others = ":".join(n.host for n in plan.nodes if n is not node)
    lines = []
    for v in volumes:
        mp = mount_point(v)
        lines += [f"mkdir -p {mp}",
                  f'echo "{node.host}:/{v} {mp} glusterfs '
                  f'defaults,backup-volfile-servers={others} 0 0" >> /etc/fstab',
                  f"mount {mp}"]
    return "\n".join(lines) + "\n"


def deploy_stack(shell: NodeShells, plan: LabPlan, sc: Scenario,
                 glusterd_timeout: float = 300.0) -> dict[str, Any]:
    """Deploy the scenario's volumes; returns what was applied (``volume get`` per volume)."""
    with ThreadPoolExecutor(len(plan.nodes)) as pool:
        list(pool.map(lambda n: shell.script(n.host, format_bricks_script(n),
                                             f"format bricks on {n.host}"), plan.nodes))
        list(pool.map(lambda n: wait_glusterd(shell, n.host, glusterd_timeout), plan.nodes))
    probe_peers(shell, plan, timeout=120)
    first = plan.nodes[0].host
    ratio = sc.volumes[0].options.server_quorum_ratio_pct if sc.volumes else 51.0
    shell.run(first, f"{GLUSTER} volume set all cluster.server-quorum-ratio {ratio:g}%",
              "set server quorum ratio")
    for vol in sc.volumes:
        create_volume(shell, plan, vol, sc)
    names = [v.name for v in sc.volumes]
    with ThreadPoolExecutor(len(plan.nodes)) as pool:
        list(pool.map(lambda n: shell.script(n.host, mount_script(plan, n, names),
                                             f"mount volumes on {n.host}", timeout=300),
                      plan.nodes))
    cli = Gluster(shell.node(first), base=tuple(GLUSTER.split()))
    return {v: cli.volume_options(v) for v in names}
