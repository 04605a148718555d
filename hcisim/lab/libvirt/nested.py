"""Guests inside the node VMs: the guest layer each node carries, and whether it may run them.

The node image has qemu (``qemu-system-x86`` in lab/libvirt/image/packages.txt); the guest
image (:mod:`hcisim.lab.guests.image`: Debian's kernel, the busybox initramfs, the agent)
comes on a small read-only disk, the *guest layer disk*: an ISO of the guest image's files,
cached by the guest image's hash, attached to every node with serial ``hcisim-guest`` and
mounted by the node's init at ``/opt/hcisim/guest``. A new agent thus needs a new ISO (a
second), not a new node image (minutes).

Nested guests need KVM in the node: a guest emulated (TCG) inside a node that is itself
emulated runs two layers of software translation, and the stalls, pauses and switch-overs
the guest layer measures would be the emulator's. Each node is checked after boot
(:func:`node_facts`, over its SSH): qemu and the guest layer there, the CPU's vmx/svm,
``/dev/kvm`` after loading the KVM module, and, only when the node itself runs under KVM,
the same kernel probe the hypervisor check uses (:mod:`hcisim.lab.libvirt.hypervisor`),
booted with ``-accel kvm`` inside the node. :func:`decide` turns the facts into a verdict;
a scenario with ``lab: {vms: guests}`` is refused (:class:`NestedGuestsRefused`, exit code
3) when any node has none, before anything is deployed. See docs/lab-libvirt.md.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hcisim.lab.errors import LabError
from hcisim.lab.guests.image import GuestImage
from hcisim.lab.libvirt.hypervisor import (
    KERNEL_PROBE_TIMEOUT_S,
    kernel_probe_args,
    kernel_probe_verdict,
    probe_argv,
)
from hcisim.lab.libvirt.render import write_iso
from hcisim.lab.libvirt.ssh import NodeShells
from hcisim.lab.node import sh
from hcisim.scenario import Scenario

NODE_GUEST_DIR = "/opt/hcisim/guest"
GUEST_DISK_SERIAL = "hcisim-guest"
GUEST_LAYER_LABEL = "hcisim-guest"
HASH_FILE = "image-hash"
GUEST_FILES = ("vmlinuz", "vmlinux", "initrd.img", "recipe.json")
KEEP_LAYERS = 3
NODE_QEMU = "qemu-system-x86_64"
PROBE_CONSOLE = "/run/hcisim-kvm-probe.log"
STEP = "check nested virtualisation"


def guest_layer_disk(image: GuestImage, cache: Path) -> Path:
    """The guest layer disk of ``image`` (``<cache>/guest-layer/<hash>.iso``), made if
    missing. Readable by libvirt's qemu user, like the node image beside it."""
    directory = cache / "guest-layer"
    iso = directory / f"{image.hash}.iso"
    if iso.is_file():
        return iso
    directory.mkdir(parents=True, exist_ok=True)
    for d in (cache, directory):
        d.chmod(0o755)
    with tempfile.TemporaryDirectory(prefix="hcisim-guest-layer-") as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        for name in GUEST_FILES:
            if (image.dir / name).is_file():
                shutil.copy(image.dir / name, tree / name)
        (tree / HASH_FILE).write_text(image.hash + "\n")
        part = Path(tmp) / "layer.iso"
        write_iso(tree, part, GUEST_LAYER_LABEL)
        part.chmod(0o644)
        shutil.move(part, iso)  # whole or not at all: a build that dies leaves no iso
    for old in sorted(directory.glob("*.iso"), key=lambda p: p.stat().st_mtime)[:-KEEP_LAYERS]:
        old.unlink(missing_ok=True)  # as the guest image cache keeps its newest few
    return iso


@dataclass(frozen=True)
class NodeGuestImage(GuestImage):
    """The guest image as a node sees it (on its guest layer disk): the same files, so the
    same kernel choice (the PVH ``vmlinux`` when the image has one) as the harness's copy."""

    pvh: bool = True
    image_hash: str = ""

    @property
    def kernel(self) -> Path:
        return self.dir / ("vmlinux" if self.pvh else "vmlinuz")

    @property
    def hash(self) -> str:
        return self.image_hash

    @classmethod
    def of(cls, image: GuestImage) -> NodeGuestImage:
        return cls(Path(NODE_GUEST_DIR), image.recipe, (image.dir / "vmlinux").is_file(),
                   image.hash)


