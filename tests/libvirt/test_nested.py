"""The guest layer of the libvirt nodes and the nested-virtualisation verdict (no VMs here:
the live check runs in tests/libvirt/test_lab_slow.py on real nodes)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from hcisim.lab.errors import LabError
from hcisim.lab.guests.image import GuestImage
from hcisim.lab.libvirt.hypervisor import kernel_probe_args, probe_argv
from hcisim.lab.libvirt.image import AptSource, ImageRecipe, NodeImage, lab_dir
from hcisim.lab.libvirt.layout import Machine, plan_lab
from hcisim.lab.libvirt.nested import (
    GUEST_DISK_SERIAL,
    NODE_GUEST_DIR,
    NestedGuestsRefused,
    NestedVerdict,
    NodeGuestImage,
    decide,
    guest_layer_disk,
    kvm_probe_script,
    parse_facts,
    probe_verdict,
    require_nested,
)
from hcisim.lab.libvirt.render import domain_xml
from hcisim.scenario import load_scenario

GOOD = {"qemu": "QEMU emulator version 7.2.22", "guest_image": "abc", "cpu_virt": "vmx",
        "kvm_module_loaded": "kvm_intel", "dev_kvm": "yes"}
PROBE_OK = (True, "qemu -accel kvm booted the kernel to its panic in 1.2 s")


def test_the_node_image_recipe_carries_qemu_and_mounts_the_guest_layer() -> None:
    """The default recipe (no --nested) installs qemu, and the node's init mounts the disk
    with the guest layer's serial where the guests layer and the check look for it."""
    assert "qemu-system-x86" in ImageRecipe(AptSource("http://m/debian")).packages()
    init = (lab_dir() / "image" / "init.sh").read_text()
    assert f'= {GUEST_DISK_SERIAL} ]' in init and f"mkdir -p {NODE_GUEST_DIR}" in init
    assert f'{NODE_GUEST_DIR}' in init.split(GUEST_DISK_SERIAL, 1)[1].split("done", 1)[0]


@pytest.mark.skipif(shutil.which("isoinfo") is None or shutil.which("genisoimage") is None,
                    reason="genisoimage not installed")
def test_guest_layer_disk_holds_the_guest_image_bytes(tmp_path: Path) -> None:
    """The ISO holds the guest image's kernel, initramfs and recipe byte for byte, and its
    hash; a second call reuses it."""
    img_dir = tmp_path / "guest" / "0123456789abcdef"
    img_dir.mkdir(parents=True)
    files = {"vmlinuz": b"bz" * 1000, "vmlinux": b"\x7fELF" + bytes(5000),
             "initrd.img": b"\x1f\x8b" + bytes(300), "recipe.json": b'{"pkg:x": "1"}\n'}
    for name, data in files.items():
        (img_dir / name).write_bytes(data)
    image = GuestImage(img_dir, {"pkg:x": "1"})
    layers = tmp_path / "cache" / "guest-layer"
    layers.mkdir(parents=True)
    for i, stamp in enumerate((100, 200, 300)):  # disks of older guest images
        (layers / f"old{i}.iso").write_bytes(b"")
        os.utime(layers / f"old{i}.iso", (stamp, stamp))
    iso = guest_layer_disk(image, tmp_path / "cache")
    # a new one made: the newest three stay (as the guest image cache keeps its newest)
    assert sorted(p.name for p in layers.glob("*.iso")) == [
        "0123456789abcdef.iso", "old1.iso", "old2.iso"]
    assert iso == tmp_path / "cache" / "guest-layer" / "0123456789abcdef.iso"
    assert iso.stat().st_mode & 0o777 == 0o644
    listing = subprocess.run(["isoinfo", "-R", "-f", "-i", str(iso)], capture_output=True,
                             text=True, check=True).stdout.split()
    assert sorted(listing) == sorted(f"/{n}" for n in [*files, "image-hash"])
    for name, data in {**files, "image-hash": b"0123456789abcdef\n"}.items():
        got = subprocess.run(["isoinfo", "-R", "-i", str(iso), "-x", f"/{name}"],
                             capture_output=True, check=True).stdout
        assert got == data, name
    before = iso.stat().st_mtime_ns
    assert guest_layer_disk(image, tmp_path / "cache") == iso
    assert iso.stat().st_mtime_ns == before


