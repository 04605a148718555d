"""glusterd per host, peers, volumes, FUSE mounts and heal, on a netns lab (Gluster 10.x).

Several glusterd run side by side the way glusterfs's own tests/cluster.rc does it: each
with its own working directory, run directory, socket, address and log directory
(lab-notes.md gives the option names that work with 10.3).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from hcisim.lab.errors import LabError
from hcisim.lab.netns.layout import HostLayout, LabLayout
from hcisim.lab.netns.state import LabState
from hcisim.lab.process import read_pid, run
from hcisim.scenario import Volume, VolumeOptions

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
        "-p", str(host.pidfile), "-l", str(host.logdir / "glusterd.log"),
    ]
    orig, view = host.dir / "glusterlib-orig", host.dir / "glusterlib-view"
    if (GLUSTER_LIB / "gsyncd").exists():
        orig.mkdir(exist_ok=True)
        view.mkdir(exist_ok=True)
        argv = ["unshare", "--mount", "--propagation", "slave", "sh", "-c", _HIDE_GSYNCD,
                "sh", str(GLUSTER_LIB), str(orig), str(view), *argv]
    run(f"start glusterd on {host.name}", argv, netns=host.netns, timeout=60)


def wait_glusterd(host: HostLayout, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cli(host, ["peer", "status"], check=False, timeout=10).returncode == 0:
                return
        except LabError:  # the CLI itself timed out: glusterd is still starting
            pass
        if time.monotonic() > deadline:
            raise LabError(f"start glusterd on {host.name}",
                           f"glusterd did not answer on {host.sock} within {timeout:.0f} s "
                           f"(see {host.logdir / 'glusterd.log'})")
        time.sleep(0.1)


def cli(host: HostLayout, args: list[str], check: bool = True, timeout: float = 60.0,
        step: str | None = None) -> subprocess.CompletedProcess[str]:
    """`gluster` CLI against this host's glusterd, from inside its namespace."""
    return run(step or f"gluster {' '.join(args[:3])}",
               ["gluster", "--mode=script", "--wignore", f"--glusterd-sock={host.sock}", *args],
               netns=host.netns, timeout=timeout, check=check)


def probe_peers(lab: LabLayout) -> None:
    first = lab.hosts[0]
    for h in lab.hosts[1:]:
        cli(first, ["peer", "probe", h.storage_addr], step=f"probe peer {h.name}")
    deadline = time.monotonic() + 20
    while True:
        out = cli(first, ["pool", "list"], step="wait for peers").stdout
        if out.count("Connected") >= len(lab.hosts):
            return
        if time.monotonic() > deadline:
            raise LabError("wait for peers", f"peers not all connected:\n{out}")
        time.sleep(0.2)


def option_values(opts: VolumeOptions) -> dict[str, str]:
    """The scenario's volume options as gluster keys and values."""
    values = {
        "network.ping-timeout": f"{round(opts.ping_timeout_s)}",
        "server.tcp-user-timeout": f"{round(opts.tcp_user_timeout_s)}",
        "features.shard-block-size": f"{opts.shard_block_size_mib}MB",
        "cluster.shd-max-threads": str(opts.shd_max_threads),
        "cluster.heal-timeout": f"{round(opts.heal_timeout_s)}",
        "cluster.quorum-type": opts.quorum_type,
        "cluster.server-quorum-type": opts.server_quorum_type,
        "cluster.data-self-heal-algorithm": opts.data_self_heal_algorithm,
        "cluster.choose-local": "on" if opts.choose_local else "off",
        "cluster.eager-lock": "enable" if opts.eager_lock else "disable",
    }
    if opts.quorum_count is not None:
        values["cluster.quorum-count"] = str(opts.quorum_count)
    return values


def create_volume(lab: LabLayout, vol: Volume, brick_paths: Mapping[str, Path],
                  extra: Mapping[str, str], via: HostLayout | None = None) -> None:
    """Create ``vol``, apply the virt group and the scenario's options, start it.

    The group file's keys and the scenario's are set in one `volume set` (glusterd's
    `group virt` does nothing but set the file's keys; one transaction instead of two saves
    a second per volume). Later keys win: scenario over group, ``extra`` over both.
    """
    host = via or lab.hosts[0]
    bricks = [f"{lab.host(b.host).storage_addr}:{brick_paths[b.host]}" for b in vol.bricks]
    layout = ["replica", "3", "arbiter", "1"] if vol.type == "arbiter" else ["replica", "3"]
    cli(host, ["volume", "create", vol.name, *layout, *bricks, "force"],
        step=f"create volume {vol.name}")
    pairs = {**read_group_file("virt"), **option_values(vol.options), **extra}
    args: list[str] = []
    for k, v in pairs.items():
        args += [k, v]
    cli(host, ["volume", "set", vol.name, *args], step=f"set options of volume {vol.name}")
    cli(host, ["volume", "start", vol.name], step=f"start volume {vol.name}", timeout=90)


