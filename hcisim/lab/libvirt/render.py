"""Libvirt XML and per-node seeds, rendered from the Jinja2 templates in lab/libvirt/templates.

Templates hold the shape (which devices, which elements); this module only feeds them the
plan. The seed is a NoCloud-layout disk (volume label ``cidata``: meta-data, user-data,
network-config), so an image with cloud-init would read it too; the hcisim node image's init
reads ``node.env``, ``hosts`` and ``authorized_keys`` from the same disk.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import jinja2

from hcisim.lab.libvirt.image import NodeImage, lab_dir
from hcisim.lab.libvirt.layout import LabPlan, NetworkPlan, NodePlan

XMLNS = "https://hcisim.dev/lab/libvirt/1"
# root by label: the kernel may name the seed or a brick disk vda. No udev after the
# initramfs and no predictable NIC names: the node's init finds NICs by MAC.
KERNEL_CMDLINE = ("root=LABEL=hcisim-root ro console=ttyS0 init=/sbin/hcisim-init "
                  "net.ifnames=0 panic=-1 quiet loglevel=4")
SEED_LABEL = "cidata"


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(lab_dir() / "templates")),
        undefined=jinja2.StrictUndefined, autoescape=jinja2.select_autoescape(["j2"]),
        keep_trailing_newline=True)


def _render(name: str, **values: object) -> str:
    return _env().get_template(name).render(**values)


def network_xml(net: NetworkPlan) -> str:
    return _render("network.xml.j2", net=net)


def domain_xml(plan: LabPlan, node: NodePlan, image: NodeImage,
               guest_layer: Path | None = None) -> str:
    """``guest_layer``: the guest layer disk (hcisim.lab.libvirt.nested), attached read-only
    with serial ``hcisim-guest``; the node's init mounts it at /opt/hcisim/guest."""
    return _render("domain.xml.j2", node=node, lab=plan.lab, xmlns=XMLNS,
                   kernel=image.kernel, initrd=image.initrd, cmdline=KERNEL_CMDLINE,
                   guest_layer=guest_layer)


def seed_files(plan: LabPlan, node: NodePlan, public_key: str) -> dict[str, str]:
    """File name -> content of ``node``'s seed disk."""
    first = plan.nodes[0]
    # The first node serves time to the others: the lab has no route to any NTP server.
    ntp_server = "" if node is first else first.mgmt_address
    text_env = jinja2.Environment(loader=jinja2.FileSystemLoader(
        str(lab_dir() / "templates" / "seed")), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True)
    values = {"lab": plan.lab, "node": node, "nodes": plan.nodes, "public_key": public_key,
              "ntp_server": ntp_server, "ntp_allow": str(plan.network("mgmt").subnet)}
    files = {name: text_env.get_template(f"{name}.j2").render(**values)
             for name in ("meta-data", "user-data", "network-config", "node.env", "hosts")}
    files["authorized_keys"] = public_key.strip() + "\n"
    return files


def write_seed(files: dict[str, str], dest: Path) -> None:
    """An ISO 9660 image labelled ``cidata`` holding ``files`` (genisoimage or xorriso)."""
    with tempfile.TemporaryDirectory(prefix="hcisim-seed-") as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
        write_iso(Path(tmp), dest, SEED_LABEL)


def write_iso(tree: Path, dest: Path, label: str) -> None:
    """An ISO 9660 image (Rock Ridge and Joliet names) of the directory ``tree``."""
    tool = shutil.which("genisoimage") or shutil.which("xorriso")
    if tool is None:
        raise FileNotFoundError("genisoimage (apt-get install genisoimage) makes the node "
                                "seeds and the guest layer disk")
    args = ["-quiet", "-output", str(dest), "-volid", label, "-joliet", "-rock", str(tree)]
    cmd = [tool, *args] if tool.endswith("genisoimage") else [tool, "-as", "mkisofs", *args]
    subprocess.run(cmd, check=True, capture_output=True)