def test_node_guest_image_is_the_guest_image_at_the_node_path(tmp_path: Path) -> None:
    (tmp_path / "vmlinux").write_bytes(b"x")
    image = GuestImage(tmp_path, {"k": "v"})
    node = NodeGuestImage.of(image)
    assert node.kernel == Path(NODE_GUEST_DIR) / "vmlinux"
    assert node.initrd == Path(NODE_GUEST_DIR) / "initrd.img"
    assert node.hash == image.hash == tmp_path.name
    (tmp_path / "vmlinux").unlink()
    assert NodeGuestImage.of(image).kernel == Path(NODE_GUEST_DIR) / "vmlinuz"


def test_domain_xml_attaches_the_guest_layer_read_only(tmp_path: Path) -> None:
    sc = load_scenario(None)
    plan = plan_lab(sc, "g1", 3, "qemu", Machine(2, 8192), workdir=tmp_path)
    image = NodeImage("d", tmp_path / "img")
    node = plan.nodes[0]
    without = ET.fromstring(domain_xml(plan, node, image))
    assert GUEST_DISK_SERIAL not in [d.findtext("serial") for d in without.iter("disk")]
    layer = tmp_path / "layer.iso"
    dom = ET.fromstring(domain_xml(plan, node, image, layer))
    disk = next(d for d in dom.iter("disk") if d.findtext("serial") == GUEST_DISK_SERIAL)
    assert disk.find("readonly") is not None
    assert disk.find("source").get("file") == str(layer)  # type: ignore[union-attr]
    targets = [d.find("target").get("dev") for d in dom.iter("disk")]  # type: ignore[union-attr]
    assert len(targets) == len(set(targets))


def test_facts_parse_key_values_and_ignore_noise() -> None:
    text = ("qemu=QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)\n"
            "modprobe: FATAL: whatever\nguest_image=\ncpu_virt=svm\n"
            "kvm_module=kvm_amd: modprobe: ERROR: could not insert 'kvm_amd'\ndev_kvm=no\n")
    facts = parse_facts(text)
    assert facts["qemu"].startswith("QEMU emulator version 7.2.22")
    assert facts["guest_image"] == "" and facts["cpu_virt"] == "svm"
    assert facts["kvm_module"].startswith("kvm_amd: modprobe: ERROR")
    assert "modprobe: FATAL: whatever" not in facts.values()


@pytest.mark.parametrize(("domain_type", "facts", "probe", "reason"), [
    ("kvm", {**GOOD, "qemu": ""}, PROBE_OK, "no qemu-system-x86_64 in the node"),
    ("kvm", {**GOOD, "guest_image": "old"}, PROBE_OK, "holds guest image old, the harness"),
    ("qemu", GOOD, None, "it runs under software emulation (TCG: why-tcg)"),
    ("kvm", {**GOOD, "cpu_virt": ""}, PROBE_OK, "shows no vmx/svm"),
    ("kvm", {**GOOD, "dev_kvm": "no", "kvm_module": "kvm_intel: no such device"}, None,
     "no usable /dev/kvm in the node (kvm_intel: no such device)"),
    ("kvm", GOOD, (False, "qemu -accel kvm: the kernel did not boot (timed out after 30 s)"),
     "/dev/kvm is there but does not run guests: qemu -accel kvm: the kernel did not boot"),
    ("kvm", GOOD, None, "the in-node KVM probe did not run"),
])
def test_verdict_names_the_first_missing_piece(domain_type: str, facts: dict[str, str],
                                               probe: tuple[bool, str] | None,
                                               reason: str) -> None:
    v = decide("host2", domain_type, "why-tcg", facts, "abc", probe)
    assert not v.usable
    assert reason in v.reason
    assert v.host == "host2" and v.facts == facts


def test_verdict_under_kvm_with_everything_in_place() -> None:
    v = decide("host1", "kvm", "probed", GOOD, "abc", PROBE_OK)
    assert v.usable and v.reason == PROBE_OK[1]


def test_a_tcg_node_is_refused_even_with_a_kvm_device() -> None:
    """qemu's default TCG CPU model offers svm, so kvm_amd may load in an emulated node and
    make a /dev/kvm: KVM on an emulated CPU is still emulation, and the node is refused."""
    v = decide("host3", "qemu", "software emulation: no /dev/kvm", GOOD, "abc", PROBE_OK)
    assert not v.usable and v.probe == PROBE_OK[1]
    assert v.reason.startswith("it runs under software emulation (TCG: no /dev/kvm); the KVM "
                               "it offers (kvm_intel on the emulated vmx, which boots the "
                               "probe kernel) is qemu's software model")


