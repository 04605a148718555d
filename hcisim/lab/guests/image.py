"""The guest image: Debian's kernel, a busybox initramfs and the static agent, cached.

Built from Debian packages only, nothing installed on the machine: ``apt-get download`` of
the kernel package ``linux-image-amd64`` depends on and of ``busybox-static``, unpacked
with ``dpkg-deb``; the agent (``lab/guest/agent.c``) compiled with ``gcc -static``. The
Debian kernel has virtio as modules, so the initramfs carries virtio_pci, virtio_blk and
virtio_console with their dependencies (read with ``modinfo``), loaded in order by
``lab/guest/init``.

The result lives in ``<cache>/<recipe hash>/`` (``vmlinuz``, ``initrd.img``,
``recipe.json``). The hash covers the package versions apt would fetch and the bytes of
the agent, the init script and this builder, so a changed recipe builds a new image and an
unchanged one is never rebuilt. The archive is written here (newc cpio) rather than with
the ``cpio`` tool: one package fewer, and the same bytes for the same inputs.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hcisim.lab.errors import LabError

GUEST_SRC = Path(__file__).resolve().parents[3] / "lab" / "guest"
KERNEL_META = "linux-image-amd64"
BUSYBOX = "busybox-static"
MODULES = ("virtio_pci", "virtio_blk", "virtio_console")
STEP = "build the guest image"


BUILD_TOOLS = {"apt-get": "apt", "apt-cache": "apt", "dpkg-deb": "dpkg", "gcc": "gcc",
               "modinfo": "kmod"}


def preflight() -> None:
    """Name the missing build tools (and the Debian package that has each) up front."""
    missing = sorted(f"{cmd} (apt-get install {pkg})" for cmd, pkg in BUILD_TOOLS.items()
                     if shutil.which(cmd) is None)
    if not Path("/usr/lib/x86_64-linux-gnu/libc.a").exists():
        missing.append("libc.a for gcc -static (apt-get install libc6-dev)")
    if missing:
        raise LabError(STEP, "missing: " + ", ".join(missing))


def cache_root() -> Path:
    """``$HCISIM_GUEST_CACHE``, else ``$XDG_CACHE_HOME/hcisim/guest`` (``~/.cache/...``)."""
    env = os.environ.get("HCISIM_GUEST_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "hcisim" / "guest"


@dataclass(frozen=True)
class GuestImage:
    """A built image: what qemu boots (``-kernel``, ``-initrd``)."""

    dir: Path
    recipe: dict[str, str]

    @property
    def kernel(self) -> Path:
        """The uncompressed ``vmlinux`` (PVH direct boot) if there is one, else the bzImage.

        qemu boots an ELF kernel with a PVH entry note directly: no firmware hand-off and,
        above all, no XZ decompression of the bzImage, which under TCG is most of the
        boot (measured here: agent ready after 1.7-2.8 s instead of 5.8-10.3 s).
        """
        vmlinux = self.dir / "vmlinux"
        return vmlinux if vmlinux.exists() else self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"

    @property
    def hash(self) -> str:
        return self.dir.name


def _run(what: str, argv: list[str], cwd: Path | None = None,
         timeout: float = 300.0) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise LabError(STEP, f"{what}: command not found: {argv[0]}") from None
    except subprocess.TimeoutExpired:
        raise LabError(STEP, f"{what}: {argv[0]} did not finish in {timeout:.0f} s") from None
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise LabError(STEP, f"{what}: {' '.join(argv)}: {err[-1] if err else proc.returncode}")
    return proc


def _apt_field(package: str, field: str) -> str:
    out = _run(f"look up {package}", ["apt-cache", "show", "--no-all-versions", package])
    for line in out.stdout.decode().splitlines():
        if line.startswith(f"{field}:"):
            return line.split(":", 1)[1].strip()
    raise LabError(STEP, f"apt-cache has no {field} for {package} (run apt-get update)")


def resolve_packages() -> dict[str, str]:
    """package -> version that ``apt-get download`` would fetch now.

    A machine whose apt lists are empty (fresh, never ``apt-get update``d) gets one
    ``apt-get update`` first: without lists apt knows no package to download.
    """
    try:
        depends = _apt_field(KERNEL_META, "Depends")
    except LabError:
        _run("update apt's package lists", ["apt-get", "update", "-qq"], timeout=600)
        depends = _apt_field(KERNEL_META, "Depends")
    kernel_pkg = depends.split(",")[0].split("(")[0].strip()
    return {kernel_pkg: _apt_field(kernel_pkg, "Version"),
            BUSYBOX: _apt_field(BUSYBOX, "Version")}


def recipe(packages: dict[str, str]) -> dict[str, str]:
    """What decides the image's bytes; its hash names the cache entry."""
    files = {name: hashlib.sha256((GUEST_SRC / name).read_bytes()).hexdigest()
             for name in ("agent.c", "init")}
    files["builder"] = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    return {**{f"pkg:{k}": v for k, v in sorted(packages.items())},
            **{f"src:{k}": v for k, v in sorted(files.items())}}


