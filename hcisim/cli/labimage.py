"""``hcisim lab image build|show`` and ``hcisim lab libvirt up|status|down``.

Added under the ``lab`` command group of :mod:`hcisim.cli.lab` (listed before this module in
FEATURES); if that group is missing, a ``lab`` group is created here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hcisim.cli import UserError, err, friendly, out


def _lab_group(app: typer.Typer) -> typer.Typer:
    for group in app.registered_groups:
        if group.name == "lab" and group.typer_instance is not None:
            return group.typer_instance
    lab = typer.Typer(help="A real GlusterFS lab.", no_args_is_help=True)
    app.add_typer(lab, name="lab")
    return lab


def register(app: typer.Typer) -> None:
    lab = _lab_group(app)
    image = typer.Typer(help="The libvirt lab's node image (Debian bookworm, cached by the "
                        "hash of its recipe in lab/libvirt/image).", no_args_is_help=True)
    lab.add_typer(image, name="image")
    virt = typer.Typer(help="A libvirt lab (node VMs) you can poke by hand: up, status, down.",
                       no_args_is_help=True)
    lab.add_typer(virt, name="libvirt")

    @image.command("build")
    @friendly
    def image_build(
        cache: Annotated[Path, typer.Option(help="image cache directory")] =
            Path("/var/cache/hcisim/images"),
        nested: Annotated[bool, typer.Option(
            help="add qemu + libvirt for nested guests (only useful where KVM works)")] = False,
        force: Annotated[bool, typer.Option(help="rebuild even if cached")] = False,
    ) -> None:
        """Build the node image (debootstrap from this machine's apt source), if needed."""
        from hcisim.lab.libvirt.image import ImageError, ImageRecipe, build_image
        from hcisim.lab.libvirt.image import machine_apt_source as source

        t = time.monotonic()
        try:
            img = build_image(ImageRecipe(source(), nested=nested), cache, force=force,
                              report=lambda m: err.print(f"  {m}", highlight=False,
                                                                markup=False))
        except ImageError as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            raise UserError(f"--cache {cache}: {exc.strerror}") from None
        info = img.info()
        out.print(f"image {img.digest} ({time.monotonic() - t:.0f} s): {img.directory}")
        size_mb = int(str(info["disk_bytes"])) / 1e6
        out.print(f"  kernel {info['kernel']}, root disk {size_mb:.0f} MB (qcow2), "
                  f"build timings {info['timings']}")

    @image.command("show")
    @friendly
    def image_show(
        cache: Annotated[Path, typer.Option(help="image cache directory")] =
            Path("/var/cache/hcisim/images"),
    ) -> None:
        """The recipe's hash and whether its image is cached."""
        from hcisim.lab.libvirt.image import ImageError, ImageRecipe, cached_image
        from hcisim.lab.libvirt.image import machine_apt_source as source

        try:
            recipe = ImageRecipe(source())
        except ImageError as exc:
            raise UserError(str(exc)) from None
        img = cached_image(recipe, cache)
        out.print(f"recipe {recipe.digest()} from {recipe.source.mirror}: "
                  + (f"cached in {img.directory}" if img else "not built"))

    @virt.command("up")
    @friendly
    def up(
        scenario: Annotated[Path, typer.Argument(help="scenario YAML")],
        uri: Annotated[str, typer.Option(help="libvirt URI")] = "qemu:///system",
        accel: Annotated[str, typer.Option(help="auto, kvm or qemu (TCG)")] = "auto",
    ) -> None:
        """Build, boot and deploy the scenario's nodes, and leave them running."""
        libvirt_up(scenario, uri, accel)

    @virt.command("status")
    @friendly
    def status(
        workdir: Annotated[Path, typer.Option(help="labs directory")] =
            Path("/var/lib/hcisim/labs"),
    ) -> None:
        """Labs under the work directory and their domains."""
        from hcisim.lab.libvirt.nodes import STATE_FILE, owner_alive
        from hcisim.lab.netns.state import LabState

        labs = sorted(p for p in workdir.glob("*") if (p / STATE_FILE).exists())
        if not labs:
            out.print("no libvirt lab")
        for d in labs:
            data = LabState(d / STATE_FILE).data
            who = "running harness" if owner_alive(data) else "no harness (reclaimable)"
            out.print(f"[bold]{d.name}[/bold] ({data.get('scenario')}, {data.get('uri')}): "
                      f"{', '.join(data.get('domains', []))} - {who}")

    @virt.command("down")
    @friendly
    def down(
        uri: Annotated[str, typer.Option(help="libvirt URI")] = "qemu:///system",
        workdir: Annotated[Path, typer.Option(help="labs directory")] =
            Path("/var/lib/hcisim/labs"),
        all_labs: Annotated[bool, typer.Option(
            "--all", help="also labs whose harness still runs")] = False,
    ) -> None:
        """Remove libvirt labs (domains, networks, overlays, seeds) left by gone harnesses."""
        from hcisim.lab.libvirt.hypervisor import HypervisorError, connect
        from hcisim.lab.libvirt.nodes import reclaim

        try:
            conn = connect(uri, start_daemons=False)
        except HypervisorError as exc:
            err.print(f"[yellow]{escape(str(exc))}[/yellow]: removing lab directories only")
            conn = None
        removed = reclaim(conn, workdir, include_running=all_labs)
        for r in removed:
            out.print(f"removed {r}")
        if not removed:
            out.print("nothing to reclaim")


def libvirt_up(scenario: Path, uri: str, accel: str) -> None:
    """Build, boot and deploy a libvirt lab and leave it running (``hcisim lab up
    --backend libvirt`` and ``hcisim lab libvirt up``)."""
    from hcisim.lab.libvirt import LibvirtBackend
    from hcisim.scenario import load_scenario

    if accel not in ("auto", "kvm", "qemu"):
        raise UserError(f"--accel {accel}: use auto, kvm or qemu")
    sc = load_scenario(scenario)
    be = LibvirtBackend(sc, uri=uri, accel=accel)
    try:
        be.build()
        be.deploy()
    except BaseException:
        be.destroy()
        raise
    assert be.plan is not None and be.domain_type is not None
    out.print(f"lab [bold]{be.name}[/bold] up: {be.timings} "
              f"(domain type {be.domain_type.name}: {be.domain_type.reason})")
    t = Table("host", "domain", "management", "storage", "vCPU", "RAM MiB",
              title_justify="left")
    for n in be.plan.nodes:
        t.add_row(n.host, n.domain, n.mgmt_address, n.storage_address, str(n.vcpus),
                  str(n.ram_mib))
    out.print(t)
    out.print(f"ssh: ssh -F {be.plan.directory / 'ssh_config'} {be.plan.nodes[0].host}")
    out.print("take it down: hcisim lab libvirt down")
    # leave it running: its state file says the owner is gone, so `down` reclaims it