def test_refusal_names_every_node_that_cannot_and_only_those() -> None:
    ok = decide("host1", "kvm", "", GOOD, "abc", PROBE_OK)
    bad2 = decide("host2", "kvm", "", {**GOOD, "cpu_virt": ""}, "abc", PROBE_OK)
    bad3 = decide("host3", "qemu", "tcg here", GOOD, "abc", None)
    bad4 = decide("host4", "qemu", "tcg here", GOOD, "abc", None)
    require_nested([ok])  # nothing to refuse
    with pytest.raises(NestedGuestsRefused) as info:
        require_nested([ok, bad2, bad3, bad4])
    text = str(info.value)
    assert text.startswith("lab step 'check nested virtualisation' failed: ")
    assert "node host2: the node's CPU shows no vmx/svm" in text
    assert "nodes host3, host4: it runs under software emulation (TCG: tcg here)" in text
    assert "host1" not in text and "--engine lab+netns" in text
    assert info.value.verdicts == [ok, bad2, bad3, bad4]
    assert isinstance(info.value, LabError)
    with pytest.raises(LabError, match="no node was checked"):
        require_nested([])


def test_the_in_node_probe_is_the_hypervisor_probe_with_kvm() -> None:
    """One probe command line: the node runs exactly what the hypervisor check runs here,
    with -accel kvm and the guest layer's kernel."""
    script = kvm_probe_script()
    line = next(ln for ln in script.splitlines() if ln.startswith("timeout "))
    argv = shlex.split(line.split(" >/dev/null", 1)[0])[4:]  # after timeout -k 2 30
    want = probe_argv("qemu-system-x86_64", "kvm",
                      kernel_probe_args(f"{NODE_GUEST_DIR}/vmlinuz", "/run/hcisim-kvm-probe.log"))
    assert argv == want


def test_probe_verdict_reads_the_scripts_output() -> None:
    ok, seen = probe_verdict("rc=0 seconds=2.5\n[ 1.0] Kernel panic - not syncing: VFS\n")
    assert ok and "2.5 s" in seen
    ok, seen = probe_verdict("rc=124 seconds=30.1\nBooting from ROM\n")
    assert not ok and "timed out" in seen
    ok, seen = probe_verdict("rc=1 seconds=0.2\n")
    assert not ok and "exit 1" in seen


def _backend_with_verdicts(tmp_path: Path, scenario_text: str | None, facts: dict[str, str],
                           monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[str]]:
    """A LibvirtBackend past its boot (plan, domain type), its nodes' checks faked."""
    from hcisim.lab.libvirt import backend as backend_mod
    from hcisim.lab.libvirt.backend import LibvirtBackend
    from hcisim.lab.libvirt.hypervisor import DomainType
    from hcisim.lab.libvirt.ssh import NodeShells

    sc = load_scenario(None)
    if scenario_text is not None:
        sc = sc.model_copy(update={"lab": sc.lab.model_copy(update={"vms": scenario_text})})
    be = LibvirtBackend(sc, name="u1", workdir=tmp_path)
    be.domain_type = DomainType("qemu", "software emulation: probe hung")
    be.plan = plan_lab(sc, "u1", 4, "qemu", Machine(2, 8192), workdir=tmp_path)
    be.shell = NodeShells(tmp_path / "ssh_config")
    asked: list[str] = []

    def fake_check(shells: object, host: str, dt: str, why: str, want: str | None,
                   probe_emulated: bool) -> NestedVerdict:
        assert probe_emulated == (scenario_text == "guests")
        asked.append(host)
        return decide(host, dt, why, facts, want, None)

    monkeypatch.setattr(backend_mod, "check_node", fake_check)
    return be, asked