def recipe_hash(rec: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()[:16]


# --- the initramfs ------------------------------------------------------------------
def _cpio_entry(name: str, mode: int, data: bytes = b"", ino: int = 1) -> bytes:
    """One ``newc`` record (the format the kernel unpacks): fixed hex header, name, data."""
    nameb = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nameb), 0]
    head = b"070701" + b"".join(f"{v:08X}".encode() for v in fields)
    out = head + nameb
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A newc archive of (path, mode, content) entries, directories included, plus trailer."""
    body = b"".join(_cpio_entry(n, m, d, i + 1) for i, (n, m, d) in enumerate(entries))
    return body + _cpio_entry("TRAILER!!!", 0, b"", 0)


def module_order(files: dict[str, Path], depends: dict[str, list[str]],
                 wanted: tuple[str, ...]) -> list[str]:
    """Modules to insmod, each after its dependencies (depth-first, no repeats)."""
    order: list[str] = []

    def visit(mod: str, path: tuple[str, ...]) -> None:
        if mod in order:
            return
        if mod in path:
            raise LabError(STEP, f"module dependency cycle: {' -> '.join((*path, mod))}")
        if mod not in files:
            raise LabError(STEP, f"module {mod}.ko is not in the kernel package")
        for dep in depends.get(mod, []):
            visit(dep, (*path, mod))
        order.append(mod)

    for mod in wanted:
        visit(mod, ())
    return order


def _modinfo_depends(ko: Path) -> list[str]:
    out = _run(f"read dependencies of {ko.name}", ["modinfo", "-F", "depends", str(ko)])
    return [d for d in out.stdout.decode().strip().split(",") if d]


def _unpack_kernel(deb: Path, dest: Path) -> tuple[Path, dict[str, Path]]:
    """vmlinuz and every driver module of ``deb`` (streamed: nothing else is written)."""
    tar_out = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert tar_out.stdout is not None
    kernel: Path | None = None
    modules: dict[str, Path] = {}
    with tarfile.open(fileobj=tar_out.stdout, mode="r|") as tar:
        for member in tar:
            base = os.path.basename(member.name)
            is_kernel = "/boot/vmlinuz-" in member.name
            is_module = "/kernel/drivers/" in member.name and base.endswith(".ko")
            if not member.isfile() or not (is_kernel or is_module):
                continue
            f = tar.extractfile(member)
            assert f is not None
            target = dest / ("vmlinuz" if is_kernel else base)
            target.write_bytes(f.read())
            if is_kernel:
                kernel = target
            else:
                modules[base[:-3].replace("-", "_")] = target
    if tar_out.wait() != 0 or kernel is None:
        raise LabError(STEP, f"could not unpack a kernel from {deb.name}")
    return kernel, modules


def extract_vmlinux(bzimage: bytes) -> bytes | None:
    """The ELF kernel inside an XZ-compressed bzImage (Debian's), None if not found.

    What the kernel's scripts/extract-vmlinux does: find the XZ stream's magic after the
    setup code and decompress it; the decompressor stops at the stream's end, so the
    bytes after it (the bzImage's trailer) do no harm.
    """
    start = bzimage.find(b"\xfd7zXZ\x00")
    while start >= 0:
        try:
            out = lzma.LZMADecompressor().decompress(bzimage[start:])
        except lzma.LZMAError:
            out = b""
        if out[:4] == b"\x7fELF":
            return out
        start = bzimage.find(b"\xfd7zXZ\x00", start + 1)
    return None


def _busybox(deb: Path, dest: Path) -> bytes:
    _run("unpack busybox", ["dpkg-deb", "-x", str(deb), str(dest)])
    return (dest / "bin" / "busybox").read_bytes()


def _compile_agent(dest: Path) -> bytes:
    out = dest / "agent"
    _run("compile the agent", ["gcc", "-static", "-O2", "-pthread", "-s", "-o", str(out),
                               str(GUEST_SRC / "agent.c")])
    return out.read_bytes()


def build_into(work: Path, packages: dict[str, str]) -> None:
    """Build vmlinuz and initrd.img into ``work`` from the given package versions."""
    dl = work / "dl"
    dl.mkdir()
    _run("download packages", ["apt-get", "download", *(f"{p}={v}" for p, v in packages.items())],
         cwd=dl)
    debs = {p: next(dl.glob(f"{p}_*.deb")) for p in packages}
    kernel_pkg = next(p for p in packages if p != BUSYBOX)
    unpacked = work / "k"
    unpacked.mkdir()
    kernel, modules = _unpack_kernel(debs[kernel_pkg], unpacked)
    depends = {m: _modinfo_depends(p) for m, p in modules.items()
               if m.startswith("virtio")}
    order = module_order(modules, depends, MODULES)
    busybox = _busybox(debs[BUSYBOX], work / "bb")
    agent = _compile_agent(work)
    dir_mode, exe_mode, file_mode = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o755, stat.S_IFREG | 0o644
    entries: list[tuple[str, int, bytes]] = [
        (d, dir_mode, b"") for d in ("bin", "dev", "proc", "sys", "modules")]
    entries += [("bin/busybox", exe_mode, busybox), ("agent", exe_mode, agent),
                ("init", exe_mode, (GUEST_SRC / "init").read_bytes()),
                ("modules/order", file_mode, ("\n".join(order) + "\n").encode())]
    entries += [(f"modules/{m}.ko", file_mode, modules[m].read_bytes()) for m in order]
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(cpio_newc(entries))
    (work / "initrd.img").write_bytes(buf.getvalue())
    os.replace(kernel, work / "vmlinuz")
    vmlinux = extract_vmlinux((work / "vmlinuz").read_bytes())
    if vmlinux is not None:
        (work / "vmlinux").write_bytes(vmlinux)
    for d in (dl, unpacked, work / "bb"):
        shutil.rmtree(d)
    (work / "agent").unlink()


KEEP_IMAGES = 3


def _prune(base: Path, keep: int) -> None:
    """Drop all but the ``keep`` newest images (a changed recipe leaves the old one)."""
    built = sorted((d for d in base.iterdir() if (d / "recipe.json").is_file()),
                   key=lambda d: (d / "recipe.json").stat().st_mtime, reverse=True)
    for old in built[keep:]:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _cache_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_image(root: Path | None = None) -> GuestImage:
    """The cached image for today's recipe, built first if missing (one builder at a time)."""
    preflight()
    base = root or cache_root()
    packages = resolve_packages()
    rec = recipe(packages)
    target = base / recipe_hash(rec)
    with _cache_lock(base):
        if not (target / "recipe.json").is_file():
            t0 = time.monotonic()
            work = Path(tempfile.mkdtemp(prefix=".build-", dir=base))
            work.chmod(0o755)
            try:
                build_into(work, packages)
                rec_out = {**rec, "build_s": f"{time.monotonic() - t0:.1f}"}
                (work / "recipe.json").write_text(json.dumps(rec_out, indent=2) + "\n")
                if target.exists():
                    shutil.rmtree(target)
                os.replace(work, target)
                _prune(base, keep=KEEP_IMAGES)
            finally:
                if work.exists():
                    shutil.rmtree(work)
    return GuestImage(target, json.loads((target / "recipe.json").read_text()))