def set_server_quorum_ratio(lab: LabLayout, pct: float) -> None:
    cli(lab.hosts[0], ["volume", "set", "all", "cluster.server-quorum-ratio", f"{pct:g}%"],
        step="set server quorum ratio")


def volume_get(host: HostLayout, volume: str) -> dict[str, str]:
    """Every option of ``volume`` as glusterd applies it (`volume get VOL all`)."""
    out = cli(host, ["volume", "get", volume, "all"], step=f"read options of {volume}").stdout
    return parse_volume_get(out)


def parse_volume_get(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and "." in parts[0] and parts[0] != "Option":
            values[parts[0]] = parts[1].strip()
    return values


def read_group_file(name: str = "virt") -> dict[str, str]:
    try:
        text = (GROUPS_DIR / name).read_text()
    except OSError:
        return {}
    return dict(line.strip().split("=", 1) for line in text.splitlines() if "=" in line)


def mount_volume(lab: LabLayout, host: HostLayout, volume: str, state: LabState) -> None:
    """FUSE-mount ``volume`` in ``host``'s namespace at its own mount point, via its glusterd."""
    point = lab.mount(host.name, volume)
    point.mkdir(parents=True, exist_ok=True)
    state.add("mounts", str(point))
    others = [h.storage_addr for h in lab.hosts if h is not host]
    run(f"mount {volume} on {host.name}", [
        "glusterfs", "--process-name", "fuse", f"--volfile-server={host.storage_addr}",
        *(f"--volfile-server={a}" for a in others), f"--volfile-id={volume}",
        f"--pid-file={host.piddir / f'fuse-{volume}.pid'}", "-l", str(host.client_log(volume)),
        str(point)], netns=host.netns, timeout=30)


def wait_mounted(point: Path, timeout: float = 20.0) -> None:
    from hcisim.lab.netns.bricks import is_mounted

    deadline = time.monotonic() + timeout
    while not is_mounted(point):
        if time.monotonic() > deadline:
            raise LabError(f"mount {point.name}", f"{point} did not appear in /proc/mounts")
        time.sleep(0.05)


def brick_pid_files(host: HostLayout, volume: str | None = None) -> list[Path]:
    """Pid files glusterd writes for this host's brick processes (of one volume or all)."""
    vols = host.rundir / "vols"
    pattern = f"{volume}/*.pid" if volume else "*/*.pid"
    return sorted(vols.glob(pattern)) if vols.is_dir() else []


def brick_pids(host: HostLayout, volume: str | None = None) -> list[int]:
    return [p for p in (read_pid(f) for f in brick_pid_files(host, volume)) if p]


def trigger_heal(host: HostLayout, volume: str, full: bool = False,
                 timeout: float = 20.0) -> bool:
    """`gluster volume heal VOL [full]`, retried: it fails while a self-heal daemon that
    just restarted is still connecting. Returns whether glusterd accepted it."""
    deadline = time.monotonic() + timeout
    while True:
        proc = cli(host, ["volume", "heal", volume, *(["full"] if full else [])], check=False,
                   timeout=30)
        if proc.returncode == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def glfsheal(host: HostLayout, volume: str, timeout: float = 20.0) -> str | None:
    """Heal info of ``volume`` through glfsheal in ``host``'s namespace (None: no answer).

    `gluster volume heal VOL info` cannot be used: its helper looks for the default glusterd
    socket; glfsheal takes the socket explicitly (lab-notes.md). The timeout is generous:
    on two cores shared with a loaded test run one call has taken over 8 s, and a poll that
    never answers would look like a heal that never ends.
    """
    try:
        proc = run(f"heal info {volume}", [str(GLFSHEAL), volume, "glusterd-sock",
                                           str(host.sock)], netns=host.netns, timeout=timeout,
                   check=False)
    except LabError:
        return None
    return proc.stdout if "Brick " in proc.stdout else None
