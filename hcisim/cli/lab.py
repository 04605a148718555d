"""``hcisim lab up|status|fault|restore|down``: a real lab you can poke by hand."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from hcisim.cli import UserError, err, friendly, out
from hcisim.lab.errors import LabError

if TYPE_CHECKING:
    from hcisim.lab.backend import Backend


def _attach(name: str | None) -> Backend:
    """The lab that is up (any backend, through the registry), or a UserError saying why."""
    from hcisim.lab.backend import attach_lab

    try:
        return attach_lab(name)
    except LabError as exc:
        raise UserError(exc.reason) from None


def register(app: typer.Typer) -> None:
    lab = typer.Typer(help="A real GlusterFS lab (any lab backend): up, status, fault, "
                      "restore, down.", no_args_is_help=True)
    app.add_typer(lab, name="lab")

    @lab.command()
    @friendly
    def up(
        scenario: Annotated[Path, typer.Argument(help="scenario YAML")],
        name: Annotated[str | None, typer.Option(help="lab name (default: from scenario)")] = None,
        scale: Annotated[float | None, typer.Option(
            help="size factor for disks and VM disks (default: fit this machine)")] = None,
        io_scale: Annotated[float | None, typer.Option(help="I/O demand factor")] = None,
        backend: Annotated[str, typer.Option(
            help="netns (namespaces on this machine) or libvirt (node VMs)")] = "netns",
        uri: Annotated[str, typer.Option(help="libvirt: hypervisor URI")] = "qemu:///system",
        accel: Annotated[str, typer.Option(help="libvirt: auto, kvm or qemu (TCG)")] = "auto",
    ) -> None:
        """Build and deploy the scenario's cluster, and leave it running."""
        if backend == "libvirt":
            from hcisim.cli.labimage import libvirt_up

            libvirt_up(scenario, uri, accel)
            return
        from hcisim.lab.backend import open_backend
        from hcisim.lab.scale import LabScale
        from hcisim.scenario import load_scenario

        sc = load_scenario(scenario)
        t = time.monotonic()
        try:
            be = open_backend(backend, sc, name=name, scale=LabScale.fit(sc, scale, io_scale))
        except LabError as exc:
            raise UserError(f"--backend {backend}: {exc.reason}") from None
        try:
            be.build()
            be.deploy()
        except BaseException:
            be.destroy()
            raise
        meta = be.meta()
        out.print(f"lab [bold]{be.name}[/bold] up in {time.monotonic() - t:.1f} s "
                  f"(scale: size {meta['scale']['size']:.3g}, io {meta['scale']['io']:.3g})")
        t_hosts = Table("host", "namespace", "storage", "management", title_justify="left")
        for h, where in meta["hosts"].items():
            t_hosts.add_row(h, where["netns"], where["storage"], where["management"])
        out.print(t_hosts)
        for v in sc.volumes:
            out.print(f"  {v.name} ({v.type}): " + ", ".join(
                str(be.mount_path(h, v.name)) for h in sc.host_names))
        out.print(f"fault it: hcisim lab fault node_hang {sc.host_names[1]} --name {be.name}")
        be.detach()

    @lab.command()
    @friendly
    def status(name: Annotated[str | None, typer.Option(help="lab name")] = None) -> None:
        """What is up: processes, mounts, active faults, bricks and pending heal."""
        from hcisim.lab.backend import labs_up

        labs = [lab for lab in labs_up() if name in (None, lab[1])]
        if name and not labs:
            raise UserError(f"no lab named {name!r} (labs up: "
                            f"{', '.join(n for _, n in labs_up()) or 'none'})")
        if not labs:
            out.print("no lab is up")
        for kind, n in labs:
            try:
                be = _attach(n)
            except UserError as exc:  # a half-reclaimed lab: say so, keep listing the rest
                out.print(f"[bold]{n}[/bold] ({kind}): {exc}; `hcisim lab down --name {n}` "
                          "reclaims it")
                continue
            summary = getattr(be, "summary", lambda: "")()
            out.print(f"[bold]{n}[/bold] ({kind}): {summary}")
            for f in be.active_faults:
                out.print(f"  active fault: {f.kind} on {f.target}")
            sample = be.observe()
            t = Table("volume", *[f"{h} up" for h in be.scenario.host_names],
                      *[f"{h} pending MB" for h in be.scenario.host_names], title_justify="left")
            for v in be.scenario.volumes:
                up = sample.connected.get(v.name, [])
                pend = sample.pending.get(v.name, {})
                t.add_row(v.name, *[("yes" if u else "[red]no[/red]") for u in up]
                          or ["?"] * len(v.bricks),
                          *[f"{pend[i].bytes / 1e6:.1f}" if i in pend else "?"
                            for i in range(len(v.bricks))])
            out.print(t)
            be.detach()

    @lab.command()
    @friendly
    def fault(
        kind: Annotated[str, typer.Argument(help="node_power_loss, nic_loss, brick_crash, "
                                            "brick_hang, node_hang, partition, link_slowdown, "
                                            "disk_failure")],
        target: Annotated[str, typer.Argument(help="host name")],
        name: Annotated[str | None, typer.Option(help="lab name")] = None,
        network: Annotated[str | None, typer.Option(
            help="storage, management, migration (the NIC carrying it, with every network "
            "on it) or all (nic_loss, partition, link_slowdown)")] = None,
        volume: Annotated[str | None, typer.Option(
            help="brick_crash: only this volume; brick_hang: this volume")] = None,
        disk: Annotated[str | None, typer.Option(help="disk_failure: this disk")] = None,
        peers: Annotated[list[str] | None, typer.Option(help="partition: only from these")] = None,
        rate_mbit: Annotated[float | None, typer.Option(help="link_slowdown: new rate")] = None,
    ) -> None:
        """Inject a fault into a running lab (repair it with `hcisim lab restore`)."""
        from pydantic import ValidationError

        be = _attach(name)
        if target not in be.scenario.host_names:
            raise UserError(f"target {target!r}: not a host of this lab "
                            f"({', '.join(be.scenario.host_names)})")
        try:
            given = {"network": network, "volume": volume, "disk": disk,
                     "peers": tuple(peers) if peers else None, "rate_mbit": rate_mbit}
            f = be.scenario.make_fault(at_s=0, kind=kind, target=target,
                                       **{k: v for k, v in given.items() if v is not None})
        except ValidationError as exc:
            raise UserError("fault: " + "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
        except ValueError as exc:  # network: migration on a host without such a NIC
            raise UserError(f"fault: network: {exc}") from None
        t = be.inject(f)
        out.print(f"{kind} on {target} at {time.strftime('%H:%M:%S', time.localtime(t))}")
        be.detach()

    @lab.command()
    @friendly
    def restore(name: Annotated[str | None, typer.Option(help="lab name")] = None) -> None:
        """Repair every active fault (newest first) and start heal."""
        be = _attach(name)
        be.background_heal = False
        faults = be.active_faults
        if not faults:
            out.print("no active fault")
        for f in reversed(faults):
            be.restore(f)
            out.print(f"repaired {f.kind} on {f.target}")
        for h in be.meta().get("heal_triggers", []):
            out.print(f"  heal {h['volume']}: "
                      f"{'started' if h['accepted'] else '[red]not accepted[/red]'}")
        be.detach()

    @lab.command()
    @friendly
    def down(
        name: Annotated[str | None, typer.Option(help="lab name")] = None,
        all_labs: Annotated[bool, typer.Option("--all", help="every lab on this machine")] = False,
    ) -> None:
        """Remove a lab (or all): processes, mounts, loop devices, namespaces, sockets."""
        from hcisim.lab.backend import backend_class, find_lab, labs_up

        if all_labs and name:
            raise UserError("give --name or --all, not both")
        try:
            labs = labs_up() if all_labs else [find_lab(name)]
        except LabError as exc:
            raise UserError(exc.reason) from None
        from hcisim.lab.run import remove_orphaned_work_dirs

        for work in remove_orphaned_work_dirs():  # a SIGKILLed harness's scratch directory
            out.print(f"{work}: removed (its harness is gone)")
        if not labs:
            out.print("no lab to remove")
        failed = False
        for kind, n in labs:
            try:
                left = backend_class(kind).reclaim(n)
            except LabError as exc:
                failed = True
                err.print(f"[red]{n}: could not remove[/red] {exc.reason}")
                continue
            if left.empty:
                out.print(f"{n}: removed")
            else:
                failed = True
                err.print(f"[red]{n}: could not remove[/red] {left.describe()}")
        if failed:
            raise typer.Exit(1)
