"""Brick filesystems: one sparse XFS image per host disk, formatted and mounted as HCI does.

``mkfs.xfs -f -K -i size=512 -n size=8192``, mounted ``inode64,noatime,nodiratime`` on a
loop device (gluster-ansible's brick recipe). Images are sparse, so a 2 GB brick costs only
what is written.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from hcisim.lab.errors import LabError
from hcisim.lab.netns.state import LabState
from hcisim.lab.process import run
from hcisim.lab.wait import wait_until

MIN_IMAGE_BYTES = 512 * 2**20  # XFS v5 refuses filesystems under 300 MB
MKFS = ["mkfs.xfs", "-f", "-K", "-i", "size=512", "-n", "size=8192", "-q"]
MOUNT_OPTS = "inode64,noatime,nodiratime"


def make_image(image: Path, size_bytes: int) -> None:
    """Create the sparse image file and put an XFS filesystem on it."""
    step = f"format brick image {image.name}"
    image.parent.mkdir(parents=True, exist_ok=True)
    with image.open("wb") as f:
        f.truncate(max(size_bytes, MIN_IMAGE_BYTES))
    run(step, [*MKFS, str(image)])


def shared_root(path: Path, state: LabState) -> None:
    """Make ``path`` a shared mount (a bind of itself), so mounts below it propagate into
    the private mount namespaces glusterd and its bricks run in."""
    path.mkdir(parents=True, exist_ok=True)
    state.add("mounts", str(path))
    run("share brick mounts", ["mount", "--bind", str(path), str(path)])
    run("share brick mounts", ["mount", "--make-shared", str(path)])


def attach_and_mount(image: Path, mountpoint: Path, state: LabState) -> str:
    """Attach ``image`` to a loop device and mount it; both recorded in the state first."""
    step = f"mount brick filesystem {image.name}"
    state.add("images", str(image))
    dev = run(step, ["losetup", "--find", "--show", str(image)]).stdout.strip()
    if not dev.startswith("/dev/loop"):
        raise LabError(step, f"losetup gave no loop device for {image}")
    state.add("loops", dev)
    mountpoint.mkdir(parents=True, exist_ok=True)
    state.add("mounts", str(mountpoint))
    run(step, ["mount", "-t", "xfs", "-o", MOUNT_OPTS, dev, str(mountpoint)])
    return dev


def shutdown_fs(mountpoint: Path) -> None:
    """The brick's filesystem fails: every later I/O on it returns EIO (XFS forced shutdown)."""
    run(f"fail disk at {mountpoint}", ["xfs_io", "-x", "-c", "shutdown", str(mountpoint)])


def unmount(mountpoint: Path, lazy_after_s: float = 5.0) -> None:
    """Unmount, retrying while the last users go away, lazily as a last resort."""
    def gone() -> bool:
        res = run(f"unmount {mountpoint}", ["umount", str(mountpoint)], check=False)
        return res.ok or not is_mounted(mountpoint)

    if not wait_until(gone, lazy_after_s, 0.1):
        run(f"unmount {mountpoint}", ["umount", "-l", str(mountpoint)], check=False)


def replace_fs(image: Path, mountpoint: Path, state: LabState) -> Path:
    """A new, empty disk in place of a failed one, mounted where the old one was.

    A new image on a new loop device rather than reformatting the old one: the failed
    filesystem may still be mounted in another mount namespace (glusterd's, or another
    lab's that copied the mount table), which keeps the old loop device busy. It is freed
    when those namespaces go; ``down`` finds every image of the lab by its name.
    """
    unmount(mountpoint)
    n = 1
    while (new := image.with_name(f"{image.stem}-r{n}.img")).exists():
        n += 1
    make_image(new, image.stat().st_size)
    attach_and_mount(new, mountpoint, state)
    return new


def mounted_under(root: Path) -> list[tuple[str, str]]:
    """(mount point, fs type) of every mount below ``root``, deepest first.

    Read from /proc/mounts: a dead FUSE mount is invisible to os.path.ismount.
    """
    found = []
    prefix = str(root).rstrip("/") + "/"
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                point = parts[1].replace("\\040", " ")
                if point.startswith(prefix) or point == str(root):
                    found.append((point, parts[2]))
    return sorted(found, key=lambda m: -len(m[0]))


def is_mounted(point: Path) -> bool:
    with open("/proc/mounts") as f:
        return any(line.split()[1] == str(point) for line in f if len(line.split()) > 1)


def loops_of(image: Path) -> list[str]:
    proc = run("list loop devices", ["losetup", "-j", str(image)], check=False)
    return [line.split(":", 1)[0] for line in proc.stdout.splitlines() if line.startswith("/dev/")]


def detach(dev: str) -> None:
    run(f"detach {dev}", ["losetup", "-d", dev], check=False)


def remove_tree(path: Path) -> None:
    """rm -rf that never follows into a still-mounted filesystem."""
    if not path.exists():
        return
    for point, _ in mounted_under(path):
        raise LabError("remove lab directory", f"{point} is still mounted")
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(dirpath, name))
        for name in dirnames:
            full = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                if os.path.islink(full):
                    os.unlink(full)
                else:
                    os.rmdir(full)
    with contextlib.suppress(OSError):
        os.rmdir(path)
