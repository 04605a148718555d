"""glusterd per host, peers, volumes, FUSE mounts and heal, on a netns lab (Gluster 10.x).

Several glusterd run side by side the way glusterfs's own tests/cluster.rc does it: each
with its own working directory, run directory, socket, address and log directory
(lab-notes.md gives the option names that work with 10.3).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from hcisim.lab.gluster import Gluster, GlusterError, parse_group_file, scenario_options
from hcisim.lab.netns.layout import HostLayout, LabLayout
from hcisim.lab.netns.state import LabState
from hcisim.lab.node import NsenterShell
from hcisim.lab.process import read_pid, run
from hcisim.lab.wait import require
from hcisim.scenario import Volume

GLFSHEAL = Path("/usr/lib/x86_64-linux-gnu/glusterfs/glfsheal")
GROUPS_DIR = Path("/var/lib/glusterd/groups")


GLUSTER_LIB = Path("/usr/lib/x86_64-linux-gnu/glusterfs")

# Started in a private mount namespace in which the geo-replication helper is hidden:
# glusterd's init otherwise runs `gsyncd` (a Python program) some twenty times to write a
# geo-replication template, 10-30 s on two loaded cores; with gsyncd absent (ENOENT) it
# logs "geo-replication module not installed" and skips that. Nothing else changes: the
# view holds symlinks to every other file of the library directory. Bricks and self-heal
# daemons inherit the namespace; the brick disks are under a shared mount, so a disk
# replaced later (disk_failure) propagates into it.
_HIDE_GSYNCD = """set -e
mount --bind "$1" "$2"
mount -t tmpfs -o size=1m,mode=755 hcisim-glusterlib "$3"
for e in "$2"/*; do n=$(basename "$e"); [ "$n" = gsyncd ] || ln -s "$e" "$3/$n"; done
mount --bind "$3" "$1"
shift 3
exec "$@"
"""


# Every host's gluster processes run under the host's own name (a UTS namespace of their
# own): AFR takes a brick as local when the brick's gethostname() (in its pathinfo xattr)
# equals its own (common-utils.c glusterfs_is_local_pathinfo), and netns hosts otherwise
# share the machine's name. With one name every self-heal daemon swept every brick's index
# (afr-self-heald.c ASSERT_LOCAL: three daemons x three index healers, each with
# shd-max-threads heals, where a real cluster has one healer per brick: found in the
# daemons' logs of calibration part 2d, host2's own daemon healing host1's index), and
# every FUSE client took every brick as its local one (cluster.choose-local).
_OWN_HOSTNAME = 'hostname "$0" && exec "$@"'


def own_hostname(host: HostLayout, argv: list[str]) -> list[str]:
    """``argv`` run with ``host``'s name as the hostname (its children inherit it)."""
    return ["unshare", "--uts", "sh", "-c", _OWN_HOSTNAME, host.name, *argv]


def start_glusterd(host: HostLayout) -> None:
    """Start glusterd in the host's namespace (it daemonizes; see :func:`wait_glusterd`)."""
    for d in (host.workdir, host.rundir, host.logdir, host.piddir):
        d.mkdir(parents=True, exist_ok=True)
    if GROUPS_DIR.is_dir() and not (host.workdir / "groups").exists():
        # `volume set VOL group virt` reads the group file from the working directory
        shutil.copytree(GROUPS_DIR, host.workdir / "groups")
    opt = "--xlator-option"
    argv = [
        "glusterd",
        opt, f"management.working-directory={host.workdir}",
        opt, f"management.transport.socket.bind-address={host.storage_addr}",
        opt, f"management.run-directory={host.rundir}",
        opt, f"management.glusterd-sockfile={host.sock}",
        opt, f"management.cluster-test-mode={host.logdir}",
        "-p", str(host.pidfile), "-l", str(host.glusterd_log),
    ]
    orig, view = host.dir / "glusterlib-orig", host.dir / "glusterlib-view"
    if (GLUSTER_LIB / "gsyncd").exists():
        orig.mkdir(exist_ok=True)
        view.mkdir(exist_ok=True)
        argv = ["unshare", "--mount", "--propagation", "slave", "sh", "-c", _HIDE_GSYNCD,
                "sh", str(GLUSTER_LIB), str(orig), str(view), *argv]
    run(f"start glusterd on {host.name}", own_hostname(host, argv), netns=host.netns,
        timeout=60)


def client(host: HostLayout) -> Gluster:
    """The one Gluster client, on this host's glusterd, from inside its namespace."""
    return Gluster(NsenterShell(host.netns, host.name), str(host.sock))


def wait_glusterd(host: HostLayout, timeout: float = 60.0) -> None:
    require(client(host).answers, timeout, f"start glusterd on {host.name}",
            f"glusterd did not answer on {host.sock} within {timeout:.0f} s "
            f"(see {host.glusterd_log})")


def probe_peers(pool: Sequence[HostLayout], timeout_s: float = 60.0) -> None:
    """Probe every peer of the trusted pool (the hosts with bricks; a compute-only host runs
    no glusterd) from the first, then wait until *every* member sees all the others
    connected: a volume create stages on each peer and fails on one that has not yet
    connected to a third (CI, 2026-11-30: "Staging failed on 10.213.0.12. Error: Host
    10.213.0.13 not connected" when only the first host's view was awaited; the libvirt
    lab's deploy waits the same way)."""
    client(pool[0]).probe_peers([h.storage_addr for h in pool[1:]])
    views = [client(h) for h in pool]
    others = len(pool) - 1
    require(lambda: all(sum(p.connected for p in v.peers()) >= others for v in views),
            timeout_s, "wait for peers",
            f"not every host sees its {others} peers connected within {timeout_s:.0f} s",
            every_s=0.2, ignore=(GlusterError,))


def create_volume(lab: LabLayout, vol: Volume, brick_paths: Mapping[str, Path],
                  extra: Mapping[str, str], via: HostLayout | None = None) -> None:
    """Create ``vol`` with the virt group's keys and the scenario's options, and start it.

    The group file's keys and the scenario's are set in one `volume set` (glusterd's
    `group virt` does nothing but set the file's keys; one transaction instead of two saves
    a second per volume). Later keys win: scenario over group, ``extra`` over both.
    """
    bricks = [f"{lab.host(b.host).storage_addr}:{brick_paths[b.host]}" for b in vol.bricks]
    client(via or lab.hosts[0]).create_volume(
        vol, bricks, {**read_group_file("virt"), **scenario_options(vol), **extra})


def set_server_quorum_ratio(via: HostLayout, pct: float) -> None:
    client(via).do("volume", "set", "all", "cluster.server-quorum-ratio", f"{pct:g}%",
                            step="set server quorum ratio")


def read_group_file(name: str = "virt") -> dict[str, str]:
    try:
        return parse_group_file((GROUPS_DIR / name).read_text())
    except OSError:
        return {}


def mount_volume(lab: LabLayout, host: HostLayout, volume: str, state: LabState,
                 pool: Sequence[HostLayout]) -> None:
    """FUSE-mount ``volume`` in ``host``'s namespace at its own mount point, via its own
    glusterd first and the other members of the ``pool`` as backup volfile servers. A
    compute-only host (not in the pool: no glusterd, no bricks) mounts the way an oVirt
    host outside the Gluster cluster does, from the pool's glusterds."""
    point = lab.mount(host.name, volume)
    point.mkdir(parents=True, exist_ok=True)
    for d in (host.logdir, host.piddir):  # a compute-only host has no glusterd to make them
        d.mkdir(parents=True, exist_ok=True)
    state.add("mounts", str(point))
    servers = [host.storage_addr] if host in pool else []
    servers += [h.storage_addr for h in pool if h is not host]
    run(f"mount {volume} on {host.name}", own_hostname(host, [
        "glusterfs", "--process-name", "fuse", *(f"--volfile-server={a}" for a in servers),
        f"--volfile-id={volume}",
        f"--pid-file={host.piddir / f'fuse-{volume}.pid'}", "-l", str(host.client_log(volume)),
        str(point)]), netns=host.netns, timeout=30)


def wait_mounted(point: Path, timeout: float = 20.0) -> None:
    from hcisim.lab.netns.bricks import is_mounted

    require(lambda: is_mounted(point), timeout, f"mount {point.name}",
            f"{point} did not appear in /proc/mounts", every_s=0.05)


def brick_pid_files(host: HostLayout, volume: str | None = None) -> list[Path]:
    """Pid files glusterd writes for this host's brick processes (of one volume or all)."""
    vols = host.rundir / "vols"
    pattern = f"{volume}/*.pid" if volume else "*/*.pid"
    return sorted(vols.glob(pattern)) if vols.is_dir() else []


def brick_pids(host: HostLayout, volume: str | None = None) -> list[int]:
    return [p for p in (read_pid(f) for f in brick_pid_files(host, volume)) if p]
