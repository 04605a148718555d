"""The node image: Debian bookworm debootstrapped from the machine's own apt source.

The recipe is the non-Python part in ``lab/libvirt/image`` (package lists, the chroot steps,
the node's init). Its hash names the cache entry, so an image is rebuilt only when the recipe
(or the mirror it is built from) changes. An image is three files: the root disk (qcow2, used
read-only as the backing file of every node's overlay) and the kernel and initramfs, which
libvirt boots directly: no bootloader or BIOS disk probing to emulate.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hcisim.lab.process import file_lock

SUITE = "bookworm"
DEFAULT_CACHE = Path("/var/cache/hcisim/images")
ROOT_DISK_GIB = 3
# Bump when the Python steps below change in a way the recipe files do not show.
BUILD_STEPS_VERSION = "1"

Report = Callable[[str], None]


class ImageError(RuntimeError):
    """The node image cannot be built or found; the message says which step and why."""


def lab_dir() -> Path:
    """``lab/libvirt`` of this checkout (HCISIM_LAB_DIR overrides, for installed copies)."""
    env = os.environ.get("HCISIM_LAB_DIR")
    base = Path(env) if env else Path(__file__).resolve().parents[3] / "lab"
    return base / "libvirt"


@dataclass(frozen=True)
class AptSource:
    """Where Debian packages come from on this machine (read from /etc/apt)."""

    mirror: str
    security: str | None = None


def parse_apt_sources(texts: dict[str, str], suite: str = SUITE) -> AptSource:
    """The Debian mirror (and security mirror) of ``suite`` in apt source files.

    ``texts`` maps file names to contents; ``.sources`` files are deb822, ``.list`` files
    one-line. Raises ImageError when no ``deb`` entry serves ``suite``.
    """
    entries: list[tuple[str, str]] = []  # (uri, suite)
    for name, text in sorted(texts.items()):
        if name.endswith(".sources"):
            for para in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                key = ""
                for line in para.splitlines():
                    if line.startswith("#") or not line.strip():
                        continue
                    if line[0].isspace() and key:
                        fields[key] += " " + line.strip()
                        continue
                    key, _, value = line.partition(":")
                    key = key.strip().lower()
                    fields[key] = value.strip()
                if "deb" not in fields.get("types", "").split():
                    continue
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                for uri in fields.get("uris", "").split():
                    entries += [(uri, s) for s in fields.get("suites", "").split()]
        elif name.endswith(".list"):
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    entries.append((words[1], words[2]))
    mirror = next((u for u, s in entries if s == suite), None)
    if mirror is None:
        raise ImageError(
            f"no apt source for Debian {suite} in /etc/apt/sources.list*: "
            "add one (the node image is debootstrapped from it)")
    security = next((u for u, s in entries if s == f"{suite}-security"), None)
    return AptSource(mirror.rstrip("/"), security.rstrip("/") if security else None)


def machine_apt_source(etc_apt: Path = Path("/etc/apt")) -> AptSource:
    files = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*"))]
    texts = {f.name: f.read_text() for f in files if f.is_file()}
    return parse_apt_sources(texts)


@dataclass(frozen=True)
class ImageRecipe:
    """Everything an image is made from; equal recipes give the same cache entry."""

    source: AptSource
    nested: bool = False
    suite: str = SUITE

    @property
    def package_files(self) -> tuple[str, ...]:
        return ("packages.txt", "nested-packages.txt") if self.nested else ("packages.txt",)

    def files(self) -> list[Path]:
        return sorted(p for p in (lab_dir() / "image").iterdir() if p.is_file())

    def packages(self) -> list[str]:
        out: list[str] = []
        for name in self.package_files:
            for line in (lab_dir() / "image" / name).read_text().splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    out.append(line.strip())
        return out

    def digest(self) -> str:
        h = hashlib.sha256()
        for p in self.files():
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
        h.update(json.dumps([self.suite, self.source.mirror, self.source.security,
                             self.nested, BUILD_STEPS_VERSION]).encode())
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class NodeImage:
    """A built image in the cache."""

    digest: str
    directory: Path

    @property
    def disk(self) -> Path:
        return self.directory / "node.qcow2"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    def info(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.directory / "recipe.json").read_text())
        return data


def cached_image(recipe: ImageRecipe, cache: Path = DEFAULT_CACHE) -> NodeImage | None:
    img = NodeImage(recipe.digest(), cache / recipe.digest())
    ok = all(p.is_file() for p in (img.disk, img.kernel, img.initrd,
                                   img.directory / "recipe.json"))
    return img if ok else None


def _run(step: str, cmd: list[str], env: dict[str, str] | None = None,
         log: Path | None = None) -> None:
    try:
        with open(log, "a") if log else open(os.devnull, "w") as out:
            out.write(f"\n$ {' '.join(cmd)}\n")
            out.flush()
            subprocess.run(cmd, check=True, stdout=out, stderr=subprocess.STDOUT,
                           env={**os.environ, **(env or {})})
    except FileNotFoundError:
        raise ImageError(f"{step}: {cmd[0]} is not installed (apt-get install "
                         f"{_PACKAGE_OF.get(cmd[0], cmd[0])})") from None
    except subprocess.CalledProcessError as exc:
        tail = ""
        if log and log.exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise ImageError(f"{step} failed (exit {exc.returncode}); log {log}:\n{tail}") from None


_PACKAGE_OF = {"debootstrap": "debootstrap", "qemu-img": "qemu-utils",
               "mkfs.ext4": "e2fsprogs", "unshare": "util-linux"}


def _sources_list(recipe: ImageRecipe) -> str:
    s = recipe.suite
    lines = [f"deb {recipe.source.mirror} {s} main", f"deb {recipe.source.mirror} {s}-updates main"]
    if recipe.source.security:
        lines.append(f"deb {recipe.source.security} {s}-security main")
    return "\n".join(lines) + "\n"


def build_image(recipe: ImageRecipe, cache: Path = DEFAULT_CACHE, force: bool = False,
                report: Report | None = None) -> NodeImage:
    """The cached image of ``recipe``, built first if missing (or ``force``)."""
    say = report or (lambda _m: None)
    if os.geteuid() != 0:
        raise ImageError("building the node image needs root (debootstrap, chroot)")
    with file_lock(cache / ".lock"):  # parallel test workers wait for the first build
        found = cached_image(recipe, cache)
        if found and not force:
            say(f"image {found.digest} is cached: {found.directory}")
            return found
        final = cache / recipe.digest()
        work = cache / f".build-{recipe.digest()}-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            timings = _build_into(recipe, work, say)
            shutil.rmtree(final, ignore_errors=True)
            work.rename(final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        img = NodeImage(recipe.digest(), final)
        say(f"image {img.digest} built in {sum(timings.values()):.0f} s: {img.directory}")
        return img


def _build_into(recipe: ImageRecipe, work: Path, say: Report) -> dict[str, float]:
    log = work / "build.log"
    rootfs = work / "rootfs"
    timings: dict[str, float] = {}
    t = time.monotonic()

    def lap(name: str) -> None:
        nonlocal t
        now = time.monotonic()
        timings[name] = round(now - t, 1)
        t = now

    say(f"debootstrap {recipe.suite} (minbase) from {recipe.source.mirror}")
    _run("debootstrap", ["debootstrap", "--variant=minbase", recipe.suite, str(rootfs),
                         recipe.source.mirror], log=log)
    lap("debootstrap_s")
    (rootfs / "etc/apt/sources.list").write_text(_sources_list(recipe))
    shutil.copy("/etc/resolv.conf", rootfs / "etc/resolv.conf")
    shutil.copytree(lab_dir() / "image", rootfs / "tmp/hcisim-recipe")
    say(f"installing {len(recipe.packages())} packages in the chroot")
    # A private mount namespace: /proc and /dev in the chroot vanish with the process,
    # whatever happens to this build.
    script = ('mount -t proc proc "$R/proc" && mount --bind /dev "$R/dev" && '
              'mount -t sysfs sysfs "$R/sys" && '
              'chroot "$R" /bin/sh /tmp/hcisim-recipe/customize.sh')
    _run("chroot customize", ["unshare", "--mount", "--propagation", "private", "--",
                              "sh", "-c", script],
         env={"R": str(rootfs), "PACKAGES": " ".join(recipe.package_files)}, log=log)
    lap("packages_s")
    (rootfs / "etc/resolv.conf").write_text("")
    boot = rootfs / "boot"
    kernels = sorted(boot.glob("vmlinuz-*"))
    initrds = sorted(boot.glob("initrd.img-*"))
    if not kernels or not initrds:
        raise ImageError(f"no kernel/initramfs in {boot} after the package step; log {log}")
    shutil.copy(kernels[-1], work / "vmlinuz")
    shutil.copy(initrds[-1], work / "initrd.img")
    say("making the root disk (mkfs.ext4 -d, qcow2)")
    raw = work / "root.raw"
    _run("mkfs.ext4", ["mkfs.ext4", "-q", "-F", "-L", "hcisim-root", "-d", str(rootfs),
                       str(raw), f"{ROOT_DISK_GIB}G"], log=log)
    _run("qemu-img convert", ["qemu-img", "convert", "-O", "qcow2", str(raw),
                              str(work / "node.qcow2")], log=log)
    raw.unlink()
    rootfs_bytes = int(subprocess.run(["du", "-sb", str(rootfs)], capture_output=True,
                                      text=True).stdout.split()[0])
    shutil.rmtree(rootfs)
    lap("disk_s")
    for p in work.iterdir():  # qemu (uid libvirt-qemu) reads these read-only
        p.chmod(0o644)
    work.chmod(0o755)
    info = {"digest": recipe.digest(), "suite": recipe.suite, "mirror": recipe.source.mirror,
            "security": recipe.source.security, "nested": recipe.nested,
            "packages": recipe.packages(), "kernel": kernels[-1].name,
            "rootfs_bytes": rootfs_bytes, "disk_bytes": (work / "node.qcow2").stat().st_size,
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "timings": timings}
    (work / "recipe.json").write_text(json.dumps(info, indent=2))
    return timings