def test_build_refuses_a_guests_scenario_after_checking_every_node(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check runs in build() right after the boot, so the deploy never starts; the
    verdicts are in meta either way."""
    be, asked = _backend_with_verdicts(tmp_path, "guests", {**GOOD, "guest_image": ""},
                                       monkeypatch)
    with pytest.raises(NestedGuestsRefused) as info:
        be._check_nested()
    assert sorted(asked) == sorted(be.scenario.host_names)
    assert set(be._meta["nested"]) == set(be.scenario.host_names)
    hosts = ", ".join(be.scenario.host_names)
    assert f"nodes {hosts}: it runs under software emulation (TCG: probe hung)" in \
        str(info.value)
    # and the guest entry point refuses the same way, before anything is made
    with pytest.raises(NestedGuestsRefused):
        be.start_node_guest("vm1", be.scenario.host_names[0], "data", None, 4 << 20)


def test_a_fio_scenario_is_not_refused_its_verdicts_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    be, _ = _backend_with_verdicts(tmp_path, None, GOOD, monkeypatch)
    be._check_nested()
    assert all(not v["usable"] for v in be._meta["nested"].values())
    assert "nested_check_s" in be.timings


def test_a_node_guest_is_the_guests_layer_command_with_node_paths(tmp_path: Path) -> None:
    """One qemu command line: GuestSpec.argv with the guest layer's kernel in the node, the
    disk on the node's mount, the sockets and pid file in a run directory whose path is the
    same on the harness (where SSH forwards the sockets) and in the node, and -accel kvm."""
    from hcisim.lab.libvirt.guests import node_guest_spec

    spec = node_guest_spec(tmp_path / "guests", "host2", "/mnt/data", "vm1", 4 << 20, "kvm",
                           mem_mib=160.0)
    img_dir = tmp_path / "img"
    img_dir.mkdir()
    (img_dir / "vmlinux").write_bytes(b"x")
    argv = spec.argv(NodeGuestImage.of(GuestImage(img_dir, {})), spec.accel)
    assert argv[argv.index("-machine") + 1] == "q35,accel=kvm"
    assert argv[argv.index("-kernel") + 1] == f"{NODE_GUEST_DIR}/vmlinux"
    assert argv[argv.index("-initrd") + 1] == f"{NODE_GUEST_DIR}/initrd.img"
    assert argv[argv.index("-m") + 1] == "163840k"  # KVM: no TCG dirty-bitmap trim
    drive = argv[argv.index("-drive") + 1]
    assert drive.startswith("file=/mnt/data/vm1-guest.0,") and "cache=none" in drive
    assert f"unix:{tmp_path}/guests/host2/vm1/qmp.sock,server=on,wait=off" in argv
    assert argv[argv.index("-pidfile") + 1] == f"{tmp_path}/guests/host2/vm1/qemu.pid"
    assert spec.per_file() == (4 << 20) // spec.record_size  # no stat of a node's file
    assert f"hcisim.per_file={spec.per_file()}" in argv[argv.index("-append") + 1]


def test_the_refusal_is_the_engine_error_exit_code_3(capsys: pytest.CaptureFixture[str]) -> None:
    """``hcisim run`` turns it into one line on stderr and exit code 3, no traceback."""
    import typer

    from hcisim.cli import EXIT_ENGINE, friendly

    @friendly
    def run() -> None:
        raise NestedGuestsRefused([decide("host1", "qemu", "tcg here", GOOD, "abc", None)])

    with pytest.raises(typer.Exit) as info:
        run()
    assert info.value.exit_code == EXIT_ENGINE == 3
    err = capsys.readouterr().err
    assert "node host1: it runs under software emulation" in err and "Traceback" not in err


def test_nodes_with_nested_kvm_still_refuse_what_node_guests_cannot_do_yet(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every node passes: a guests scenario with faults or operations is refused naming
    them (auto-resume, migration are the namespace lab's); one without them goes on."""
    from hcisim.lab.libvirt.hypervisor import DomainType
    from hcisim.lab.libvirt.nested import not_carried
    from hcisim.scenario import make_fault

    be, _ = _backend_with_verdicts(tmp_path, "guests", GOOD, monkeypatch)
    be.domain_type = DomainType("kvm", "probed")
    monkeypatch.setattr("hcisim.lab.libvirt.backend.check_node",
                        lambda shells, h, dt, why, want, emulated:
                        decide(h, dt, why, GOOD, want, PROBE_OK))
    host = be.scenario.host_names[0]
    cut = make_fault(at_s=5, kind="nic_loss", target=host, network="storage", duration_s=5)
    be.scenario = be.scenario.model_copy(update={"faults": (cut,), "operations": ()})
    with pytest.raises(LabError, match=r"run guests inside the nodes.*faults \(1\): the "
                       "auto-resume"):
        be._check_nested()
    assert all(v["usable"] for v in be._meta["nested"].values())
    be.scenario = be.scenario.model_copy(update={"faults": ()})
    assert not_carried(be.scenario) == []
    be._check_nested()  # nothing refused: the guests would start in the nodes