# --- the check -------------------------------------------------------------------------
FACTS_SCRIPT = f"""
q=$(command -v {NODE_QEMU} || true)
echo "qemu=$([ -n "$q" ] && $q --version | head -1)"
echo "guest_image=$(cat {NODE_GUEST_DIR}/{HASH_FILE} 2>/dev/null)"
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
virt=""
case "$flags" in *" vmx "*) virt=vmx ;; *" svm "*) virt=svm ;; esac
echo "cpu_virt=$virt"
if [ -n "$virt" ] && [ ! -e /dev/kvm ]; then
  m=kvm_intel; [ "$virt" = svm ] && m=kvm_amd
  out=$(modprobe "$m" 2>&1) || echo "kvm_module=$m: $(echo "$out" | tail -1)"
fi
echo "kvm_module_loaded=$(cut -d' ' -f1 /proc/modules | grep -E '^kvm_(intel|amd)$' | head -1)"
if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then echo dev_kvm=yes
else echo dev_kvm=no; fi
"""


def parse_facts(text: str) -> dict[str, str]:
    """``key=value`` lines (the first ``=`` splits) of :data:`FACTS_SCRIPT`'s output."""
    facts: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            facts[key] = value.strip()
    return facts


def kvm_probe_script(kernel: str = f"{NODE_GUEST_DIR}/vmlinuz",
                     timeout_s: float = KERNEL_PROBE_TIMEOUT_S) -> str:
    """The hypervisor's kernel probe, run inside a node with ``-accel kvm``: prints
    ``rc=N seconds=S`` then the probe's console (rc 124: timed out)."""
    argv = probe_argv(NODE_QEMU, "kvm", kernel_probe_args(kernel, PROBE_CONSOLE))
    return (f"rm -f {PROBE_CONSOLE}; t0=$(date +%s.%N)\n"
            f"timeout -k 2 {timeout_s:.0f} {shlex.join(argv)} >/dev/null 2>&1; rc=$?\n"
            'echo "rc=$rc seconds=$(awk "BEGIN {print $(date +%s.%N) - $t0}")"\n'
            f"cat {PROBE_CONSOLE} 2>/dev/null; rm -f {PROBE_CONSOLE}\n")


def probe_verdict(output: str) -> tuple[bool, str]:
    """The kernel probe's verdict from :func:`kvm_probe_script`'s output."""
    head, _, console = output.partition("\n")
    fields = dict(w.split("=", 1) for w in head.split() if "=" in w)
    rc_text = fields.get("rc", "")
    rc = int(rc_text) if rc_text.lstrip("-").isdigit() else None
    try:
        took = float(fields.get("seconds", "0"))
    except ValueError:
        took = 0.0
    return kernel_probe_verdict("kvm", console, None if rc == 124 else rc, took)


@dataclass(frozen=True)
class NestedVerdict:
    """Whether ``host``'s node can run the scenario's guests under KVM, and why (not)."""

    host: str
    usable: bool
    reason: str
    domain_type: str
    facts: dict[str, str]
    probe: str = ""  # what the in-node KVM probe saw ("": not run)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(host: str, domain_type: str, domain_reason: str, facts: dict[str, str],
           guest_hash: str | None, probe: tuple[bool, str] | None) -> NestedVerdict:
    """The verdict for one node, from what was found in it (first missing piece wins).

    ``domain_type`` is the node's libvirt domain type (``kvm`` or ``qemu``, i.e. TCG) and
    ``domain_reason`` why it was chosen; ``probe`` the in-node kernel probe's (ok, seen),
    None when it was not run (no /dev/kvm or no guest layer in the node).
    """

    def verdict(usable: bool, reason: str) -> NestedVerdict:
        return NestedVerdict(host, usable, reason, domain_type, dict(facts),
                             probe[1] if probe is not None else "")

    if not facts.get("qemu"):
        return verdict(False, f"no {NODE_QEMU} in the node (a node image without the guest "
                       "layer: rebuild it with `hcisim lab image build`)")
    found = facts.get("guest_image", "")
    if guest_hash is not None and found != guest_hash:
        return verdict(False, f"the node's guest layer disk holds guest image "
                       f"{found or 'none'}, the harness has {guest_hash}")
    if domain_type != "kvm":
        why = domain_reason.removeprefix("software emulation: ")
        return verdict(False, f"it runs under software emulation (TCG: {why}); "
                       f"{emulated_kvm(facts, probe)}, so every guest instruction would "
                       "still be translated by the hypervisor's qemu: not nested KVM")
    if not facts.get("cpu_virt"):
        return verdict(False, "the node's CPU shows no vmx/svm: nested virtualisation is off "
                       "on the hypervisor (kvm_intel/kvm_amd parameter nested=1) or the "
                       "node's CPU model hides it")
    if facts.get("dev_kvm") != "yes":
        why = facts.get("kvm_module") or "no usable /dev/kvm"
        return verdict(False, f"no usable /dev/kvm in the node ({why})")
    if probe is None:
        return verdict(False, "the in-node KVM probe did not run")
    ok, seen = probe
    return verdict(ok, seen if ok else f"/dev/kvm is there but does not run guests: {seen}")


