"""Pure pieces of the libvirt lab: apt sources, recipe hash, KVM probe, fault XML, heal sums."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from hcisim.lab.errors import LabError
from hcisim.lab.libvirt import image as image_mod
from hcisim.lab.libvirt.faults import brick_disk_xml, interface_xml, nics_of
from hcisim.lab.libvirt.hypervisor import boot_sector, is_local, probe_accel
from hcisim.lab.libvirt.image import AptSource, ImageError, ImageRecipe, parse_apt_sources
from hcisim.lab.libvirt.layout import Machine, plan_lab
from hcisim.lab.probe import BrickSlot, pending_and_connected
from hcisim.scenario import load_scenario

DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""


def test_apt_source_from_deb822() -> None:
    src = parse_apt_sources({"debian.sources": DEB822})
    assert src == AptSource("http://deb.debian.org/debian", "http://deb.debian.org/debian-security")


def test_apt_source_from_one_line_list_with_options_and_disabled_files() -> None:
    texts = {"sources.list": "# deb http://old/ bookworm main\n"
                             "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ "
                             "bookworm main contrib\n",
             "other.sources": "Types: deb\nEnabled: no\nURIs: http://nope/\nSuites: bookworm\n"}
    assert parse_apt_sources(texts).mirror == "http://mirror.example/debian"


def test_no_bookworm_source_is_a_clear_error() -> None:
    with pytest.raises(ImageError, match="no apt source for Debian bookworm"):
        parse_apt_sources({"x.list": "deb http://a/ trixie main\n"})


def test_recipe_hash_follows_the_recipe_files(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(image_mod.lab_dir(), tmp_path / "libvirt")
    monkeypatch.setenv("HCISIM_LAB_DIR", str(tmp_path))
    src = AptSource("http://m/debian")
    before = ImageRecipe(src).digest()
    assert ImageRecipe(src).digest() == before  # stable
    assert ImageRecipe(AptSource("http://other/debian")).digest() != before
    assert ImageRecipe(src, nested=True).digest() != before
    pkgs = tmp_path / "libvirt" / "image" / "packages.txt"
    pkgs.write_text(pkgs.read_text() + "strace\n")
    assert ImageRecipe(src).digest() != before
    assert "strace" in ImageRecipe(src).packages()
    assert image_mod.cached_image(ImageRecipe(src), tmp_path / "cache") is None


def test_recipe_lists_the_stack_and_a_kernel() -> None:
    pkgs = ImageRecipe(AptSource("http://m/debian")).packages()
    for p in ("glusterfs-server", "glusterfs-client", "fio", "openssh-server",
              "linux-image-amd64", "python3", "xfsprogs"):
        assert p in pkgs
    assert "qemu-system-x86" in pkgs  # the guest layer's qemu (hcisim.lab.libvirt.nested)
    nested = ImageRecipe(AptSource("http://m/debian"), nested=True).packages()
    assert "libvirt-daemon-system" in nested and "libvirt-daemon-system" not in pkgs


def test_boot_sector_is_bootable_and_writes_the_exit_port() -> None:
    sector = boot_sector()
    assert len(sector) == 512 and sector[-2:] == b"\x55\xaa"
    assert sector[:4] == bytes([0xB0, 0x01, 0xE6, 0xF4])  # mov al,1 ; out 0xf4,al


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                    reason="qemu-system-x86 not installed")
def test_probe_passes_with_software_emulation() -> None:
    """The probe itself is sound: under TCG (always available) the boot sector runs."""
    ok, seen = probe_accel("tcg", timeout_s=60)
    assert ok, seen


def test_remote_uris_are_not_local() -> None:
    assert is_local("qemu:///system")
    assert not is_local("qemu+ssh://big-host/system")


def test_fault_xml_names_the_nic_and_disk_of_the_node(tmp_path: Path) -> None:
    sc = load_scenario(None)
    plan = plan_lab(sc, "f1", 2, "qemu", Machine(2, 8192), workdir=tmp_path)
    node = plan.node("host2")
    iface = ET.fromstring(interface_xml(node, "storage", "down"))
    assert iface.find("mac").get("address") == node.nic("storage").mac  # type: ignore[union-attr]
    assert iface.find("link").get("state") == "down"  # type: ignore[union-attr]
    disk = ET.fromstring(brick_disk_xml(node, None))
    assert disk.findtext("serial") == "brick-brick0"
    assert disk.find("source").get("file") == str(node.bricks[0].path)  # type: ignore[union-attr]
    assert nics_of(("storage", "management")) == ["mgmt", "storage"]


def test_pending_heal_goes_to_blamed_data_bricks_once() -> None:
    """Same rule as healinfo.pending_by_brick: per entry, each blamed data sink receives the
    entry's size once (max over sources); nothing is sent to an arbiter."""
    bricks = [BrickSlot("data", 0, "host1", False), BrickSlot("data", 1, "host2", False),
              BrickSlot("data", 2, "host3", True)]
    shard = ["<gfid:aa>", 4096.0, {"1": True, "2": False}]
    answers = {
        "host1": {"bricks": [{"volume": "data", "index": 0, "online": True,
                              "entries": [shard]}]},
        "host2": {"bricks": [{"volume": "data", "index": 1, "online": True, "entries": []}]},
        "host3": {"bricks": [{"volume": "data", "index": 2, "online": True,
                              "entries": [["<gfid:aa>", 0.0, {"1": True}]]}]},
    }
    pending, connected = pending_and_connected(answers, bricks)
    assert connected["data"] == [True, True, True]
    assert pending["data"][1].bytes == 4096.0 and pending["data"][1].entries == 1
    assert pending["data"][0].bytes == 0.0
    assert pending["data"][2].bytes == 0.0 and pending["data"][2].entries == 1  # metadata only


