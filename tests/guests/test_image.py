"""The guest image: newc archive, module order, recipe hash, and one real build."""

from __future__ import annotations

import gzip
import stat
from pathlib import Path

import pytest

from hcisim.lab.errors import LabError
from hcisim.lab.guests.image import (
    MODULES,
    cpio_newc,
    ensure_image,
    module_order,
    recipe,
    recipe_hash,
)


def read_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    """A reader written from the format's description, independent of the writer."""
    out: dict[str, tuple[int, bytes]] = {}
    pos = 0
    while True:
        assert data[pos:pos + 6] == b"070701", f"bad magic at {pos}"
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = pos + 110
        name = data[name_start:name_start + namesize - 1].decode()
        body = name_start + namesize + (-(110 + namesize) % 4)
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, data[body:body + size])
        pos = body + size + (-size % 4)


def test_newc_round_trip_keeps_names_modes_and_bytes() -> None:
    entries = [("bin", stat.S_IFDIR | 0o755, b""), ("bin/x", stat.S_IFREG | 0o755, b"abc"),
               ("y", stat.S_IFREG | 0o644, bytes(range(256)) * 3)]
    got = read_newc(cpio_newc(entries))
    assert got == {n: (m, d) for n, m, d in entries}


def test_modules_come_after_their_dependencies() -> None:
    files = {m: Path(f"{m}.ko") for m in ("a", "b", "c", "d")}
    order = module_order(files, {"a": ["b", "c"], "b": ["c"], "d": ["c"]}, ("a", "d"))
    assert order == ["c", "b", "a", "d"]
    with pytest.raises(LabError, match=r"e\.ko is not in the kernel package"):
        module_order(files, {"a": ["e"]}, ("a",))
    with pytest.raises(LabError, match="cycle"):
        module_order(files, {"a": ["b"], "b": ["a"]}, ("a",))


def test_recipe_hash_follows_package_versions() -> None:
    one = recipe({"linux-image-x": "1", "busybox-static": "1"})
    two = recipe({"linux-image-x": "2", "busybox-static": "1"})
    assert recipe_hash(one) == recipe_hash(dict(one))
    assert recipe_hash(one) != recipe_hash(two)
    assert any(k == "src:agent.c" for k in one)


@pytest.mark.lab
def test_image_builds_once_and_carries_agent_init_and_virtio(tmp_path: Path) -> None:
    image = ensure_image(tmp_path)
    files = read_newc(gzip.decompress(image.initrd.read_bytes()))
    assert files["agent"][1][:4] == b"\x7fELF"
    assert files["init"][1].startswith(b"#!/bin/busybox sh")
    order = files["modules/order"][1].decode().split()
    for mod in MODULES:
        assert f"modules/{mod}.ko" in files
        assert mod in order
    assert order.index("virtio_ring") < order.index("virtio") < order.index("virtio_blk")
    assert (image.dir / "vmlinuz").read_bytes()[0x202:0x206] == b"HdrS"  # a bzImage header
    assert image.kernel.name == "vmlinux"  # booted directly (PVH): no decompression
    assert image.kernel.read_bytes()[:4] == b"\x7fELF"
    mtime = image.initrd.stat().st_mtime_ns
    again = ensure_image(tmp_path)
    assert again.dir == image.dir and again.initrd.stat().st_mtime_ns == mtime