def emulated_kvm(facts: dict[str, str], probe: tuple[bool, str] | None) -> str:
    """What a TCG node offers as KVM: qemu's default CPU model has svm, so kvm_amd loads on
    qemu's software model of it (seen here: the probe boots, a guest runs)."""
    if facts.get("dev_kvm") != "yes":
        return f"it has no usable /dev/kvm ({facts.get('kvm_module') or 'none'})"
    boots = ", which boots the probe kernel" if probe is not None and probe[0] else ""
    return (f"the KVM it offers ({facts.get('kvm_module_loaded') or 'kvm'} on the emulated "
            f"{facts.get('cpu_virt') or 'CPU'}{boots}) is qemu's software model of "
            "virtualisation")


def check_node(shells: NodeShells, host: str, domain_type: str, domain_reason: str,
               guest_hash: str | None, probe_emulated: bool = False) -> NestedVerdict:
    """Gather the node's facts over SSH and decide. The probe runs where the node has a
    /dev/kvm and the guest layer: in a KVM node always, in a TCG node only when asked
    (``probe_emulated``: the refusal of a guests scenario then says what that KVM does;
    it costs ~10 s of emulated CPU per node, which a lab without guests need not pay)."""
    facts = parse_facts(shells.run(host, FACTS_SCRIPT, f"{STEP} on {host}", timeout=60).stdout)
    probe = None
    if facts.get("dev_kvm") == "yes" and facts.get("guest_image") and (
            domain_type == "kvm" or probe_emulated):
        out = shells.node(host).run(sh(kvm_probe_script()), KERNEL_PROBE_TIMEOUT_S + 30)
        probe = probe_verdict(out.stdout)
    return decide(host, domain_type, domain_reason, facts, guest_hash, probe)


class NestedGuestsRefused(LabError):
    """A ``vms: guests`` scenario on node VMs without KVM inside: refused, naming each node
    and why (``hcisim run`` exits with 3, the engine error)."""

    def __init__(self, verdicts: list[NestedVerdict]) -> None:
        self.verdicts = verdicts
        bad = [v for v in verdicts if not v.usable]
        super().__init__(STEP, refusal_text(bad))


def refusal_text(bad: list[NestedVerdict]) -> str:
    """One sentence per distinct reason, naming its nodes (``node host2: ...``, ``nodes
    host1, host3: ...``)."""
    hosts: dict[str, list[str]] = {}
    for v in bad:
        hosts.setdefault(v.reason, []).append(v.host)
    said = "; ".join(f"{'node' if len(hs) == 1 else 'nodes'} {', '.join(hs)}: {reason}"
                     for reason, hs in hosts.items())
    return ("the scenario runs its VMs as guests (lab: {vms: guests}); on the libvirt backend "
            f"they run inside the node VMs, which needs KVM there. {said}. Run it on the "
            "namespace lab (--engine lab+netns), or where the hypervisor offers nested KVM")


def require_nested(verdicts: list[NestedVerdict]) -> None:
    """Raise :class:`NestedGuestsRefused` unless every node can run guests under KVM."""
    if not verdicts or any(not v.usable for v in verdicts):
        if not verdicts:
            raise LabError(STEP, "no node was checked for nested virtualisation")
        raise NestedGuestsRefused(verdicts)


def not_carried(sc: Scenario) -> list[str]:
    """What of ``sc``'s guests run the node guests cannot do yet (empty: all of it).

    Started in the nodes are the guests themselves: boot, QMP events, heartbeat, write
    history and its check. The rest of the guests layer's run works on the namespace lab's
    hosts only: vdsm's auto-resume probes the mount through the harness's path (a local
    mirror on this backend, always writable), live migration starts its destination in a
    namespace, the plane starts sanlock and agents there.
    """
    missing = []
    if sc.faults:
        missing.append(f"faults ({len(sc.faults)}): the auto-resume after a storage pause "
                       "probes the mount from the harness")
    if sc.operations:
        missing.append(f"operations ({', '.join(sorted({o.kind for o in sc.operations}))}): "
                       "live migration and maintenance between nodes")
    if sc.lab.plane:
        missing.append("the management plane (lab.plane)")
    return missing


def require_carried(sc: Scenario) -> None:
    """Refuse a guests scenario whose run needs what node guests cannot do yet."""
    missing = not_carried(sc)
    if missing:
        raise LabError("run guests inside the nodes",
                       "the nodes have nested KVM and boot the guests, but this scenario "
                       f"needs what is not built for guests inside node VMs: "
                       f"{'; '.join(missing)}. Run it on the namespace lab (--engine "
                       "lab+netns)")