def test_a_node_that_does_not_answer_makes_pending_unknown() -> None:
    bricks = [BrickSlot("v", i, f"h{i}", False) for i in range(3)]
    answers: dict[str, dict[str, Any]] = {
        f"h{i}": {"bricks": [{"volume": "v", "index": i, "online": True, "entries": []}]}
        for i in (0, 1)}
    pending, connected = pending_and_connected(answers, bricks)
    assert "v" not in pending
    assert connected["v"] == [True, True, False]


class FakeDomain:
    def __init__(self, name: str, calls: list[tuple[str, str]]) -> None:
        self.name_, self.calls = name, calls

    def destroy(self) -> None:
        self.calls.append((self.name_, "destroy"))

    def updateDeviceFlags(self, xml: str, flags: int) -> None:
        link = ET.fromstring(xml).find("link")
        assert link is not None and flags == 1
        self.calls.append((self.name_, f"link {link.get('state')}"))


class FakeConn:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def lookupByName(self, name: str) -> FakeDomain:
        return FakeDomain(name, self.calls)

    def close(self) -> None:
        self.calls.append(("conn", "close"))


def test_attach_a_lab_that_is_up_and_fault_it_by_hand(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``hcisim lab fault/restore`` on a libvirt lab: attach finds the lab by its state and
    scenario, the shared injector cuts and restores the link through libvirt, and the
    active fault is in the state file for the next command."""
    from hcisim.lab.libvirt import backend as backend_mod
    from hcisim.lab.libvirt.backend import LibvirtBackend
    from hcisim.lab.netns.state import LabState
    from hcisim.scenario import make_fault, save_scenario

    sc = load_scenario(None)
    with pytest.raises(LabError, match="no libvirt lab named 'lab7'"):
        LibvirtBackend.attach("lab7", tmp_path)
    (tmp_path / "lab7").mkdir()
    save_scenario(sc, tmp_path / "lab7" / "scenario.yaml")
    LabState(tmp_path / "lab7" / "state.json").set("slot", 7)
    conn = FakeConn()
    monkeypatch.setattr(backend_mod, "connect", lambda uri: conn)
    host = sc.host_names[1]
    be = LibvirtBackend.attach("lab7", tmp_path)
    assert be.plan is not None and str(be.plan.network("storage").subnet).split(".")[2] == "7"
    cut = make_fault(at_s=0, kind="nic_loss", target=host, network="storage",
                     duration_s=10)
    be.inject(cut)
    be.detach()
    again = LibvirtBackend.attach("lab7", tmp_path)
    assert again.active_faults == [cut]
    again.background_heal = False
    monkeypatch.setattr(again, "trigger_heal", lambda volume, full=False: True)
    again.restore(cut)
    assert again.active_faults == []
    domain = f"hcisim-lab7-{host}"
    assert [c for c in conn.calls if c[0] != "conn"] == [(domain, "link down"),
                                                         (domain, "link up")]


class OrphanDomain:
    """A domain of a lab whose harness was SIGKILLed: running, not persistent."""

    def __init__(self, name: str, running: set[str]) -> None:
        self.name_, self.running = name, running

    def name(self) -> str:
        return self.name_

    def isActive(self) -> bool:
        return self.name_ in self.running

    def isPersistent(self) -> bool:
        return False

    def destroy(self) -> None:
        self.running.discard(self.name_)


class OrphanConn:
    def __init__(self, running: set[str]) -> None:
        self.running = running

    def listAllDomains(self, flags: int) -> list[OrphanDomain]:
        return [OrphanDomain(n, self.running) for n in sorted(self.running)]

    def listAllNetworks(self, flags: int) -> list[Any]:
        return []

    def lookupByName(self, name: str) -> OrphanDomain:
        if name not in self.running:
            raise LookupError(name)
        return OrphanDomain(name, self.running)

    def close(self) -> None:
        pass


def test_lab_down_removes_a_libvirt_lab_whose_harness_died(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``hcisim lab down`` reclaims a libvirt lab like a netns one: its running domains are
    destroyed (also ones the state file does not list) and its directory removed; another
    lab's domains are left alone."""
    from hcisim.lab.libvirt import backend as backend_mod
    from hcisim.lab.libvirt.backend import LibvirtBackend
    from hcisim.lab.netns.state import LabState

    (tmp_path / "lab7").mkdir()
    LabState(tmp_path / "lab7" / "state.json").set("domains", ["hcisim-lab7-host1"])
    running = {"hcisim-lab7-host1", "hcisim-lab7-host2", "hcisim-lab8-host1"}
    monkeypatch.setattr(backend_mod, "connect", lambda uri: OrphanConn(running))
    left = LibvirtBackend.reclaim("lab7", tmp_path)
    assert left.empty, left.describe()
    assert running == {"hcisim-lab8-host1"}
    assert not (tmp_path / "lab7").exists()


def test_a_migration_network_has_no_node_nic_and_its_faults_are_refused_before_build(
        tmp_path: Path) -> None:
    """The nodes have a storage and a management NIC: a fault on a migration network alone
    would have cut storage (the old mapping); it is refused before anything is made."""
    from hcisim.lab.libvirt.backend import LibvirtBackend
    from hcisim.lab.libvirt.faults import migration_faults

    assert nics_of(("management", "migration")) == ["mgmt"]  # shares the management NIC
    with pytest.raises(LabError, match="no NIC"):
        nics_of(("migration",))
    sc = load_scenario(Path("scenarios/lab-migration-nic-loss.yaml"))
    assert migration_faults(sc) == ["faults[0] (nic_loss on host2)"]
    # a fault that takes the whole host cuts the migration network too, and plays as before
    power = sc.make_fault(at_s=1, kind="node_power_loss", target="host2")
    assert "migration" in power.networks
    assert migration_faults(sc.model_copy(update={"faults": (power,)})) == []
    assert migration_faults(load_scenario(Path("scenarios/lab-power-loss.yaml"))) == []
    be = LibvirtBackend(sc, workdir=tmp_path / "labs", image_cache=tmp_path / "cache")
    with pytest.raises(LabError, match="migration NIC"):
        be.build()
    assert not (tmp_path / "labs").exists() and not (tmp_path / "cache").exists()


def test_a_socket_file_nobody_listens_on_does_not_answer(tmp_path: Path) -> None:
    """A virtlogd killed hard (or a machine restored from a snapshot) leaves its socket file:
    taking that file for a serving daemon made every guest start fail in CI."""
    import socket

    from hcisim.lab.libvirt.hypervisor import _answers

    path = tmp_path / "virtlogd-sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)
        assert _answers(path)
    assert path.exists(), "the file outlives its listener, as a killed daemon's does"
    assert not _answers(path)
    assert not _answers(tmp_path / "absent")


def test_down_of_the_last_lab_stops_the_daemons_it_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`hcisim lab down` of a libvirt lab connects (starting libvirtd and virtlogd when none
    answers, to find orphaned domains); once no lab is left it stops the daemons hcisim
    started, and not while another lab's directory remains."""
    from hcisim.lab.libvirt import backend

    class Conn:
        def listAllDomains(self, _flags: int) -> list[Any]:
            return []

        def close(self) -> None:
            pass

    from hcisim.lab.libvirt import nodes

    stopped: list[int] = []

    def teardown(_conn: Any, directory: Path) -> list[str]:
        shutil.rmtree(directory, ignore_errors=True)
        return []

    def stop() -> list[str]:
        stopped.append(1)
        return []

    monkeypatch.setattr(backend, "connect", lambda _uri: Conn())
    monkeypatch.setattr(nodes, "teardown", teardown)
    monkeypatch.setattr(backend, "stop_started_daemons", stop)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    assert backend.LibvirtBackend.reclaim("a", tmp_path).left == []
    assert stopped == []  # lab b is still there
    backend.LibvirtBackend.reclaim("b", tmp_path)
    assert stopped == [1]
